// Partial and full transactions against a strict model of the kernel's table: every step of a series of cluster
// changes must leave exactly the table a fresh compile gives, a partial transaction must stay small whatever the
// number of services, and a full diff must repair any drift and be empty when there is none.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { assembleSource, compileSource, fullDiff, fullTransaction, mirrorOf, partialTransaction, type Mirror, type NftSource } from '../../modes/nftables/diff.ts';
import { ruleComment } from '../../modes/nftables/render.ts';
import { FAMILY_OF } from '../../modes/nftables/ruleset.ts';
import { isEmptyTransaction, transactionSize } from '../../modes/nftables/transaction.ts';
import type { IPFamily } from '../../src/model/types.ts';
import type { DesiredState } from '../../src/model/types.ts';
import { ClusterStore } from '../../src/store/cluster-store.ts';
import { ModelKernel } from '../fixtures/nft-model-kernel.ts';
import { mutateOneEndpoint, syntheticCluster, type RawObject, type SyntheticCluster } from '../fixtures/synthetic.ts';

function storeOf(cluster: SyntheticCluster): ClusterStore {
  const store = new ClusterStore({
    compute: { nodeName: 'node-0', clusterCIDRs: ['10.244.0.0/16', 'fd00:10:244::/64'], nodePortAddresses: [], masqueradeAll: false, masqueradeBit: 14 },
    onInvalid: (i) => { throw new Error(`${i.kind} ${i.ref}: ${i.reason}`); },
  });
  store.replaceAll('Node', [cluster.node]);
  store.replaceAll('Service', cluster.services);
  store.replaceAll('EndpointSlice', cluster.slices);
  store.synced();
  return store;
}

interface Steps {
  readonly name: string;
  readonly change: (cluster: SyntheticCluster, store: ClusterStore) => void;
}

const sliceOf = (cluster: SyntheticCluster, i: number): RawObject => cluster.slices[i % cluster.slices.length] as RawObject;
const serviceOf = (cluster: SyntheticCluster, i: number): RawObject => cluster.services[i % cluster.services.length] as RawObject;
const meta = (o: RawObject): { name: string; namespace: string } => o.metadata as { name: string; namespace: string };

/** 33 endpoints more (or fewer) for one IPv4 and one IPv6 slice. */
function resize(c: SyntheticCluster, s: ClusterStore, change: 'add' | 'remove'): void {
  for (const type of ['IPv4', 'IPv6']) {
    const index = c.slices.findIndex((slice) => slice.addressType === type);
    for (let i = 0; i < 33; i++) s.upsert('EndpointSlice', mutateOneEndpoint(c, { change, sliceIndex: index }));
  }
}

const STEPS: readonly Steps[] = [
  { name: 'one endpoint added', change: (c, s) => s.upsert('EndpointSlice', mutateOneEndpoint(c, { change: 'add', sliceIndex: 3 })) },
  { name: 'one endpoint removed', change: (c, s) => s.upsert('EndpointSlice', mutateOneEndpoint(c, { change: 'remove', sliceIndex: 7 })) },
  { name: 'an endpoint turns not ready', change: (c, s) => s.upsert('EndpointSlice', mutateOneEndpoint(c, { change: 'toggle-ready', sliceIndex: 11 })) },
  { name: 'every endpoint of a service removed', change: (c, s) => { const slice = structuredClone(sliceOf(c, 12)); slice.endpoints = []; s.upsert('EndpointSlice', slice); } },
  { name: 'a service deleted', change: (c, s) => { const svc = serviceOf(c, 20); s.remove('Service', meta(svc).namespace, meta(svc).name); } },
  { name: 'the service back', change: (c, s) => s.upsert('Service', serviceOf(c, 20)) },
  {
    name: 'a second service claims an external IP already in use, then gives it back',
    change: (c, s) => {
      const taken = c.services.find((svc) => ((svc.spec as { externalIPs?: string[] }).externalIPs ?? []).length > 0);
      const late = structuredClone(serviceOf(c, 2));
      (late.metadata as { name: string }).name = 'aaa-first-by-key';
      (late.metadata as { namespace: string }).namespace = 'aaa';
      (late.spec as { externalIPs: string[] }).externalIPs = (taken?.spec as { externalIPs: string[] }).externalIPs;
      (late.spec as { clusterIP: string; clusterIPs: string[] }).clusterIP = '10.111.0.1';
      (late.spec as { clusterIPs: string[] }).clusterIPs = ['10.111.0.1'];
      s.upsert('Service', late);
      const slice = structuredClone(sliceOf(c, 2));
      (slice.metadata as { name: string; namespace: string; labels: Record<string, string> }).name = 'aaa-first-by-key-x';
      (slice.metadata as { namespace: string }).namespace = 'aaa';
      (slice.metadata as { labels: Record<string, string> }).labels = { 'kubernetes.io/service-name': 'aaa-first-by-key' };
      s.upsert('EndpointSlice', slice);
    },
  },
  { name: 'the claimant goes away', change: (_c, s) => s.remove('Service', 'aaa', 'aaa-first-by-key') },
  { name: 'many endpoints change at once', change: (c, s) => { for (let i = 0; i < 30; i++) s.upsert('EndpointSlice', mutateOneEndpoint(c, { change: i % 2 ? 'add' : 'remove', sliceIndex: i * 5 })); } },
  { name: 'a service grows to an endpoint count no other has', change: (c, s) => resize(c, s, 'add') },
  { name: 'and shrinks back (its balancer is let go)', change: (c, s) => resize(c, s, 'remove') },
  {
    name: 'a session-affinity service deleted (its chains and set are let go)',
    change: (c, s) => {
      const sticky = c.services.find((svc) => (svc.spec as { sessionAffinity?: string }).sessionAffinity === 'ClientIP');
      if (sticky) s.remove('Service', meta(sticky).namespace, meta(sticky).name);
    },
  },
  { name: 'nothing changes for a while', change: () => {} },
  { name: 'still nothing', change: () => {} },
];

