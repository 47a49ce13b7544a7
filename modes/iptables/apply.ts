// The iptables mode's apply layer: the only code of this mode with side effects. It pipes rendered text into
// iptables-restore --noflush (never a flush of anything but kproxy's own chains, so neither start nor stop
// interrupts traffic), keeps the last applied ruleset per family (as plans, not rules) to write only differences,
// streams full restores as they are rendered, reads the node's state from iptables-save as it is listed, and deletes stale
// UDP conntrack entries afterwards.
import type { Logger, ModeOptions, ProxyMode, SyncReport, SyncRequest } from '../../src/model/mode.ts';
import type { DesiredState, IPFamily } from '../../src/model/types.ts';
import { compileSource } from './compile.ts';
import { conntrackDeleteArgs, deletionsWithEntries, isNothingToDelete, parseConntrackList, reconcileUdpEntries, staleUdpDeletions } from './conntrack.ts';
import { firstLine, runCommand, type CommandInput, type CommandResult, type CommandRunner } from './exec.ts';
import { missingHooks, renderCleanup, renderDiff, renderFullStream, SaveReader, type SavedState } from './render.ts';
import type { RulesetSource } from './ruleset.ts';
import { detectVariant, toolsFor, variantSetting, VARIANTS, type IptablesTools, type IptablesVariant } from './variant.ts';

const FAMILIES: readonly IPFamily[] = ['IPv4', 'IPv6'];
/** Seconds to wait for the xtables lock held by another iptables user. */
const LOCK_WAIT = '5';

/** Per-family memory of what the kernel holds. */
interface FamilyState {
  readonly tools: IptablesTools;
  /**
   * The ruleset last applied, as a source (plans, not rules: see RulesetSource); undefined until the first full
   * sync and after any failure (forces a full sync).
   */
  applied: RulesetSource | undefined;
  /** Known to hold nothing of kproxy while the family has no services (IPv6 on a single-stack node). */
  idle: boolean;
}

export interface IptablesProxyOptions extends ModeOptions {
  /** Runs the tools; tests and benchmarks may wrap it. Default: spawn them directly. */
  readonly run?: CommandRunner;
}

function lineCount(text: string): number {
  let count = 0;
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) count++;
  return count;
}

/** Restore input: text, or a function that renders it piece by piece (called again to report a failed line). */
type RestoreInput = string | (() => Iterable<string>);

/** "line 7 failed" → the text of line 7, so the log shows which rule the kernel refused. */
function failedLine(result: CommandResult, input: RestoreInput): string | undefined {
  const match = /line (\d+) failed/.exec(result.stderr);
  if (!match) return undefined;
  let skip = Number(match[1]) - 1;
  for (const piece of typeof input === 'string' ? [input] : input()) {
    const lines = piece.split('\n');
    if (lines.at(-1) === '') lines.pop();
    if (skip < lines.length) return lines[skip];
    skip -= lines.length;
  }
  return undefined;
}

/** Pipes the input into the restore tool; returns the number of lines written. */
async function restore(run: CommandRunner, log: Logger, tools: IptablesTools, input: RestoreInput): Promise<number> {
  let lines = 0;
  const counted = (pieces: Iterable<string>): Iterable<string> => (function* () {
    for (const piece of pieces) {
      lines += lineCount(piece);
      yield piece;
    }
  })();
  const stdin: CommandInput = typeof input === 'string' ? input : counted(input());
  if (typeof input === 'string') lines = lineCount(input);
  const result = await run(tools.restore, ['--noflush', '-w', LOCK_WAIT], stdin);
  if (result.code === 0) return lines;
  const line = failedLine(result, input);
  log.error({ tool: tools.restore, stderr: result.stderr.trim(), line }, 'restore failed');
  throw new Error(`${tools.restore} failed: ${firstLine(result)}${line ? ` (${line.slice(0, 200)})` : ''}`);
}

/**
 * What the node holds of kproxy, read from the save tool's stdout as it arrives (the listing is ≈ 60 MB at 10k
 * services: never held whole). No `state` when the tool failed.
 */
async function readNodeState(run: CommandRunner, tools: IptablesTools): Promise<{ state?: SavedState; result: CommandResult }> {
  const reader = new SaveReader();
  const result = await run(tools.save, [], undefined, { onStdout: (chunk) => reader.push(chunk) });
  if (result.code !== 0) return { result };
  // A runner that does not pass the option on returns the listing as text: read it the same way.
  if (result.stdout !== '') reader.push(Buffer.from(result.stdout));
  return { state: reader.end(), result };
}

async function save(run: CommandRunner, tools: IptablesTools): Promise<SavedState> {
  const { state, result } = await readNodeState(run, tools);
  if (!state) throw new Error(`${tools.save} failed: ${firstLine(result)}`);
  return state;
}

/** Whether the tools and the kernel support a family (IPv6 may be compiled out or its tools missing). */
async function familyUsable(run: CommandRunner, tools: IptablesTools): Promise<boolean> {
  const result = await run(tools.iptables, ['-w', LOCK_WAIT, '-t', 'nat', '-S', 'POSTROUTING']);
  return result.code === 0;
}

async function resolveVariant(run: CommandRunner, config: Readonly<Record<string, unknown>>): Promise<IptablesVariant> {
  // config file `iptables.variant` (the mode's block), a flattened `iptablesVariant`, or the environment
  const setting = variantSetting(config['variant'] ?? config['iptablesVariant'] ?? process.env['KPROXY_IPTABLES_VARIANT']);
  return setting === 'auto' ? detectVariant(run) : setting;
}

