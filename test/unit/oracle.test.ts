// The behavioural oracle's pure parts (test/kube/oracle.ts): the packet grid, observations, and the comparisons that
// decide whether kproxy and kube-proxy agree.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  affinityVerdict, differences, observation, packetGrid, significant, splitProblems, type Observation,
} from '../kube/oracle.ts';

const summary = (pairs: Record<string, number>, errors: Record<string, number> = {}): Parameters<typeof observation>[0] =>
  ({ answers: {}, slowestMs: 0, peers: {}, pairs, errors, ms: 1 });
const obs = (counts: Record<string, number>): Observation => {
  const map = new Map(Object.entries(counts));
  return { n: [...map.values()].reduce((a, b) => a + b, 0), counts: map };
};
const plain = { sticky: false, source: 'pod' } as const;

describe('packet grid', () => {
  const service = {
    metadata: { name: 'web', namespace: 'shop' },
    spec: {
      clusterIPs: ['10.96.0.5', 'fd00:96::5'], sessionAffinity: 'ClientIP', externalIPs: ['192.168.200.9'],
      ports: [{ name: 'http', port: 80, nodePort: 30080, protocol: 'TCP' }, { name: 'sctp', port: 9, protocol: 'SCTP' }, { port: 53, protocol: 'UDP' }],
    },
    status: { loadBalancer: { ingress: [{ ip: '192.168.200.8' }] } },
  };
  const grid = packetGrid([service], { nodeIP: { IPv4: '192.168.100.2', IPv6: 'fd00:100::2' } });

  test('every frontend of every TCP/UDP port, from every source; localhost NodePorts only from the node', () => {
    const tcp = grid.filter((c) => c.protocol === 'TCP');
    const frontends = new Set(tcp.map((c) => `${c.frontend} ${c.dst}:${c.port}`));
    assert.deepEqual([...frontends].sort(), [
      'ClusterIP 10.96.0.5:80', 'ClusterIP fd00:96::5:80', 'ExternalIP 192.168.200.9:80', 'LoadBalancer 192.168.200.8:80',
      'NodePort 127.0.0.1:30080', 'NodePort 192.168.100.2:30080', 'NodePort fd00:100::2:30080',
    ]);
    assert.deepEqual(tcp.filter((c) => c.dst === '127.0.0.1').map((c) => c.source), ['node']);
    assert.equal(tcp.filter((c) => c.dst === '10.96.0.5').length, 4);
    assert.equal(grid.some((c) => c.port === 9), false, 'SCTP is left out');
    assert.equal(grid.filter((c) => c.protocol === 'UDP' && c.frontend === 'ClusterIP').length, 8);
    assert.ok(grid.every((c) => c.sticky && c.service === 'shop/web'));
    assert.match(grid.find((c) => c.family === 'IPv6')?.name ?? '', /\[fd00:96::5\]:80\/TCP \(shop\/web http, ClusterIP\)$/);
  });
});

describe('observations', () => {
  test('backends with the source they saw; refusals apart from silence', () => {
    const o = observation(summary({ 'pod1 10.244.1.200': 3, 'pod2 10.244.1.1': 2 }, { ECONNREFUSED: 1, TIMEOUT: 2, EHOSTUNREACH: 1 }));
    assert.equal(o.n, 9);
    assert.deepEqual(Object.fromEntries(o.counts), { 'pod1 <- 10.244.1.200': 3, 'pod2 <- 10.244.1.1': 2, refused: 1, unanswered: 3 });
  });

  test('an outcome seen once, or in under 3 % of connections, is noise', () => {
    assert.deepEqual(significant(obs({ a: 100, b: 2, c: 4, d: 1 })), ['a', 'c']);
    assert.deepEqual(significant(obs({ a: 10, b: 1 })), ['a']);
  });
});

describe('comparison', () => {
  const cases: Array<{ name: string; ours: Record<string, number>; theirs: Record<string, number>; c?: { sticky: boolean; source: 'pod' | 'hairpin' }; differs: boolean }> = [
    { name: 'same backends, similar shares', ours: { 'p1 <- s': 80, 'p2 <- s': 80, 'p3 <- s': 80 }, theirs: { 'p1 <- s': 90, 'p2 <- s': 70, 'p3 <- s': 80 }, differs: false },
    { name: 'a backend only one of them reaches', ours: { 'p1 <- s': 120, 'p2 <- s': 120 }, theirs: { 'p1 <- s': 80, 'p2 <- s': 80, 'p3 <- s': 80 }, differs: true },
    { name: 'masqueraded by one only', ours: { 'p1 <- node': 24 }, theirs: { 'p1 <- s': 24 }, differs: true },
    { name: 'refused against silence', ours: { refused: 4 }, theirs: { unanswered: 4 }, differs: true },
    { name: 'shares far apart', ours: { 'p1 <- s': 160, 'p2 <- s': 80 }, theirs: { 'p1 <- s': 80, 'p2 <- s': 160 }, differs: true },
    { name: 'one stray timeout is noise', ours: { 'p1 <- s': 120, 'p2 <- s': 119, unanswered: 1 }, theirs: { 'p1 <- s': 120, 'p2 <- s': 120 }, differs: false },
    { name: 'sticky: which backend is chance', ours: { 'p1 <- s': 24 }, theirs: { 'p3 <- s': 24 }, c: { sticky: true, source: 'pod' }, differs: false },
    { name: 'sticky hairpin: masquerade follows the chance pick', ours: { 'p1 <- gw': 24 }, theirs: { 'p2 <- s': 24 }, c: { sticky: true, source: 'hairpin' }, differs: false },
    { name: 'sticky: two backends against one', ours: { 'p1 <- s': 12, 'p2 <- s': 12 }, theirs: { 'p3 <- s': 24 }, c: { sticky: true, source: 'pod' }, differs: true },
  ];
  for (const { name, ours, theirs, c, differs } of cases) {
    test(name, () => assert.equal(differences(obs(ours), obs(theirs), c ?? plain).length > 0, differs));
  }

  test('the even split: within the binomial bound passes, a skewed one fails, failures and affinity are exempt', () => {
    assert.deepEqual(splitProblems(obs({ 'p1 <- s': 90, 'p2 <- s': 75, 'p3 <- s': 75 }), false), []);
    assert.match(splitProblems(obs({ 'p1 <- s': 120, 'p2 <- s': 60, 'p3 <- s': 60 }), false)[0] ?? '', /p1 took 120 of 240 \(an even split is 80 ± 33\)/);
    assert.deepEqual(splitProblems(obs({ 'p1 <- s': 120, unanswered: 120 }), false), [], 'a phantom endpoint takes a share no split can name');
    assert.deepEqual(splitProblems(obs({ 'p1 <- s': 24 }), true), []);
    assert.match(splitProblems(obs({ 'p1 <- s': 12, 'p2 <- s': 12 }), true)[0] ?? '', /affinity: 2 backends/);
  });
});

describe('affinity from timed connections', () => {
  const at = (start: number, end: number, backend: string): { start: number; end: number; backend: string } => ({ start, end, backend });
  test('close pairs must stick, far ones are fresh picks, ambiguous ones count for neither', () => {
    const verdict = affinityVerdict([
      at(0, 100, 'a'), at(600, 700, 'a'), // ended 700 ms after the previous started: within 2 s
      at(3100, 3200, 'b'), // started 2.4 s after the previous ended: past 2 s + 300 ms
      at(5000, 5400, 'b'), // 1.8 s after the end, 2.3 s after the start: neither
    ], 2000);
    assert.deepEqual(verdict, { sticky: [['a', 'a']], fresh: ['a', 'b'] });
  });
});
