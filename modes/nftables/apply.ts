// The nftables mode's apply layer: checks at start that the kernel can hold the layout, then keeps one table per
// IP family in step with the desired state (writer.ts), over netlink (kernel.ts). Never flushes anything at start
// or stop; `--cleanup` deletes kproxy's tables and nothing else.
import type { Logger, ModeOptions, ProxyMode, SyncReport, SyncRequest } from '../../src/model/mode.ts';
import type { DesiredState, IPFamily } from '../../src/model/types.ts';
import { compileSource, type NftSource } from './diff.ts';
import { checkFeatures } from './features.ts';
import { NetlinkKernel, type Kernel } from './kernel.ts';
import { TABLE } from './names.ts';
import { NetlinkError } from './netlink/socket.ts';
import { FAMILY_OF } from './ruleset.ts';
import { deleteTableTransaction } from './transaction.ts';
import { NftTableWriter } from './writer.ts';

const FAMILIES: readonly IPFamily[] = ['IPv4', 'IPv6'];

export interface NftablesProxyOptions extends ModeOptions {
  /** Where transactions go and tables are read from; default: netlink from this process (in the node's namespace). */
  readonly kernel?: Kernel;
}

interface Family {
  readonly writer: NftTableWriter;
  applied: NftSource | undefined;
  idle: boolean;
}

export async function createNftablesProxy(options: NftablesProxyOptions): Promise<ProxyMode> {
  const kernel = options.kernel ?? new NetlinkKernel();
  const log: Logger = options.log.child({ mode: 'nftables' });
  const families = new Map<IPFamily, Family>();
  for (const family of FAMILIES) {
    const problem = await checkFeatures(kernel, family);
    if (problem === undefined) families.set(family, { writer: new NftTableWriter(FAMILY_OF[family], kernel, log), applied: undefined, idle: false });
    else if (family === 'IPv4') throw new Error(problem);
    else log.info({ problem }, 'IPv6 nftables unavailable; serving IPv4 only');
  }

  return {
    name: 'nftables',
    async sync(state: DesiredState, request: SyncRequest): Promise<SyncReport> {
      const started = performance.now();
      let operations = 0;
      let full = request.full;
      let tablesRead = 0;
      try {
        for (const [family, memory] of families) {
          if (memory.idle && state.families[family].services.length === 0) continue;
          memory.idle = false;
          const source = compileSource(state, family);
          const prev = memory.applied;
          if (request.full || prev === undefined || prev.contextKey !== source.contextKey) {
            full = true;
            const report = await memory.writer.full(source);
            if (report === 'idle') { memory.idle = true; continue; }
            operations += report.operations;
            if (report.read) tablesRead++;
          } else {
            operations += await memory.writer.partial(prev, source);
          }
          memory.applied = source;
        }
      } catch (error) {
        for (const memory of families.values()) {
          memory.applied = undefined;
          memory.idle = false;
          memory.writer.forget();
        }
        throw error;
      }
      return { full, stats: { operations, tablesRead, durationMs: Math.round(performance.now() - started) } };
    },
    async stop(): Promise<void> {
      // The tables stay: a restart must not interrupt traffic.
      kernel.close();
    },
  };
}

/** Deletes kproxy's tables (both families) and nothing else. */
export async function cleanupNftables(options: NftablesProxyOptions): Promise<void> {
  const kernel = options.kernel ?? new NetlinkKernel();
  const log = options.log.child({ mode: 'nftables' });
  const failures: string[] = [];
  try {
    for (const family of FAMILIES) {
      try {
        await kernel.transact(deleteTableTransaction(FAMILY_OF[family], TABLE), new Map());
        log.info({ family }, 'removed kproxy nftables table');
      } catch (error) {
        if (error instanceof NetlinkError && error.errno === 2) continue; // not there
        failures.push((error as Error).message);
      }
    }
  } finally {
    kernel.close();
  }
  if (failures.length > 0) throw new Error(`nftables cleanup incomplete: ${failures.join('; ')}`);
}
