// The iptables mode's apply layer: the only code of this mode with side effects. The kit does the work (family
// sync driver, restore/save tools, conntrack cleanup); this file says what a full and a partial sync of one family
// write. Everything goes through iptables-restore --noflush (never a flush of anything but kproxy's own chains,
// so neither start nor stop interrupts traffic).
import { FamilySync, type CompiledFamilies, type FamilyWriter } from '../../kit/family-sync.ts';
import { runCommand, type CommandRunner } from '../../kit/exec.ts';
import { missingHooks, noRules, renderCleanup, renderDiff, renderFullStream } from '../../kit/iptables/render.ts';
import { TABLE_NAMES, withoutCounters, type RuleTally, type RulesetSource } from '../../kit/iptables/ruleset.ts';
import { CT_STATE_INVALID_DROPPED, deleteNfacct, ensureNfacct, readNfacct } from '../../kit/nfacct.ts';
import { familyUsable, readNodeState, restore, save } from '../../kit/iptables/tools.ts';
import { detectVariant, toolsFor, VARIANTS, type IptablesTools, type IptablesVariant } from '../../kit/iptables/variant.ts';
import { openTableSizeReader, type TableSizeReader } from '../../kit/iptables/xt-info.ts';
import { canaryProbe } from '../../kit/iptables/canary.ts';
import { DriftWatch } from '../../kit/drift-watch.ts';
import { takeOverFromKubeProxy } from '../../kit/takeover/index.ts';
import { ModeError } from '../../kit/errors.ts';
import type { ModeMetrics } from '../../src/model/metrics.ts';
import type { Logger, ModeOptions, Proxier, SyncReport, SyncRequest } from '../../src/model/mode.ts';
import type { DesiredState, IPFamily } from '../../src/model/types.ts';
import { firstLineOf } from '../../src/util/errors.ts';
import { IP_FAMILIES } from '../../src/util/ip.ts';
import { CHAIN_PREFIX, TOP_CHAINS } from './names.ts';

export interface IptablesProxyOptions extends ModeOptions {
  /** Runs the tools; tests and benchmarks may wrap it. Default: spawn them directly. */
  readonly run?: CommandRunner;
}

/** kubeproxy_sync_proxy_rules_iptables_total / _last of one family: rules kproxy owns, and those the last sync wrote. */
function ruleCounter(family: IPFamily, metrics: ModeMetrics | undefined): (total: RuleTally, written: RuleTally) => void {
  return (total, written) => {
    for (const table of TABLE_NAMES) metrics?.rulesCounted(family, table, total[table], written[table]);
  };
}

interface WriterContext {
  readonly run: CommandRunner;
  readonly log: Logger;
  readonly metrics: ModeMetrics | undefined;
  /** The families whose kernel holds kproxy's rules (and so its canaries), kept up to date by full syncs. */
  readonly holding: Set<IPFamily>;
}

/** Writing one family with one variant's tools. */
function familyWriter({ run, log, metrics, holding }: WriterContext, tools: IptablesTools): FamilyWriter<RulesetSource> {
  const family = tools.family;
  const counted = ruleCounter(family, metrics);
  /** Rules kproxy owns in the kernel (its chains, hooks not included), as of the last successful write. */
  let owned = noRules();
  return {
    /**
     * Every kproxy chain rewritten, stale ones deleted (hook rules jumping to them first), missing hooks inserted.
     * The restore input is rendered while iptables-restore reads it.
     */
    async full(source: RulesetSource, state: DesiredState) {
      const saved = await save(run, tools, CHAIN_PREFIX);
      const nothingInstalled = saved.chains.nat.length + saved.chains.filter.length + saved.hooks.length === 0;
      // A family with no services and no kproxy state: nothing to do, and no hooks to add to the node.
      if (family === 'IPv6' && state.families.IPv6.services.length === 0 && nothingInstalled) {
        holding.delete(family);
        return 'idle';
      }
      let tally = noRules();
      // The stream is rendered again to name a failed line: count only the pass the tool read.
      const lines = await restore(run, log, tools, () => renderFullStream(source, { onNode: saved, insertHooks: missingHooks(source.base, saved), tally: tally = noRules() }));
      owned = tally;
      counted(owned, tally);
      holding.add(family);
      return lines;
    },
    /** Only the services whose plan object changed (see renderDiff). */
    async partial(prev: RulesetSource, next: RulesetSource) {
      const diff = renderDiff(prev, next);
      if (diff.text !== '') await restore(run, log, tools, diff.text);
      owned = { nat: owned.nat + diff.rulesDelta.nat, filter: owned.filter + diff.rulesDelta.filter };
      counted(owned, diff.rulesWritten);
      return diff.lines;
    },
  };
}

