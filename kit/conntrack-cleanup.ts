// After a sync: delete the UDP conntrack entries it made stale (kit/conntrack.ts says which), with the conntrack
// tool. Shared by every kernel mode that DNATs UDP (iptables, nftables, ipvs): the entries outlive the rules.
import type { ModeMetrics } from '../src/model/metrics.ts';
import type { Logger } from '../src/model/mode.ts';
import type { DesiredState } from '../src/model/types.ts';
import { IP_FAMILIES } from '../src/util/ip.ts';
import { conntrackDeleteArgs, deletionsWithEntries, isNothingToDelete, parseConntrackList, reconcileUdpEntries, staleUdpDeletions } from './conntrack.ts';
import { firstLine, type CommandRunner } from './exec.ts';

export interface UdpCleanupInput {
  readonly run: CommandRunner;
  readonly log: Logger;
  /** The state the kernel held before this sync; undefined on the first sync after start. */
  readonly prev: DesiredState | undefined;
  readonly next: DesiredState;
  /**
   * Also delete every entry DNATed to what is no longer an endpoint, found in the listing (first sync after start,
   * full syncs): endpoints may have gone while kproxy was down.
   */
  readonly reconcile: boolean;
  /** Told of each family's reconciliation (duration, entries deleted). */
  readonly metrics?: ModeMetrics;
}

/** Deletes the stale UDP entries; returns how many were deleted. Failures are logged, never fatal: rules are in place. */
export async function clearStaleUdp(input: UdpCleanupInput): Promise<number> {
  const { run, log, next } = input;
  const wanted = staleUdpDeletions(input.prev, next);
  let deleted = 0;
  for (const family of IP_FAMILIES) {
    const ofFamily = wanted.filter((d) => d.family === family);
    const reconciling = input.reconcile && next.families[family].services.some((s) => s.protocol === 'UDP');
    if (ofFamily.length === 0 && !reconciling) continue;
    const started = performance.now();
    const deletedBefore = deleted;
    const listing = await run('conntrack', ['-L', '-f', family === 'IPv4' ? 'ipv4' : 'ipv6', '-p', 'udp']);
    if (listing.code !== 0) {
      log.warn({ family, error: firstLine(listing) }, 'cannot list conntrack entries; stale UDP flows stay until they time out');
      continue;
    }
    const entries = parseConntrackList(listing.stdout);
    const deletions = deletionsWithEntries(ofFamily, entries);
    if (reconciling) deletions.push(...reconcileUdpEntries({ family, entries, state: next }));
    for (const deletion of deletions) {
      const result = await run('conntrack', conntrackDeleteArgs(deletion));
      if (result.code === 0) deleted++;
      else if (!isNothingToDelete(result.stderr)) log.warn({ deletion, error: firstLine(result) }, 'conntrack delete failed');
    }
    if (reconciling) input.metrics?.conntrackReconciled(family, (performance.now() - started) / 1000, deleted - deletedBefore);
  }
  if (deleted > 0) log.debug({ deleted }, 'deleted stale UDP conntrack entries');
  return deleted;
}
