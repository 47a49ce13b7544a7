// What the iptables rules do beyond the first packet's verdict, read by the tracer (pure, no root): how new
// connections spread over the endpoints, session affinity over time, the later packets of a connection, and the
// mark a packet leaves the node with. Each case runs over the packet-flow table's cluster.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { materialize, type Ruleset } from '../../kit/iptables/ruleset.ts';
import { endpointOdds, traceEstablished, traceOutcomes, type TraceHistory } from '../../kit/iptables/trace.ts';
import { mode } from '../../modes/iptables/index.ts';
import type { Packet } from '../../src/model/trace.ts';
import type { IPFamily } from '../../src/model/types.ts';
import { ipFamily } from '../../src/util/ip.ts';
import { stateOf, testOptions } from '../fixtures/compute-helpers.ts';
import { endpoint, service, slice } from '../fixtures/objects.ts';
import { FLOW_CASES, flowClusterState } from './table.ts';

const state = flowClusterState();
const compiled = mode.compile(state);
const rulesets = new Map<IPFamily, Ruleset>();
const rulesetOf = (family: IPFamily): Ruleset => {
  let ruleset = rulesets.get(family);
  if (!ruleset) rulesets.set(family, ruleset = materialize(compiled.families[family]));
  return ruleset;
};
const familyOf = (packet: Packet): IPFamily => ipFamily(packet.dst) ?? 'IPv4';
const outcomesOf = (packet: Packet, history?: TraceHistory) =>
  traceOutcomes(rulesetOf(familyOf(packet)), packet, { nodeIPs: state.families[familyOf(packet)].nodeIPs }, history);
const forwarded = FLOW_CASES.filter((flow) => flow.expect.kind === 'forward');
const near = (a: number, b: number): boolean => Math.abs(a - b) < 1e-9;

describe('iptables: new connections spread evenly, and every one is DNATed', () => {
  for (const flow of forwarded) {
    test(flow.name, () => {
      const odds = endpointOdds(outcomesOf(flow.packet));
      const reached = flow.expect.kind === 'forward' ? flow.expect.reaches.map((r) => r.endpoint) : [];
      assert.deepEqual([...odds.keys()].sort(), [...reached].sort());
      const total = [...odds.values()].reduce((a, b) => a + b, 0);
      assert.ok(near(total, 1), `every new connection reaches an endpoint (total ${total})`);
      for (const [endpoint, p] of odds) assert.ok(near(p, 1 / reached.length), `${endpoint}: ${p}, not 1/${reached.length}`);
    });
  }

  test('with many endpoints too (the split is 1/n, 1/(n-1), … 1/2, then the rest)', () => {
    const endpoints = Array.from({ length: 7 }, (_, i) => endpoint({ ip: `10.244.1.${10 + i}`, node: 'node-a' }));
    const wide = stateOf({ services: [service()], slices: [slice({ endpoints })] }, testOptions({ clusterCIDRs: ['10.244.0.0/16'] }));
    const ruleset = materialize(mode.compile(wide).families.IPv4);
    const odds = endpointOdds(traceOutcomes(ruleset, { src: '10.244.2.9', dst: '10.96.0.10', port: 80, protocol: 'TCP', from: 'pod' }, { nodeIPs: [] }));
    assert.equal(odds.size, 7);
    for (const [endpoint, p] of odds) assert.ok(near(p, 1 / 7), `${endpoint}: ${p}`);
  });
});

describe('iptables: ClientIP affinity keeps a client on its endpoint for timeoutSeconds (60 s here), then lets it go', () => {
  const first: Packet = { src: '10.244.1.200', dst: '10.96.0.19', port: 80, protocol: 'TCP', from: 'pod' };
  const outcomes = outcomesOf(first).filter((o) => o.ending === 'ACCEPT' && o.state.dnat !== undefined);
  /** The history the first connection (that took `outcome`) left, `seconds` later. */
  const after = (outcome: (typeof outcomes)[number], seconds: number): TraceHistory => ({
    now: seconds,
    recent: new Map(outcome.state.remembered.map((name) => [name, new Map([[first.src, 0]])])),
  });

  test('the first connection records its endpoint', () => {
    assert.equal(outcomes.length, 3);
    for (const outcome of outcomes) assert.equal(outcome.state.remembered.length, 1, outcome.state.dnat);
  });
  for (const [seconds, sticks] of [[1, true], [59, true], [61, false], [10_801, false]] as const) {
    test(`a second connection ${seconds} s later ${sticks ? 'goes to the same endpoint' : 'is balanced again'}`, () => {
      for (const outcome of outcomes) {
        const odds = endpointOdds(outcomesOf(first, after(outcome, seconds)));
        if (sticks) assert.deepEqual([...odds], [[outcome.state.dnat, 1]]);
        else {
          assert.equal(odds.size, 3, `from ${outcome.state.dnat}`);
          for (const p of odds.values()) assert.ok(near(p, 1 / 3));
        }
      }
    });
  }
  test('another client is not held by the first one\'s affinity', () => {
    const [outcome] = outcomes;
    assert.ok(outcome);
    const odds = endpointOdds(outcomesOf({ ...first, src: '10.244.1.201' }, after(outcome, 1)));
    assert.equal(odds.size, 3);
  });
});

describe('iptables: the later packets of a forwarded connection are accepted (a FORWARD policy of DROP must not cut them)', () => {
  for (const flow of forwarded) {
    const family = familyOf(flow.packet);
    const firstPackets = outcomesOf(flow.packet).filter((o) => o.ending === 'ACCEPT' && o.state.dnat !== undefined);
    test(flow.name, () => {
      for (const first of firstPackets) {
        const endings = traceEstablished(rulesetOf(family), flow.packet, first.state, { nodeIPs: state.families[family].nodeIPs }).map((p) => p.ending);
        const crossesForward = flow.packet.from !== 'node' && !state.families[family].nodeIPs.includes(first.state.dst);
        assert.deepEqual([...new Set(endings)], [crossesForward ? 'ACCEPT' : 'CONTINUE'], `${first.state.dnat}`);
      }
    });
  }
});

describe('iptables: a packet leaves the node without kproxy\'s masquerade mark (no second masquerade after re-routing)', () => {
  const bit = (1 << state.settings.masqueradeBit) >>> 0;
  for (const flow of forwarded) {
    test(flow.name, () => {
      const accepted = outcomesOf(flow.packet).filter((o) => o.ending === 'ACCEPT');
      const masqueraded = flow.expect.kind === 'forward' && flow.expect.reaches.some((r) => r.masquerade);
      assert.equal(accepted.some((o) => o.state.masquerade), masqueraded, 'the case checks a masqueraded packet when it has one');
      for (const outcome of accepted) assert.equal(outcome.state.mark & bit, 0, `${outcome.state.dnat} masquerade=${outcome.state.masquerade}`);
    });
  }
});
