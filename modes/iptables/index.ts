// The iptables proxy mode: compile (pure) → render (pure) → apply (./apply.ts, the only side effects).
import type { ModeModule } from '../../src/model/mode.ts';
import type { Packet, Verdict } from '../../src/model/trace.ts';
import type { DesiredState, IPFamily } from '../../src/model/types.ts';
import { IP_FAMILIES, ipFamily } from '../../src/util/ip.ts';
import { renderFull } from '../../kit/iptables/render.ts';
import { traceRuleset } from '../../kit/iptables/trace.ts';
import { compile } from './compile.ts';
const RESTORE_TOOL: Readonly<Record<IPFamily, string>> = { IPv4: 'iptables-restore', IPv6: 'ip6tables-restore' };

/** What `kproxy plan --proxy-mode iptables` prints: the full restore input of each family, hooks included. */
export function renderPlan(state: DesiredState): string {
  return IP_FAMILIES.map((family) => {
    const ruleset = compile(state, family);
    const hooks = [...ruleset.nat.hooks, ...ruleset.filter.hooks];
    return `# ${family}: ${RESTORE_TOOL[family]} --noflush -w\n${renderFull(ruleset, { insertHooks: hooks })}`;
  }).join('');
}

export function tracePacket(state: DesiredState, packet: Packet): Verdict {
  const family = ipFamily(packet.dst);
  if (!family) return { kind: 'untouched' };
  return traceRuleset(compile(state, family), packet, { nodeIPs: state.families[family].nodeIPs });
}

// Loaded on demand: `plan` and `trace` never need the apply layer (nor its tools).
const loadApply = (): Promise<typeof import('./apply.ts')> => import('./apply.ts');

export const mode: ModeModule = {
  name: 'iptables',
  usesConntrack: true,
  create: async (options) => (await loadApply()).createIptablesProxy(options),
  cleanup: async (options) => (await loadApply()).cleanupIptables(options),
  render: renderPlan,
  trace: tracePacket,
};