describe('nftables diffs', () => {
  for (const family of ['IPv4', 'IPv6'] as const) {
    test(`${family}: partial transactions keep the kernel equal to a fresh compile, step after step`, async () => {
      const cluster = syntheticCluster({ services: 300, endpointsPerService: 4, nodeName: 'node-0', seed: 11, dualStack: true });
      const store = storeOf(cluster);
      let source = compileSource(store.snapshot(), family);
      const kernel = new ModelKernel();
      const first = assembleSource(source);
      kernel.apply(await fullTransaction(first.table, undefined));
      kernel.assertHolds(first.table, 'first');
      const mirror: Mirror = mirrorOf(source, first);
      let now = 0;
      let lingered = 0;
      for (const step of STEPS) {
        step.change(cluster, store);
        now += 400;
        const next = compileSource(store.snapshot(), family);
        const tx = partialTransaction(mirror, next, now);
        kernel.apply(tx);
        const fresh = assembleSource(next);
        kernel.assertHolds(fresh.table, step.name, mirror);
        lingered += mirror.lingering.size;
        const full = await fullDiff(fresh.table, kernel.view(fresh.table.family));
        assert.deepEqual(full.tx.deleteElements, new Map(), `${step.name}: no element left for a full diff`);
        assert.deepEqual(full.tx.addElements, new Map(), `${step.name}: no element left for a full diff`);
        assert.deepEqual([...mirror.claims].sort(), [...fresh.claims].sort(), `${step.name}: claims`);
        source = next;
      }
      assert.ok(lingered > 0, 'some chain was let go on the way');
      // Once they have lingered long enough, the next sync (even one without changes) deletes them.
      kernel.apply(partialTransaction(mirror, source, now + 2000));
      kernel.assertHolds(assembleSource(source).table, 'after the lingering');
      assert.equal(mirror.lingering.size + mirror.lingeringSets.size, 0);
      assert.ok(isEmptyTransaction(await fullTransaction(assembleSource(source).table, kernel.view(FAMILY_OF[family]))), 'nothing left for a full diff');
      assert.equal(mirror.source, source);
    });
  }

  test('one endpoint change writes the same few elements at 300 and at 3000 services', async () => {
    const sizes = [300, 3000].map((services) => {
      const cluster = syntheticCluster({ services, endpointsPerService: 10, nodeName: 'node-0', seed: 42 });
      const store = storeOf(cluster);
      const source = compileSource(store.snapshot(), 'IPv4');
      const mirror = mirrorOf(source, assembleSource(source));
      const slice = cluster.slices.findIndex((s) => ((s.metadata as { name: string }).name === 'svc-1-0'));
      store.upsert('EndpointSlice', mutateOneEndpoint(cluster, { change: 'add', sliceIndex: slice }));
      return transactionSize(partialTransaction(mirror, compileSource(store.snapshot(), 'IPv4')));
    });
    assert.deepEqual(sizes[0], sizes[1]);
    assert.ok((sizes[0]?.elements ?? 0) <= 30, JSON.stringify(sizes[0]));
  });

  test('a full diff repairs drift: missing and extra elements, an edited rule, a deleted chain, a stray set', async () => {
    const cluster = syntheticCluster({ services: 100, endpointsPerService: 3, nodeName: 'node-0', seed: 5 });
    const state: DesiredState = storeOf(cluster).snapshot();
    const table = assembleSource(compileSource(state, 'IPv4')).table;
    const kernel = new ModelKernel();
    kernel.apply(await fullTransaction(table, undefined));
    const ips = kernel.elements.get('service-ips');
    const [firstKey] = ips?.keys() ?? [];
    if (firstKey) ips?.delete(firstKey);
    ips?.set('10.99.99.99 . tcp . 1', 'drop');
    kernel.chains.set('services', ['jump nowhere comment "#00000000"']);
    kernel.chains.delete('masquerading');
    kernel.sets.set('stray', { name: 'stray', key: [{ kind: 'mark' }] });
    const repair = await fullTransaction(table, kernel.view('ip'));
    assert.deepEqual(repair.replaceChains.map((c) => c.name), ['services']);
    assert.deepEqual(repair.addChains.map((c) => c.name), ['masquerading']);
    assert.deepEqual(repair.deleteSets, ['stray']);
    assert.deepEqual(repair.deleteElements.get('service-ips'), ['10.99.99.99 . tcp . 1']);
    assert.equal(repair.addElements.get('service-ips')?.length, 1);
    kernel.elements.delete('stray');
    kernel.apply(repair);
    kernel.assertHolds(table, 'repaired');
  });

  test('a rule someone rewrote under kproxy\'s own comment is replaced (seen by its expressions)', async () => {
    const cluster = syntheticCluster({ services: 10, endpointsPerService: 2, nodeName: 'node-0', seed: 5 });
    const table = assembleSource(compileSource(storeOf(cluster).snapshot(), 'IPv4')).table;
    const kernel = new ModelKernel();
    kernel.apply(await fullTransaction(table, undefined));
    const view = kernel.view('ip');
    const seen = new Map([...view.chains].map(([name, c]) => [name, c.rules.map((r) => r.expressions)]));
    assert.ok(isEmptyTransaction(await fullTransaction(table, view, seen)));
    const services = table.chains.find((c) => c.name === 'services');
    const comment = ruleComment(services?.rules[1] ?? { matches: [], statements: [] }, 'ip');
    const edited = { ...view, chains: new Map(view.chains).set('services', { name: 'services', rules: (view.chains.get('services')?.rules ?? []).map((r, i) => (i === 1 ? { comment, expressions: 'different' } : r)) }) };
    assert.deepEqual((await fullTransaction(table, edited, seen)).replaceChains.map((c) => c.name), ['services']);
  });

  test('a stale chain an element still points at lingers past the full diff that deletes the element', async () => {
    const cluster = syntheticCluster({ services: 10, endpointsPerService: 2, nodeName: 'node-0', seed: 5 });
    const table = assembleSource(compileSource(storeOf(cluster).snapshot(), 'IPv4')).table;
    const kernel = new ModelKernel();
    kernel.apply(await fullTransaction(table, undefined));
    kernel.chains.set('old-chain', []);
    kernel.chains.set('orphan', []);
    kernel.sets.set('old-set', { name: 'old-set', key: [{ kind: 'mark' }] });
    kernel.elements.set('old-set', new Map());
    kernel.elements.get('service-ips')?.set('10.99.0.1 . tcp . 80', 'goto old-chain');
    const { tx, lingering } = await fullDiff(table, kernel.view('ip'));
    assert.deepEqual(tx.deleteElements.get('service-ips'), ['10.99.0.1 . tcp . 80']);
    assert.deepEqual(tx.deleteChains, ['orphan'], 'the chain nothing points at goes at once');
    assert.deepEqual(lingering, { chains: ['old-chain'], sets: ['old-set'] });
    kernel.apply(tx);
    // A later transaction deletes what lingered.
    const mirror = mirrorOf(compileSource(storeOf(cluster).snapshot(), 'IPv4'), assembleSource(compileSource(storeOf(cluster).snapshot(), 'IPv4')), lingering, 0);
    const later = partialTransaction(mirror, mirror.source, 5000);
    assert.deepEqual([later.deleteChains, later.deleteSets], [['old-chain'], ['old-set']]);
    kernel.apply(later);
    kernel.assertHolds(table, 'lingered, then deleted');
  });

  test('a set in an older layout makes the full diff rebuild the table in one transaction', async () => {
    const cluster = syntheticCluster({ services: 10, endpointsPerService: 2, nodeName: 'node-0', seed: 5 });
    const table = assembleSource(compileSource(storeOf(cluster).snapshot(), 'IPv4')).table;
    const kernel = new ModelKernel();
    kernel.apply(await fullTransaction(table, undefined));
    const view = kernel.view('ip');
    const sets = new Map(view.sets).set('hairpin', { name: 'hairpin', interval: false, timeout: false, keyLength: 4 });
    const tx = await fullTransaction(table, { ...view, sets });
    assert.equal(tx.deleteTable, true);
    kernel.apply(tx);
    kernel.assertHolds(table, 'rebuilt');
  });
});

// Keep the unused-type import honest for readers: the sources compared above are NftSources of one family.
export type { NftSource, IPFamily };
