import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { compile, compileSource } from '../../modes/iptables/compile.ts';
import { endpointChainName, MAX_CHAIN_NAME_LENGTH, serviceChainNames } from '../../modes/iptables/names.ts';
import { formatProbability, renderDiff, renderFull } from '../../kit/iptables/render.ts';
import { chainRules } from '../../kit/iptables/ruleset.ts';
import type { Chain, Rule, Ruleset } from '../../kit/iptables/ruleset.ts';
import type { DesiredState, FamilyPlan } from '../../src/model/types.ts';
import { ClusterStore } from '../../src/store/cluster-store.ts';
import { mutateOneEndpoint, syntheticCluster } from '../fixtures/synthetic.ts';
import { FLOW_COMPUTE_OPTIONS, flowClusterState } from '../flows/cluster.ts';
import { traceRuleset } from '../../kit/iptables/trace.ts';
import type { Packet, Verdict } from '../../src/model/trace.ts';
import { stateOf, testOptions } from '../fixtures/compute-helpers.ts';
import { endpoint, node, service, slice, type Raw } from '../fixtures/objects.ts';

const chain = (ruleset: Ruleset, table: 'nat' | 'filter', name: string): Chain => {
  const found = ruleset[table].chains.find((c) => c.name === name);
  assert.ok(found, `${table} ${name} exists`);
  return found;
};
const jumpsOf = (rules: readonly Rule[]): string[] => rules.flatMap((r) => (r.target.kind === 'jump' ? [r.target.chain] : []));

describe('chain names', () => {
  test('are pinned: a restart (or a new version) finds the chains it created', () => {
    assert.equal(serviceChainNames('default/echo:http', 'TCP').svc, 'KPROXY-SVC-IDMFET4ASB4INOXD');
    assert.equal(endpointChainName('default/echo:http', 'TCP', '10.244.1.2:8080'), 'KPROXY-SEP-YZ6Y7M4DTJ5VJBCY');
  });

  test('fit iptables, use the base32 alphabet, and differ by key, protocol and endpoint', () => {
    const names = new Set<string>();
    const cases: Array<[string, 'TCP' | 'UDP' | 'SCTP', string]> = [
      ['default/echo:http', 'TCP', '10.244.1.2:8080'], ['default/echo:http', 'UDP', '10.244.1.2:8080'],
      ['default/echo:', 'TCP', '10.244.1.2:8080'], ['default/echo:http', 'TCP', '10.244.1.3:8080'],
      ['a-very-long-namespace-name-with-many-characters/and-an-even-longer-service-name-to-be-sure:https-port', 'SCTP', '[fd00::1]:65535'],
    ];
    for (const [key, protocol, endpoint] of cases) {
      const svc = serviceChainNames(key, protocol);
      for (const name of [svc.svc, svc.svl, svc.ext, svc.fw, svc.hairpin, endpointChainName(key, protocol, endpoint)]) {
        assert.ok(name.length <= MAX_CHAIN_NAME_LENGTH, `${name} is ${name.length} chars`);
        assert.match(name, /^KPROXY-(SVC|SVL|EXT|FW|HP|SEP)-[A-Z2-7]{16}$/);
        names.add(name);
      }
    }
    // Five chains per service port (cases 0 and 3 share them) and one per endpoint.
    assert.equal(names.size, 4 * 5 + cases.length);
  });
});

test('probabilities read as iptables-save prints them', () => {
  const cases: Array<[number, string]> = [
    [1 / 2, '0.50000000000'], [1 / 3, '0.33333333349'], [1 / 4, '0.25000000000'], [1 / 10, '0.10000000009'],
    [1 / 7, '0.14285714272'], [1 / 1000, '0.00100000016'], [1, '1.00000000000'],
  ];
  for (const [p, text] of cases) assert.equal(formatProbability(p), text, String(p));
});

