// The writer's choice between reading the kernel's table and trusting what it wrote, against the strict kernel
// model: a periodic resync reads the table only when the nf_tables generation moved (or every VERIFY_EVERY
// resyncs), including after a restart on a table that needed nothing and after another program's commit.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../src/log.ts';
import { ClusterStore } from '../../src/store/cluster-store.ts';
import { compileSource, fullTransaction, assembleSource } from '../../modes/nftables/diff.ts';
import type { Kernel } from '../../modes/nftables/kernel.ts';
import type { KernelChain } from '../../modes/nftables/netlink/read.ts';
import { VERIFY_EVERY, NftTableWriter } from '../../modes/nftables/writer.ts';
import { ModelKernel } from '../fixtures/nft-model-kernel.ts';
import { syntheticCluster } from '../fixtures/synthetic.ts';

/** The Kernel seam over the model, counting whole-table reads; `commit()` is another program's transaction. */
class FakeKernel implements Kernel {
  readonly model = new ModelKernel();
  reads = 0;
  #generation = 1;

  commit(): void { this.#generation++; }
  async transact(tx: Parameters<Kernel['transact']>[0]): Promise<void> { this.model.apply(tx); this.#generation++; }
  async stream(): Promise<void> { throw new Error('the table exists in these tests'); }
  async generation(): Promise<number> { return this.#generation; }
  async exists(): Promise<boolean> { return this.model.exists; }
  async read(family: 'ip' | 'ip6') {
    this.reads++;
    return this.model.exists ? this.model.view(family) : undefined;
  }
  async rules(family: 'ip' | 'ip6', _table: string, chains: readonly string[]) {
    const all = this.model.view(family).chains;
    return new Map(chains.map((name) => [name, all.get(name)?.rules ?? []]));
  }
  async chains(family: 'ip' | 'ip6'): Promise<ReadonlyMap<string, KernelChain>> { return this.model.view(family).chains; }
  close(): void {}
}

function source() {
  const cluster = syntheticCluster({ services: 30, endpointsPerService: 3, nodeName: 'node-0', seed: 3 });
  const store = new ClusterStore({ compute: { nodeName: 'node-0', clusterCIDRs: ['10.244.0.0/16'], nodePortAddresses: [], masqueradeAll: false, masqueradeBit: 14 } });
  store.replaceAll('Node', [cluster.node]);
  store.replaceAll('Service', cluster.services);
  store.replaceAll('EndpointSlice', cluster.slices);
  store.synced();
  return compileSource(store.snapshot(), 'IPv4');
}

describe('nftables writer: when the table is read', () => {
  test('a restart on a table that needs nothing reads it once; later resyncs read only when someone committed', async () => {
    const src = source();
    const kernel = new FakeKernel();
    await kernel.transact(await fullTransaction(assembleSource(src).table, undefined)); // the previous agent's table
    const writer = new NftTableWriter('ip', kernel, silentLogger());
    const reads: boolean[] = [];
    const resync = async (): Promise<void> => {
      const report = await writer.full(src);
      assert.notEqual(report, 'idle');
      if (report !== 'idle') reads.push(report.read);
    };
    await resync(); // restart: reads, nothing to write
    await resync();
    await resync();
    kernel.commit(); // another program's table changed
    await resync(); // reads, nothing of ours to repair
    await resync();
    assert.deepEqual(reads, [true, false, false, true, false]);
    assert.equal(kernel.reads, 2);
  });

  test(`without any commit, every ${VERIFY_EVERY + 1}th resync still reads`, async () => {
    const src = source();
    const kernel = new FakeKernel();
    await kernel.transact(await fullTransaction(assembleSource(src).table, undefined));
    const writer = new NftTableWriter('ip', kernel, silentLogger());
    for (let i = 0; i < 2 * (VERIFY_EVERY + 1); i++) await writer.full(src);
    assert.equal(kernel.reads, 2);
  });
});
