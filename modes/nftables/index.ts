// The nftables proxy mode: compile (pure) → render (pure) → apply (./apply.ts, the only side effects).
import type { ModeModule } from '../../src/model/mode.ts';
import type { Packet, Verdict } from '../../src/model/trace.ts';
import type { DesiredState, IPFamily } from '../../src/model/types.ts';
import { ipFamily } from '../../src/util/ip.ts';
import { compile } from './compile.ts';
import { TABLE_COMMENT } from './names.ts';
import { tableTransaction, transactionText } from './render.ts';
import { tracePaths, verdictOfPaths } from './trace.ts';

const FAMILIES: readonly IPFamily[] = ['IPv4', 'IPv6'];

/** What `kproxy plan --proxy-mode nftables` prints: per family, the transaction that creates the table. */
export function renderPlan(state: DesiredState): string {
  return FAMILIES.map((family) => `# ${family}: nft -f -\n${transactionText(tableTransaction(compile(state, family), TABLE_COMMENT))}`).join('');
}

export function tracePacket(state: DesiredState, packet: Packet): Verdict {
  const family = ipFamily(packet.dst);
  if (!family) return { kind: 'untouched' };
  return verdictOfPaths(tracePaths(compile(state, family), packet, { nodeIPs: state.families[family].nodeIPs }));
}

// Loaded on demand: `plan` and `trace` never need the apply layer.
const loadApply = (): Promise<typeof import('./apply.ts')> => import('./apply.ts');

export const mode: ModeModule = {
  name: 'nftables',
  create: async (options) => (await loadApply()).createNftablesProxy(options),
  cleanup: async (options) => (await loadApply()).cleanupNftables(options),
  render: renderPlan,
  trace: tracePacket,
};
