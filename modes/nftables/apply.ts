// The nftables mode's apply layer: checks at start that the kernel can hold the layout, then keeps one table per
// IP family in step with the desired state: the kit's family driver decides full or partial and cleans up UDP
// conntrack entries; writer.ts writes a family, over netlink (kernel.ts). Never flushes anything at start or stop;
// `--cleanup` deletes kproxy's tables and nothing else.
import { ModeError } from '../../kit/errors.ts';
import { runCommand, type CommandRunner } from '../../kit/exec.ts';
import { FamilySync, type CompiledFamilies, type FamilyWriter } from '../../kit/family-sync.ts';
import type { ModeOptions, Proxier } from '../../src/model/mode.ts';
import type { IPFamily } from '../../src/model/types.ts';
import { IP_FAMILIES } from '../../src/util/ip.ts';
import type { NftSource } from './diff.ts';
import { checkFeatures } from './features.ts';
import { NetlinkKernel, type Kernel } from './kernel.ts';
import { TABLE } from './names.ts';
import { NetlinkError } from './netlink/socket.ts';
import { FAMILY_OF } from './ruleset.ts';
import { deleteTableTransaction } from './transaction.ts';
import { NftTableWriter } from './writer.ts';

export interface NftablesProxyOptions extends ModeOptions {
  /** Where transactions go and tables are read from; default: netlink from this process (in the node's namespace). */
  readonly kernel?: Kernel;
  /** Runs the conntrack tool; tests and benchmarks may wrap it. */
  readonly run?: CommandRunner;
}

/** The kit's view of one family's writer. */
function familyWriter(writer: NftTableWriter): FamilyWriter<NftSource> {
  return {
    async full(source) {
      const report = await writer.full(source);
      return report === 'idle' ? 'idle' : report.operations;
    },
    partial: (prev, next) => writer.partial(prev, next),
  };
}

export async function createNftablesProxy(options: NftablesProxyOptions): Promise<Proxier<CompiledFamilies<NftSource>>> {
  const kernel = options.kernel ?? new NetlinkKernel();
  const run = options.run ?? runCommand;
  const log = options.log.child({ mode: 'nftables' });
  const writers = new Map<IPFamily, NftTableWriter>();
  for (const family of IP_FAMILIES) {
    const problem = await checkFeatures(kernel, family);
    if (problem === undefined) writers.set(family, new NftTableWriter(FAMILY_OF[family], kernel, log));
    else if (family === 'IPv4') throw new ModeError('KP_ERR_TOOL_MISSING', problem, { family });
    else log.info({ problem }, 'IPv6 nftables unavailable; serving IPv4 only');
  }
  const driver = new FamilySync<NftSource>({
    families: new Map([...writers].map(([family, writer]) => [family, familyWriter(writer)])), run, log,
    ...(options.metrics && { metrics: options.metrics }),
  });
  return {
    async sync(compiled, request) {
      try {
        return await driver.sync(compiled, request);
      } catch (error) {
        // The driver forgets what every family holds; so does each writer (the next full sync reads the kernel).
        for (const writer of writers.values()) writer.forget();
        throw error;
      }
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
    for (const family of IP_FAMILIES) {
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
  if (failures.length > 0) throw new ModeError('KP_ERR_APPLY_FAILED', `nftables cleanup incomplete: ${failures.join('; ')}`);
}