describe('compile', () => {
  const state = flowClusterState();

  test('every jump lands on a chain of the same table, and every chain name fits', () => {
    for (const family of ['IPv4', 'IPv6'] as const) {
      const ruleset = compile(state, family);
      for (const table of [ruleset.nat, ruleset.filter]) {
        const names = new Set(table.chains.map((c) => c.name));
        assert.equal(names.size, table.chains.length, `${family} ${table.name}: no duplicate chain`);
        const rules = [...table.chains.flatMap((c) => chainRules(c)), ...table.hooks.map((h) => h.rule)];
        for (const target of jumpsOf(rules)) assert.ok(names.has(target), `${family} ${table.name}: ${target} is declared`);
        for (const name of names) assert.ok(name.length <= MAX_CHAIN_NAME_LENGTH, name);
      }
    }
  });

  test('the NodePorts jump is the tail of the services chain and excludes loopback', () => {
    const v4 = chain(compile(state, 'IPv4'), 'nat', 'KPROXY-SERVICES');
    const v6 = chain(compile(state, 'IPv6'), 'nat', 'KPROXY-SERVICES');
    assert.equal(v4.kind, 'dispatch');
    assert.ok(v4.kind === 'dispatch' && v6.kind === 'dispatch');
    assert.deepEqual(jumpsOf(v4.tail), ['KPROXY-NODEPORTS']);
    assert.deepEqual(v4.tail[0]?.matches[0], { kind: 'dst', cidr: '127.0.0.0/8', negate: true });
    assert.deepEqual(v6.tail[0]?.matches[0], { kind: 'dst', cidr: '::1/128', negate: true });
    assert.ok(!jumpsOf(v4.rules).includes('KPROXY-NODEPORTS'));
  });

  test('listed NodePort addresses get one jump each; loopback entries are ignored, a /0 means all', () => {
    const withAddresses = (nodePortAddresses: FamilyPlan['nodePortAddresses']): DesiredState => ({
      ...state, families: { ...state.families, IPv4: { ...state.families.IPv4, nodePortAddresses } },
    });
    const tail = (s: DesiredState): readonly Rule[] => {
      const c = chain(compile(s, 'IPv4'), 'nat', 'KPROXY-SERVICES');
      return c.kind === 'dispatch' ? c.tail : [];
    };
    const listed = tail(withAddresses(['192.168.100.2', '127.0.0.1', '127.0.0.0/8', '10.1.0.0/16', 'fd00::1']));
    assert.deepEqual(listed.map((r) => r.matches[0]), [
      { kind: 'dst', cidr: '192.168.100.2/32' }, { kind: 'dst', cidr: '10.1.0.0/16' },
    ]);
    assert.deepEqual(tail(withAddresses(['0.0.0.0/0'])).map((r) => r.matches[0]), [{ kind: 'dst', cidr: '127.0.0.0/8', negate: true }]);
    assert.deepEqual(tail(withAddresses([])), []);
  });

  test('the masquerade bit and masqueradeAll come from the settings', () => {
    // masqueradeAll is decided in compute (the ClusterIP route masquerades always); the bit is the family context.
    const custom = flowClusterState({ ...FLOW_COMPUTE_OPTIONS, masqueradeAll: true, masqueradeBit: 5 });
    const ruleset = compile(custom, 'IPv4');
    assert.deepEqual(chain(ruleset, 'nat', 'KPROXY-MARK-MASQ').rules[0]?.target, { kind: 'MARK', op: 'or', value: 0x20 });
    const svc = chain(ruleset, 'nat', serviceChainNames('default/echo:http', 'TCP').svc);
    // masqueradeAll: the first rule marks every packet to the cluster IP, whatever its source.
    assert.deepEqual(svc.rules[0]?.matches.map((m) => m.kind), ['dst', 'protocol']);
    assert.match(renderFull(ruleset), /--mark 0x20\/0x20/);
  });

  test('several cluster CIDRs in one family mark traffic from none of them', () => {
    const two: DesiredState = {
      ...state, families: {
        ...state.families,
        IPv4: { ...state.families.IPv4, localDetector: { kind: 'ClusterCIDR', cidrs: ['10.244.0.0/16', '10.250.0.0/16'] } },
      },
    };
    const ruleset = compile(two, 'IPv4');
    const offCluster = chain(ruleset, 'nat', 'KPROXY-MARK-OFFCLUSTER');
    assert.deepEqual(offCluster.rules.map((r) => r.target.kind), ['RETURN', 'RETURN', 'jump']);
    const svc = chain(ruleset, 'nat', serviceChainNames('default/echo:http', 'TCP').svc);
    assert.deepEqual(jumpsOf(svc.rules.slice(0, 1)), ['KPROXY-MARK-OFFCLUSTER']);
  });

  test('IPv6 renders /128 hosts, bracketed DNAT targets and full-length recent masks', () => {
    const text = renderFull(compile(state, 'IPv6'));
    assert.match(text, /-d fd00:96::10\/128 -p tcp -m tcp --dport 80 -j KPROXY-SVC-/);
    assert.match(text, /-j DNAT --to-destination \[fd00:244:1::2\]:8080/);
    assert.match(text, /! -d ::1\/128 -m addrtype --dst-type LOCAL -j KPROXY-NODEPORTS/);
    assert.match(text, /! -s fd00:244::\/32 -d fd00:96::10\/128/);
    assert.doesNotMatch(text, /\d+\.\d+\.\d+\.\d+/, 'no IPv4 address in the IPv6 ruleset');
  });
});

