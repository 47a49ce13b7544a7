// The plan-identity diff: which plans a partial sync compiles again.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { changedPlans, type FamilySource } from '../../kit/plan-diff.ts';
import type { ServicePortPlan } from '../../src/model/types.ts';

// Only the key and the object's identity matter here.
const plan = (key: string): ServicePortPlan => ({ key }) as unknown as ServicePortPlan;
const source = (services: readonly ServicePortPlan[], contextKey = 'ctx'): FamilySource<never> => ({
  family: 'IPv4', contextKey, services, compileService: () => { throw new Error('not compiled here'); },
});
const keys = (list: readonly ServicePortPlan[]): string[] => list.map((p) => p.key);

describe('changedPlans', () => {
  const [a, b, c, d] = ['a/x:80/TCP', 'b/y:53/UDP', 'c/z:443/TCP', 'd/w:80/TCP'].map(plan) as [ServicePortPlan, ServicePortPlan, ServicePortPlan, ServicePortPlan];
  const bChanged = plan(b.key);

  const cases: ReadonlyArray<{ name: string; before: ServicePortPlan[]; after: ServicePortPlan[]; removed: string[]; added: string[] }> = [
    { name: 'nothing changed', before: [a, b, c], after: [a, b, c], removed: [], added: [] },
    { name: 'a plan replaced by a new object with the same key', before: [a, b, c], after: [a, bChanged, c], removed: [b.key], added: [b.key] },
    { name: 'one added in the middle, one removed at the end', before: [a, c, d], after: [a, b, c], removed: [d.key], added: [b.key] },
    { name: 'all removed', before: [a, b], after: [], removed: [a.key, b.key], added: [] },
    { name: 'from nothing', before: [], after: [c, d], removed: [], added: [c.key, d.key] },
    { name: 'out of order (falls back to identity)', before: [c, a, b], after: [b, a, d], removed: [c.key], added: [d.key] },
  ];
  for (const { name, before, after, removed, added } of cases) {
    test(name, () => {
      const changes = changedPlans(source(before), source(after));
      assert.deepEqual(keys(changes.removed), removed);
      assert.deepEqual(keys(changes.added), added);
      if (name.startsWith('a plan replaced')) assert.equal(changes.added[0], bChanged);
    });
  }

  test('a new context changes every plan', () => {
    const changes = changedPlans(source([a, b]), source([a, b], 'other'));
    assert.deepEqual([keys(changes.removed), keys(changes.added)], [[a.key, b.key], [a.key, b.key]]);
  });
});
