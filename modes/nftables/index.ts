// The nftables proxy mode: compile (pure: the layout, compile.ts; one lazy source per family) → render/trace
// (pure) → apply (./apply.ts, the only side effects, loaded by `create` only).
import type { CompiledFamilies } from '../../kit/family-sync.ts';
import type { ModeModule } from '../../src/model/mode.ts';
import type { Packet, Verdict } from '../../src/model/trace.ts';
import { IP_FAMILIES, ipFamily } from '../../src/util/ip.ts';
import { assembleSource, compileFamilies, type NftSource } from './diff.ts';
import { TABLE_COMMENT } from './names.ts';
import { tableTransaction, transactionText } from './render.ts';
import { traceTable } from './trace.ts';

export type NftablesCompiled = CompiledFamilies<NftSource>;

/** What `kproxy plan --proxy-mode nftables` prints: per family, the transaction that creates the table (as nft text). */
export function renderPlan(compiled: NftablesCompiled): string {
  return IP_FAMILIES.map((family) => `# ${family}: nft -f -\n${transactionText(tableTransaction(assembleSource(compiled.families[family]).table, TABLE_COMMENT))}`).join('');
}

/** The table of the packet's family, interpreted (only that family is assembled). */
export function tracePacket(compiled: NftablesCompiled, packet: Packet): Verdict {
  const family = ipFamily(packet.dst);
  if (!family) return { kind: 'untouched' };
  return traceTable(assembleSource(compiled.families[family]).table, packet, { nodeIPs: compiled.state.families[family].nodeIPs });
}

// Loaded on demand: `plan` and `trace` never need the apply layer.
const loadApply = (): Promise<typeof import('./apply.ts')> => import('./apply.ts');

export const mode: ModeModule<NftablesCompiled> = {
  name: 'nftables',
  usesConntrack: true,
  compile: compileFamilies,
  render: renderPlan,
  trace: tracePacket,
  create: async (options) => (await loadApply()).createNftablesProxy(options),
  cleanup: async (options) => (await loadApply()).cleanupNftables(options),
};
