// Kernel packet counters kube-proxy keeps outside its rules (nfnetlink_acct objects, matched with `-m nfacct`), so a
// count survives every rewrite of the rule that feeds it: created once, read when /metrics is scraped. Through the
// `nfacct` tool (Debian's nfacct package). Objects belong to the network namespace; kproxy uses kube-proxy's names,
// so a node keeps its counts across a takeover.
import type { Logger } from '../src/model/mode.ts';
import { firstLine, type CommandRunner } from './exec.ts';

/** kube-proxy's counter of packets its `ct state invalid` drop rule dropped (metrics.IPTablesCTStateInvalidDroppedNFAcctCounter). */
export const CT_STATE_INVALID_DROPPED = 'ct_state_invalid_dropped_pkts';

/** The packet count of `nfacct get NAME` / one line of `nfacct list`: `{ pkts = 00000000000000000012, bytes = … } = NAME;`. */
export function parseNfacctPackets(text: string, name: string): number | undefined {
  for (const line of text.split('\n')) {
    const match = /^\{\s*pkts\s*=\s*(\d+),\s*bytes\s*=\s*\d+\s*\}\s*=\s*(\S+);/.exec(line.trim());
    if (match && match[2] === name) return Number(match[1]);
  }
  return undefined;
}

/**
 * Make sure the counter exists. false (with one warning naming what is missing) when it cannot: no `nfacct` tool,
 * or a kernel without nfnetlink_acct. The rules are then written without the counter and its metric stays 0, as
 * kube-proxy does when it cannot create it.
 */
export async function ensureNfacct(run: CommandRunner, log: Logger, name: string): Promise<boolean> {
  if ((await run('nfacct', ['get', name])).code === 0) return true;
  const added = await run('nfacct', ['add', name]);
  if (added.code === 0) return true;
  // Someone else (kube-proxy) created it meanwhile.
  if ((await run('nfacct', ['get', name])).code === 0) return true;
  log.warn({ counter: name, error: firstLine(added) }, `Cannot create the nfacct counter ${name}; its metric will stay 0`);
  return false;
}

/** The counter's packets; undefined when it cannot be read. */
export async function readNfacct(run: CommandRunner, name: string): Promise<number | undefined> {
  const result = await run('nfacct', ['get', name]);
  return result.code === 0 ? parseNfacctPackets(result.stdout, name) : undefined;
}

/** Delete the counter if nothing uses it any more (a rule of kube-proxy's may still: then it stays). */
export async function deleteNfacct(run: CommandRunner, name: string): Promise<void> {
  await run('nfacct', ['del', name]);
}