describe('endpoints: DNAT in place, hairpin guards, endpoint chains only where a DNAT is not enough', () => {
  const options = testOptions({ clusterCIDRs: ['10.244.0.0/16'] });
  const nodeA = node({ name: 'node-a', addresses: [['InternalIP', '192.168.0.10']] });
  const names = serviceChainNames('default/web:', 'TCP');
  const local = endpoint({ ip: '10.244.1.5', node: 'node-a' });
  const remote = endpoint({ ip: '10.244.2.5', node: 'node-b' });
  const compiled = (spec: Raw, endpoints: Raw[]): Ruleset =>
    compile(stateOf({ services: [service({ spec })], slices: [slice({ endpoints })], node: nodeA }, options), 'IPv4');
  const sepChains = (ruleset: Ruleset): string[] => ruleset.nat.chains.map((c) => c.name).filter((n) => n.startsWith('KPROXY-SEP-'));
  const describeRule = (r: Rule): string => `${r.matches.map((m) => ('negate' in m && m.negate ? '!' : '') + m.kind).join(',')} -> ${r.target.kind === 'jump' ? r.target.chain : r.target.kind}`;
  const trace = (ruleset: Ruleset, src: string, from: Packet['from'] = 'pod'): Verdict =>
    traceRuleset(ruleset, { from, src, dst: '10.96.0.10', port: 80, protocol: 'TCP' }, { nodeIPs: ['192.168.0.10'] });

  test('an endpoint of another node is one rule: the pick and the DNAT; one on this node a guarded pair', () => {
    const ruleset = compiled({}, [remote, local]);
    assert.deepEqual(chain(ruleset, 'nat', names.svc).rules.map(describeRule), [
      '!src,dst,protocol -> KPROXY-MARK-MASQ',
      `src,statistic -> ${names.hairpin}`, // 10.244.1.5 (this node): the guarded pair, one pick for both rules
      '!src,statistic,protocol -> DNAT',
      'protocol -> DNAT', // 10.244.2.5 (node-b), the last pick
    ]);
    assert.deepEqual(chain(ruleset, 'nat', names.hairpin).rules.map(describeRule), [' -> KPROXY-MARK-MASQ', 'src,protocol -> DNAT']);
    assert.deepEqual(sepChains(ruleset), []);
  });

  test('hairpin: an endpoint reaching itself is masqueraded, only when it picks itself; others keep their source', () => {
    const ruleset = compiled({}, [remote, local]);
    assert.deepEqual(trace(ruleset, '10.244.1.5'), { kind: 'forward', reaches: [
      { endpoint: '10.244.1.5:8080', masquerade: true }, { endpoint: '10.244.2.5:8080', masquerade: false }] });
    assert.deepEqual(trace(ruleset, '10.244.1.9'), { kind: 'forward', reaches: [
      { endpoint: '10.244.1.5:8080', masquerade: false }, { endpoint: '10.244.2.5:8080', masquerade: false }] });
  });

  test('ETP Local: the chain pods of any node are short-circuited to guards every endpoint', () => {
    const spec = { type: 'NodePort', ports: [{ port: 80, nodePort: 30080 }], externalTrafficPolicy: 'Local' };
    const ruleset = compiled(spec, [remote, local]);
    const svc = chain(ruleset, 'nat', names.svc).rules;
    assert.equal(svc.filter((r) => r.target.kind === 'jump' && r.target.chain === names.hairpin).length, 2);
    // a pod of node-b reaching node-a's NodePort may pick itself: masqueraded then, as kube-proxy does
    const toNodePort: Packet = { from: 'pod', src: '10.244.2.5', dst: '192.168.0.10', port: 30080, protocol: 'TCP' };
    assert.deepEqual(traceRuleset(ruleset, toNodePort, { nodeIPs: ['192.168.0.10'] }), { kind: 'forward', reaches: [
      { endpoint: '10.244.1.5:8080', masquerade: false }, { endpoint: '10.244.2.5:8080', masquerade: true }] });
  });

  test('ClientIP affinity keeps a chain per endpoint (recent --set), and so does a service whose endpoints share an IP', () => {
    const sticky = compiled({ sessionAffinity: 'ClientIP' }, [remote, local]);
    assert.equal(sepChains(sticky).length, 2);
    assert.ok(chain(sticky, 'nat', names.svc).rules.some((r) => r.matches.some((m) => m.kind === 'recent')));
    const twoPorts = stateOf({
      services: [service({})],
      slices: [slice({ name: 'a', endpoints: [local], ports: [{ port: 8080 }] }), slice({ name: 'b', endpoints: [local], ports: [{ port: 9090 }] })],
      node: nodeA,
    }, options);
    assert.equal(sepChains(compile(twoPorts, 'IPv4')).length, 2);
  });
});

