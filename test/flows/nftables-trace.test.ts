// The packet-flow table against the nftables tracer (the compiled table, interpreted), and what the verdicts
// leave out: how likely each endpoint is, and that session affinity sends a client back to its endpoint.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mode } from '../../modes/nftables/index.ts';
import { assembleSource } from '../../modes/nftables/diff.ts';
import { endpointShares, traceConnections, tracePaths } from '../../modes/nftables/trace.ts';
import type { Packet } from '../../src/model/trace.ts';
import { expectedIn, FLOW_CASES, flowClusterState, TOPOLOGY } from './table.ts';

describe('packet-flow table: nftables tracer', () => {
  const state = flowClusterState();
  const compiled = mode.compile(state);
  for (const flow of FLOW_CASES) {
    test(flow.name, () => {
      const { src, dst, port, protocol, from } = flow.packet;
      assert.deepEqual(mode.trace(compiled, flow.packet), expectedIn('nftables', flow), `${from} ${src} -> ${dst}:${port}/${protocol}`);
    });
  }
});

describe('nftables tracer: probabilities and affinity', () => {
  const state = flowClusterState();
  const compiled = mode.compile(state);
  const table = assembleSource(compiled.families.IPv4).table;
  const options = { nodeIPs: state.families.IPv4.nodeIPs };
  const fromPod = (dst: string, port: number): Packet => ({ from: 'pod', src: TOPOLOGY.clientPod, dst, port, protocol: 'TCP' });

  test('every endpoint of a service is equally likely, and the ways add up to one', () => {
    for (const dst of ['10.96.0.10', '10.96.0.19']) {
      const paths = tracePaths(table, fromPod(dst, 80), options);
      const shares = endpointShares(paths);
      assert.equal(shares.size, 3, dst);
      for (const [endpoint, share] of shares) assert.ok(Math.abs(share - 1 / 3) < 1e-9, `${dst} → ${endpoint}: ${share}`);
      assert.ok(Math.abs(paths.reduce((sum, p) => sum + p.probability, 0) - 1) < 1e-9);
    }
  });

  test('with session affinity, a second connection goes where the first went', () => {
    const connections = traceConnections(table, fromPod('10.96.0.19', 80), options);
    assert.equal(new Set(connections.map((c) => c.first.dnat)).size, 3);
    for (const { first, second } of connections) {
      assert.deepEqual([...second], [[first.dnat, 1]], `after ${first.dnat}`);
    }
  });

  test('with the affinity set full, new clients are still spread evenly (by the shared balancer), and not remembered', () => {
    const sticky = table.sets.find((set) => set.dynamic)?.name;
    assert.ok(sticky);
    const paths = tracePaths(table, fromPod('10.96.0.19', 80), { ...options, fullSets: [sticky] });
    const shares = endpointShares(paths);
    assert.equal(shares.size, 3);
    for (const [endpoint, share] of shares) assert.ok(Math.abs(share - 1 / 3) < 1e-9, `${endpoint}: ${share}`);
    assert.ok(paths.every((p) => p.remembered.size === 0));
  });

  test('without session affinity, a second connection is spread again', () => {
    for (const { second } of traceConnections(table, fromPod('10.96.0.10', 80), options)) assert.equal(second.size, 3);
  });
});
