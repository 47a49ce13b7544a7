// The peer benchmark's change plan (bench/peer/changes.ts): the same for every proxy and round, every change visible
// to both proxies (no hinted slice), the pairs and the burst on distinct slices, a burst larger than the slices left
// carrying each slice's earlier additions, and reverting puts every touched slice back once.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { planChanges, revertAll } from '../../bench/peer/changes.ts';
import type { Admin } from '../../bench/apiserver-load.ts';
import { syntheticCluster, type RawObject } from '../fixtures/synthetic.ts';

const cluster = (services: number) => syntheticCluster({ services, endpointsPerService: 10, nodeName: 'bench-node', seed: 7 });
const addresses = (endpoints: readonly RawObject[]): string[] => endpoints.map((e) => (e.addresses as string[])[0] ?? '');

describe('peer benchmark change plan', () => {
  test('deterministic, no hinted slice, pairs and burst on distinct slices, fresh addresses', () => {
    const a = planChanges(cluster(2000), 50, 1000);
    assert.deepEqual(planChanges(cluster(2000), 50, 1000), a);
    const pairPaths = new Set(a.pairs.map((c) => c.path));
    assert.equal(pairPaths.size, 50);
    assert.equal(new Set(a.burst.map((c) => c.path)).size, 1000);
    assert.ok(a.burst.every((c) => !pairPaths.has(c.path)));
    for (const change of [...a.pairs, ...a.burst]) {
      assert.ok(change.original.every((e) => e.hints === undefined), `${change.path} has no hints`);
      assert.deepEqual(addresses(change.changed), [...addresses(change.original), change.added]);
      assert.match(change.added, /^10\.24[67]\./, 'outside the synthetic pods (10.244/16)');
    }
    assert.equal(new Set([...a.pairs, ...a.burst].map((c) => c.added)).size, 1050);
  });

  test('a burst larger than the slices left: later changes carry the earlier additions to the same slice', () => {
    const plan = planChanges(cluster(1000), 50, 1000);
    const bySlice = new Map<string, string[]>();
    for (const change of plan.burst) {
      const earlier = bySlice.get(change.path) ?? [];
      assert.deepEqual(addresses(change.changed).slice(change.original.length), [...earlier, change.added]);
      bySlice.set(change.path, [...earlier, change.added]);
    }
    assert.ok([...bySlice.values()].some((added) => added.length === 2));
    // a slice's second change comes a whole round of the burst after its first: they never overtake one another
    const first = new Map<string, number>();
    plan.burst.forEach((c, i) => { const at = first.get(c.path); if (at === undefined) first.set(c.path, i); else assert.ok(i - at >= 800); });
  });

  test('revertAll puts each touched slice back once, to its original endpoints', async () => {
    const plan = planChanges(cluster(1000), 5, 1000);
    const patched = new Map<string, unknown>();
    const admin: Admin = { request: async (_m, path, body) => { assert.ok(!patched.has(path), `${path} once`); patched.set(path, body); return 200; }, close: async () => {} };
    await revertAll(admin, [...plan.pairs, ...plan.burst]);
    assert.equal(patched.size, new Set([...plan.pairs, ...plan.burst].map((c) => c.path)).size);
    for (const change of plan.burst) assert.deepEqual(patched.get(change.path), { endpoints: change.original });
  });
});