describe('partial sync', () => {
  const options = { nodeName: 'node-0', clusterCIDRs: ['10.244.0.0/16'], nodePortAddresses: [], masqueradeAll: false, masqueradeBit: 14 };

  /** Lines written when one endpoint of the first service changes, in a cluster of `services` services. */
  function linesForOneChange(services: number, change: 'add' | 'remove'): number {
    const cluster = syntheticCluster({ services, endpointsPerService: 10, nodeName: 'node-0', seed: 7 });
    const store = new ClusterStore({ compute: options });
    store.replaceAll('Node', [cluster.node]);
    store.replaceAll('Service', cluster.services);
    store.replaceAll('EndpointSlice', cluster.slices);
    store.synced();
    const before = compileSource(store.snapshot(), 'IPv4');
    store.upsert('EndpointSlice', mutateOneEndpoint(cluster, { change, sliceIndex: 0 }));
    const after = compileSource(store.snapshot(), 'IPv4');
    const diff = renderDiff(before, after);
    assert.ok(diff.lines > 0, 'something changed');
    assert.equal(diff.text.split('\n').filter(Boolean).length, diff.lines);
    assert.doesNotMatch(diff.text, /^:KPROXY-(SERVICES|NODEPORTS|EXTERNAL-SERVICES|FIREWALL) /m, 'dispatch chains are never flushed');
    return diff.lines;
  }

  for (const change of ['add', 'remove'] as const) {
    test(`one endpoint ${change === 'add' ? 'added' : 'removed'}: the lines written do not grow with the services`, () => {
      const small = linesForOneChange(100, change);
      const large = linesForOneChange(2000, change);
      assert.equal(large, small);
      assert.ok(small < 40, `${small} lines`);
    });
  }

  test('nothing changed: nothing written', () => {
    const state = flowClusterState();
    const same = renderDiff(compileSource(state, 'IPv4'), compileSource(state, 'IPv4'));
    assert.deepEqual([same.text, same.lines, same.rulesWritten, same.rulesDelta], ['', 0, { nat: 0, filter: 0 }, { nat: 0, filter: 0 }]);
    // Rebuilt plans with the same content (e.g. after a resync of the source) write nothing either.
    const copies: DesiredState = { ...state, families: { ...state.families, IPv4: { ...state.families.IPv4, services: state.families.IPv4.services.map((s) => ({ ...s })) } } };
    const rebuilt = renderDiff(compileSource(state, 'IPv4'), compileSource(copies, 'IPv4'));
    assert.deepEqual([rebuilt.text, rebuilt.lines], ['', 0]);
  });
});

