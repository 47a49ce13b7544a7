// The iptables mode's apply layer: the only code of this mode with side effects. The kit does the work (family
// sync driver, restore/save tools, conntrack cleanup); this file says what a full and a partial sync of one family
// write. Everything goes through iptables-restore --noflush (never a flush of anything but kproxy's own chains,
// so neither start nor stop interrupts traffic).
import { FamilySync, type CompiledFamilies, type FamilyWriter } from '../../kit/family-sync.ts';
import { runCommand, type CommandRunner } from '../../kit/exec.ts';
import { missingHooks, renderCleanup, renderDiff, renderFullStream } from '../../kit/iptables/render.ts';
import type { RulesetSource } from '../../kit/iptables/ruleset.ts';
import { familyUsable, readNodeState, restore, save } from '../../kit/iptables/tools.ts';
import { detectVariant, toolsFor, VARIANTS, type IptablesTools } from '../../kit/iptables/variant.ts';
import { ModeError } from '../../kit/errors.ts';
import type { Logger, ModeOptions, Proxier } from '../../src/model/mode.ts';
import type { DesiredState, IPFamily } from '../../src/model/types.ts';
import { firstLineOf } from '../../src/util/errors.ts';
import { IP_FAMILIES } from '../../src/util/ip.ts';
import { CHAIN_PREFIX } from './names.ts';

export interface IptablesProxyOptions extends ModeOptions {
  /** Runs the tools; tests and benchmarks may wrap it. Default: spawn them directly. */
  readonly run?: CommandRunner;
}


/** Writing one family with one variant's tools. */
function familyWriter(run: CommandRunner, log: Logger, tools: IptablesTools, family: IPFamily): FamilyWriter<RulesetSource> {
  return {
    /**
     * Every kproxy chain rewritten, stale ones deleted (hook rules jumping to them first), missing hooks inserted.
     * The restore input is rendered while iptables-restore reads it.
     */
    async full(source: RulesetSource, state: DesiredState) {
      const saved = await save(run, tools, CHAIN_PREFIX);
      const nothingInstalled = saved.chains.nat.length + saved.chains.filter.length + saved.hooks.length === 0;
      // A family with no services and no kproxy state: nothing to do, and no hooks to add to the node.
      if (family === 'IPv6' && state.families.IPv6.services.length === 0 && nothingInstalled) return 'idle';
      const options = { onNode: saved, insertHooks: missingHooks(source.base, saved) };
      return restore(run, log, tools, () => renderFullStream(source, options));
    },
    /** Only the services whose plan object changed (see renderDiff). */
    async partial(prev: RulesetSource, next: RulesetSource) {
      const diff = renderDiff(prev, next);
      if (diff.text !== '') await restore(run, log, tools, diff.text);
      return diff.lines;
    },
  };
}

export async function createIptablesProxy(options: IptablesProxyOptions): Promise<Proxier<CompiledFamilies<RulesetSource>>> {
  const run = options.run ?? runCommand;
  // --iptables-variant / iptables.variant / KPROXY_IPTABLES_VARIANT, checked by src/config; unset: the node's.
  const variant = options.settings.iptablesVariant ?? await detectVariant(run);
  const log = options.log.child({ variant }); // the composition root binds `mode`
  const writers = new Map<IPFamily, FamilyWriter<RulesetSource>>();
  for (const family of IP_FAMILIES) {
    const tools = toolsFor(variant, family);
    if (await familyUsable(run, tools)) writers.set(family, familyWriter(run, log, tools, family));
    else if (family === 'IPv4') throw new ModeError('KP_ERR_TOOL_MISSING', `${tools.iptables} is not usable (missing tool or kernel support)`, { family });
    else log.info({ tool: tools.iptables }, 'IPv6 iptables unavailable; serving IPv4 only');
  }
  const driver = new FamilySync<RulesetSource>({ families: writers, run, log, ...(options.metrics && { metrics: options.metrics }) });
  return {
    sync: (compiled, request) => driver.sync(compiled, request),
    async stop(): Promise<void> {
      // Nothing runs in the background, and the rules stay: a restart must not interrupt traffic.
    },
  };
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
  if (failures.length > 0) throw new ModeError('KP_ERR_APPLY_FAILED', `iptables cleanup incomplete: ${failures.join('; ')}`);
}