export async function createIptablesProxy(options: IptablesProxyOptions): Promise<Proxier<CompiledFamilies<RulesetSource>>> {
  const run = options.run ?? runCommand;
  // --iptables-variant / iptables.variant / KPROXY_IPTABLES_VARIANT, checked by src/config; unset: the node's.
  const variant = options.settings.iptablesVariant ?? await detectVariant(run);
  const log = options.log.child({ variant }); // the composition root binds `mode`
  const context: WriterContext = { run, log, metrics: options.metrics, holding: new Set() };
  const writers = new Map<IPFamily, FamilyWriter<RulesetSource>>();
  const usable: IptablesTools[] = [];
  for (const family of IP_FAMILIES) {
    const tools = toolsFor(variant, family);
    if (await familyUsable(run, tools)) {
      writers.set(family, familyWriter(context, tools));
      usable.push(tools);
    } else if (family === 'IPv4') throw new ModeError('KP_ERR_TOOL_MISSING', `${tools.iptables} is not usable (missing tool or kernel support)`, { family });
    else log.info({ tool: tools.iptables }, 'IPv6 iptables unavailable; serving IPv4 only');
  }
  const driver = new FamilySync<RulesetSource>({ families: writers, run, log, ...(options.metrics && { metrics: options.metrics }) });
  const watch = await canaryWatch(options, { run, log, variant, families: () => usable.filter((tools) => context.holding.has(tools.family)) });
  // The counter of the INVALID drop; without it the rule is written without its match (and the metric stays 0).
  const counting = await ensureNfacct(run, log, CT_STATE_INVALID_DROPPED);
  const loadable = (compiled: CompiledFamilies<RulesetSource>): CompiledFamilies<RulesetSource> => (counting ? compiled : {
    state: compiled.state,
    families: { IPv4: withoutCounters(compiled.families.IPv4), IPv6: withoutCounters(compiled.families.IPv6) },
  });
  // --take-over-from-kube-proxy: kube-proxy's leftovers go once kproxy's rules are in place (again until all went).
  let kubeProxyLeft = options.settings.takeOverFromKubeProxy;
  const write = async (compiled: CompiledFamilies<RulesetSource>, request: SyncRequest): Promise<SyncReport> => {
    const report = await driver.sync(loadable(compiled), request);
    if (report.full && kubeProxyLeft) kubeProxyLeft = (await takeOverFromKubeProxy({ run, log, state: compiled.state })).failed.length > 0;
    return report;
  };
  return {
    async sync(compiled, request) {
      const report = await (watch ? watch.writing(() => write(compiled, request)) : write(compiled, request));
      // A full sync (re)wrote the canaries: watch them from now on.
      if (report.full) watch?.arm();
      return report;
    },
    async netfilterCounters() {
      const dropped = counting ? await readNfacct(run, CT_STATE_INVALID_DROPPED) : undefined;
      return dropped === undefined ? {} : { ctStateInvalidDropped: dropped };
    },
    async stop(): Promise<void> {
      // The rules stay: a restart must not interrupt traffic.
      await watch?.stop();
    },
  };
}

interface CanaryInput {
  readonly run: CommandRunner;
  readonly log: Logger;
  readonly variant: IptablesVariant;
  readonly families: () => readonly IptablesTools[];
}

/**
 * kube-proxy's canary, polled every syncPeriod: a full resync at once when something else flushed kproxy's tables.
 * None when nothing can be asked for a resync. Legacy tables are listed only when their size changed, when the
 * tools run in this process's network namespace (a test's runner may run them elsewhere).
 */
async function canaryWatch(options: IptablesProxyOptions, input: CanaryInput): Promise<DriftWatch | undefined> {
  const onDrift = options.requestFullSync;
  if (onDrift === undefined) return undefined;
  let sizes: TableSizeReader | undefined;
  if (input.variant === 'legacy' && options.run === undefined) {
    const opened = await openTableSizeReader();
    sizes = opened.reader;
    if (opened.error !== undefined) input.log.info({ error: opened.error }, 'Listing the canary tables at every check (table sizes unreadable)');
  }
  const probe = canaryProbe({
    run: input.run, families: input.families, chain: TOP_CHAINS.canary, tables: TABLE_NAMES, ...(sizes && { sizes }),
  });
  return new DriftWatch({ probe, intervalMs: options.settings.syncPeriodMs, onDrift, log: input.log });
}

/** Remove every kproxy chain and hook rule, in both families and both variants, and nothing else. */
export async function cleanupIptables(options: IptablesProxyOptions): Promise<void> {
  const run = options.run ?? runCommand;
  const log = options.log;
  const failures: string[] = [];
  for (const variant of VARIANTS) {
    for (const family of IP_FAMILIES) {
      const tools = toolsFor(variant, family);
      const { state } = await readNodeState(run, tools, CHAIN_PREFIX);
      if (!state) continue; // tool or kernel support missing: nothing of ours can be there
      const text = renderCleanup(state);
      if (text === '') continue;
      try {
        await restore(run, log, tools, text);
        log.info({ variant, family }, 'removed kproxy iptables rules');
      } catch (error) {
        failures.push(firstLineOf(error));
      }
    }
  }
  // The counter goes too, unless a rule still uses it (kube-proxy's: the kernel refuses, and it stays).
  await deleteNfacct(run, CT_STATE_INVALID_DROPPED);
  if (failures.length > 0) throw new ModeError('KP_ERR_APPLY_FAILED', `iptables cleanup incomplete: ${failures.join('; ')}`);
}