describe('traffic policies against upstream kube-proxy', () => {
  const options = testOptions({ clusterCIDRs: ['10.244.0.0/16'] });
  const nodeA = node({ name: 'node-a', addresses: [['InternalIP', '192.168.0.10']] });
  const trace = (state: DesiredState, packet: Packet): Verdict =>
    traceRuleset(compile(state, 'IPv4'), packet, { nodeIPs: state.families.IPv4.nodeIPs });
  const endpoints = [endpoint({ ip: '10.244.1.5', node: 'node-a' }), endpoint({ ip: '10.244.2.5', node: 'node-b' })];

  test('ITP Local + ETP Local: pods and the node reach every endpoint through an external IP; ClusterIP stays local', () => {
    const spec = {
      type: 'NodePort', ports: [{ port: 80, nodePort: 30080 }], externalIPs: ['198.51.100.1'],
      internalTrafficPolicy: 'Local', externalTrafficPolicy: 'Local',
    };
    const state = stateOf({ services: [service({ spec })], slices: [slice({ endpoints })], node: nodeA }, options);
    const both = (masquerade: boolean): Verdict => ({
      kind: 'forward', reaches: [{ endpoint: '10.244.1.5:8080', masquerade }, { endpoint: '10.244.2.5:8080', masquerade }],
    });
    const local: Verdict = { kind: 'forward', reaches: [{ endpoint: '10.244.1.5:8080', masquerade: false }] };
    assert.deepEqual(trace(state, { from: 'pod', src: '10.244.1.9', dst: '198.51.100.1', port: 80, protocol: 'TCP' }), both(false));
    assert.deepEqual(trace(state, { from: 'node', src: '192.168.0.10', dst: '198.51.100.1', port: 80, protocol: 'TCP' }), both(true));
    assert.deepEqual(trace(state, { from: 'external', src: '203.0.113.7', dst: '198.51.100.1', port: 80, protocol: 'TCP' }), local);
    assert.deepEqual(trace(state, { from: 'pod', src: '10.244.1.9', dst: '10.96.0.10', port: 80, protocol: 'TCP' }), local);
  });

  test('ETP Local, no local endpoint, source ranges: FW still short-circuits allowed pods; others are dropped', () => {
    const spec = {
      type: 'LoadBalancer', ports: [{ port: 80, nodePort: 30080 }], externalTrafficPolicy: 'Local', healthCheckNodePort: 32000,
      loadBalancerSourceRanges: ['10.244.1.0/24', '203.0.113.0/24'],
    };
    const status = { loadBalancer: { ingress: [{ ip: '192.0.2.1' }] } };
    const remote = [endpoint({ ip: '10.244.2.5', node: 'node-b' })];
    const state = stateOf({ services: [service({ spec, status })], slices: [slice({ endpoints: remote })], node: nodeA }, options);
    const toLB = (from: Packet['from'], src: string): Packet => ({ from, src, dst: '192.0.2.1', port: 80, protocol: 'TCP' });
    assert.deepEqual(trace(state, toLB('pod', '10.244.1.9')), { kind: 'forward', reaches: [{ endpoint: '10.244.2.5:8080', masquerade: false }] });
    assert.deepEqual(trace(state, toLB('pod', '10.244.3.9')), { kind: 'drop' }, 'pod outside the ranges');
    assert.deepEqual(trace(state, toLB('external', '203.0.113.7')), { kind: 'drop' }, 'allowed, but no local endpoint');
    assert.deepEqual(trace(state, toLB('external', '198.51.100.7')), { kind: 'drop' }, 'outside the ranges');
  });

  test('source ranges on a LoadBalancer without endpoints: no firewall drop, REJECT like every frontend', () => {
    const spec = { type: 'LoadBalancer', ports: [{ port: 80, nodePort: 30080 }], loadBalancerSourceRanges: ['203.0.113.0/24'] };
    const status = { loadBalancer: { ingress: [{ ip: '192.0.2.1' }] } };
    const state = stateOf({ services: [service({ spec, status })], slices: [slice({ endpoints: [] })], node: nodeA }, options);
    assert.deepEqual(chain(compile(state, 'IPv4'), 'filter', 'KPROXY-FIREWALL').rules, []);
    for (const src of ['203.0.113.7', '198.51.100.7']) {
      assert.deepEqual(trace(state, { from: 'external', src, dst: '192.0.2.1', port: 80, protocol: 'TCP' }), { kind: 'reject' }, src);
    }
  });
});
