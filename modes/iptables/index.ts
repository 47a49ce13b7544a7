// The iptables proxy mode: compile (pure: the chain layout, compile.ts) → render/trace (the kit's, pure) → apply
// (./apply.ts, the only side effects, loaded by `create` only).
import type { CompiledFamilies } from '../../kit/family-sync.ts';
import { renderFull } from '../../kit/iptables/render.ts';
import { materialize, type RulesetSource } from '../../kit/iptables/ruleset.ts';
import { traceRuleset } from '../../kit/iptables/trace.ts';
import type { ModeModule } from '../../src/model/mode.ts';
import type { Packet, Verdict } from '../../src/model/trace.ts';
import type { IPFamily } from '../../src/model/types.ts';
import { IP_FAMILIES, ipFamily } from '../../src/util/ip.ts';
import { compileFamilies } from './compile.ts';

export type IptablesCompiled = CompiledFamilies<RulesetSource>;

const RESTORE_TOOL: Readonly<Record<IPFamily, string>> = { IPv4: 'iptables-restore', IPv6: 'ip6tables-restore' };

/** What `kproxy plan --proxy-mode iptables` prints: the full restore input of each family, hooks included. */
export function renderPlan(compiled: IptablesCompiled): string {
  return IP_FAMILIES.map((family) => {
    const ruleset = materialize(compiled.families[family]);
    const hooks = [...ruleset.nat.hooks, ...ruleset.filter.hooks];
    return `# ${family}: ${RESTORE_TOOL[family]} --noflush -w\n${renderFull(ruleset, { insertHooks: hooks })}`;
  }).join('');
}

/** The ruleset of the packet's family, interpreted (only that family is materialised). */
export function tracePacket(compiled: IptablesCompiled, packet: Packet): Verdict {
  const family = ipFamily(packet.dst);
  if (!family) return { kind: 'untouched' };
  return traceRuleset(materialize(compiled.families[family]), packet, { nodeIPs: compiled.state.families[family].nodeIPs });
}

// Loaded on demand: `plan` and `trace` never need the apply layer (nor its tools).
const loadApply = (): Promise<typeof import('./apply.ts')> => import('./apply.ts');

export const mode: ModeModule<IptablesCompiled> = {
  name: 'iptables',
  usesConntrack: true,
  resync: 'hourly',
  compile: compileFamilies,
  render: renderPlan,
  trace: tracePacket,
  create: async (options) => (await loadApply()).createIptablesProxy(options),
  cleanup: async (options) => (await loadApply()).cleanupIptables(options),
};
