import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Balancer } from '../../modes/userspace/balancer.ts';
import { RemoteChooser, serveDecisions } from '../../modes/userspace/decider.ts';

const eps = [{ id: 'a' }, { id: 'b' }, { id: 'c' }];
const rr = { serviceKey: 'default/rr:' };
const sticky = { serviceKey: 'default/sticky:', affinityTimeoutMs: 60_000 };
const path = (): string => `\0kproxy-test-${process.pid}-${randomBytes(6).toString('hex')}`;
const first = async (p: { id: string }[] | Promise<{ id: string }[]>): Promise<string | undefined> => (await p)[0]?.id;

describe('userspace decider: endpoint choices made in relay host 0 for every relay process', () => {
  test('round robin is one sequence over host 0 and the hosts that ask it; affinity is global', async () => {
    const at = path();
    const balancer = new Balancer();
    const server = await serveDecisions(balancer, at);
    const hosts = [new RemoteChooser({ path: at }), new RemoteChooser({ path: at })];
    try {
      for (const h of hosts) assert.equal(await h.ready(2000), true);
      const choosers = [balancer, ...hosts];
      const firsts: (string | undefined)[] = [];
      for (let i = 0; i < 9; i++) firsts.push(await first(choosers[i % 3]!.order(rr, eps, '10.0.0.1')));
      assert.deepEqual(firsts, ['a', 'b', 'c', 'a', 'b', 'c', 'a', 'b', 'c']);
      // A retry succeeded on "c" in host 1: every host sends the client there from now on.
      const order = await hosts[0]!.order(sticky, eps, '10.0.0.9');
      hosts[0]!.chosen(sticky, '10.0.0.9', { id: 'c' });
      assert.ok(order.length === 3);
      await new Promise((r) => setTimeout(r, 50));
      for (const c of choosers) assert.equal(await first(c.order(sticky, eps, '10.0.0.9')), 'c');
      assert.notEqual(await first(hosts[1]!.order(sticky, eps, '10.0.0.8')), undefined);
    } finally {
      for (const h of hosts) h.close();
      server.close();
    }
  });

  test('host 0 unreachable: a host decides alone (every endpoint still in the order)', async () => {
    const lonely = new RemoteChooser({ path: path(), timeoutMs: 100 });
    try {
      assert.equal(await lonely.ready(100), false);
      const order = await lonely.order(rr, eps, '10.0.0.1');
      assert.deepEqual(order.map((e) => e.id).sort(), ['a', 'b', 'c']);
    } finally {
      lonely.close();
    }
  });
});