/**
 * Delete the UDP conntrack entries a sync made stale. With `reconcile` (first sync after start, full syncs) also
 * every entry DNATed to what is no longer an endpoint, found in the listing: endpoints may have gone while kproxy
 * was down. Failures are logged, never fatal: rules are in place.
 */
async function clearStaleUdp(run: CommandRunner, log: Logger, prev: DesiredState | undefined, next: DesiredState, reconcile: boolean): Promise<number> {
  const wanted = staleUdpDeletions(prev, next);
  let deleted = 0;
  for (const family of FAMILIES) {
    const ofFamily = wanted.filter((d) => d.family === family);
    const reconciling = reconcile && next.families[family].services.some((s) => s.protocol === 'UDP');
    if (ofFamily.length === 0 && !reconciling) continue;
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
  }
  if (deleted > 0) log.debug({ deleted }, 'deleted stale UDP conntrack entries');
  return deleted;
}

export async function createIptablesProxy(options: IptablesProxyOptions): Promise<ProxyMode> {
  const run = options.run ?? runCommand;
  const variant = await resolveVariant(run, options.config);
  const log = options.log.child({ mode: 'iptables', variant });
  const families = new Map<IPFamily, FamilyState>();
  for (const family of FAMILIES) {
    const tools = toolsFor(variant, family);
    if (await familyUsable(run, tools)) families.set(family, { tools, applied: undefined, idle: false });
    else if (family === 'IPv4') throw new Error(`${tools.iptables} is not usable (missing tool or kernel support)`);
    else log.info({ tool: tools.iptables }, 'IPv6 iptables unavailable; serving IPv4 only');
  }
  let lastState: DesiredState | undefined;

  /**
   * Full sync of one family: every kproxy chain rewritten, stale ones deleted (hook rules jumping to them first),
   * missing hooks inserted. The restore input is rendered while iptables-restore reads it.
   */
  const syncFull = async (family: IPFamily, state: DesiredState, fs: FamilyState, source: RulesetSource): Promise<number> => {
    const saved = await save(run, fs.tools);
    const nothingInstalled = saved.chains.nat.length + saved.chains.filter.length + saved.hooks.length === 0;
    // A family with no services and no kproxy state: nothing to do, and no hooks to add to the node.
    if (family === 'IPv6' && state.families.IPv6.services.length === 0 && nothingInstalled) {
      fs.idle = true;
      return 0;
    }
    const options = { onNode: saved, insertHooks: missingHooks(source.base, saved) };
    const lines = await restore(run, log, fs.tools, () => renderFullStream(source, options));
    fs.applied = source;
    return lines;
  };

  /** Only the services whose plan object changed (see renderDiff). */
  const syncPartial = async (fs: FamilyState, prev: RulesetSource, source: RulesetSource): Promise<number> => {
    const diff = renderDiff(prev, source);
    if (diff.text !== '') await restore(run, log, fs.tools, diff.text);
    fs.applied = source;
    return diff.lines;
  };

  return {
    name: 'iptables',
    async sync(state: DesiredState, request: SyncRequest): Promise<SyncReport> {
      const started = performance.now();
      let linesWritten = 0;
      let familiesSynced = 0;
      let full = request.full;
      try {
        for (const [family, fs] of families) {
          if (fs.idle && state.families[family].services.length === 0) continue;
          fs.idle = false;
          const source = compileSource(state, family);
          const prev = fs.applied;
          // A new family-wide context (mark, cluster CIDRs, node IPs) changes every service: a full sync streams it.
          if (request.full || prev === undefined || prev.contextKey !== source.contextKey) {
            full = true;
            const lines = await syncFull(family, state, fs, source);
            if (fs.applied === source) familiesSynced++;
            linesWritten += lines;
          } else {
            linesWritten += await syncPartial(fs, prev, source);
            familiesSynced++;
          }
        }
      } catch (error) {
        // The kernel may hold anything between the old and the new rules: the next sync must rewrite everything.
        for (const fs of families.values()) {
          fs.applied = undefined;
          fs.idle = false;
        }
        throw error;
      }
      const conntrackDeleted = await clearStaleUdp(run, log, lastState, state, lastState === undefined || full);
      lastState = state;
      const durationMs = Math.round(performance.now() - started);
      return { full, stats: { linesWritten, families: familiesSynced, durationMs, conntrackDeleted } };
    },
    async stop(): Promise<void> {
      // Nothing runs in the background, and the rules stay: a restart must not interrupt traffic.
    },
  };
}

/** Remove every kproxy chain and hook rule, in both families and both variants, and nothing else. */
export async function cleanupIptables(options: IptablesProxyOptions): Promise<void> {
  const run = options.run ?? runCommand;
  const log = options.log.child({ mode: 'iptables' });
  const failures: string[] = [];
  for (const variant of VARIANTS) {
    for (const family of FAMILIES) {
      const tools = toolsFor(variant, family);
      const { state } = await readNodeState(run, tools);
      if (!state) continue; // tool or kernel support missing: nothing of ours can be there
      const text = renderCleanup(state);
      if (text === '') continue;
      try {
        await restore(run, log, tools, text);
        log.info({ variant, family }, 'removed kproxy iptables rules');
      } catch (error) {
        failures.push((error as Error).message);
      }
    }
  }
  if (failures.length > 0) throw new Error(`iptables cleanup incomplete: ${failures.join('; ')}`);
}
