import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { addrs, onlyPlan, plansOf, stateOf, testOptions } from '../fixtures/compute-helpers.ts';
import { endpoint, node, service, slice } from '../fixtures/objects.ts';
import { validateComputeOptions } from '../../src/compute/options.ts';
import type { InvalidObject } from '../../src/model/observe.ts';

// This node is node-a in zone-a throughout.
const thisNode = node({ name: 'node-a', zone: 'zone-a', addresses: [['InternalIP', '192.168.0.10'], ['InternalIP', 'fd00::10'], ['ExternalIP', '203.0.113.10']] });

describe('frontends, families, port matching', () => {
  test('ClusterIP: one plan, key ns/name:port, endpoints on the target port', () => {
    const plan = onlyPlan({ services: [service()], slices: [slice()] });
    assert.equal(plan.key, 'default/web:');
    assert.deepEqual(plan.frontends, [{ kind: 'ClusterIP', ip: '10.96.0.10', port: 80 }]);
    assert.deepEqual(addrs(plan.clusterEndpoints), ['10.244.1.5:8080']);
    assert.equal(plan.clusterIP, '10.96.0.10');
    assert.equal(plan.nodePort, undefined);
  });

  const cases: Array<{ name: string; spec: Record<string, unknown>; status?: Record<string, unknown>; v4: unknown[]; v6: unknown[] }> = [
    {
      name: 'dual-stack: one plan per family of clusterIPs',
      spec: { clusterIPs: ['10.96.0.10', 'fd00:10:96::10'], ipFamilies: ['IPv4', 'IPv6'] },
      v4: [{ kind: 'ClusterIP', ip: '10.96.0.10', port: 80 }], v6: [{ kind: 'ClusterIP', ip: 'fd00:10:96::10', port: 80 }],
    },
    {
      name: 'IPv6 primary: families follow clusterIPs',
      spec: { clusterIP: 'fd00:10:96::10', clusterIPs: ['fd00:10:96::10'], ipFamilies: ['IPv6'] },
      v4: [], v6: [{ kind: 'ClusterIP', ip: 'fd00:10:96::10', port: 80 }],
    },
    {
      name: 'NodePort adds a NodePort frontend',
      spec: { type: 'NodePort', ports: [{ port: 80, nodePort: 30080 }] },
      v4: [{ kind: 'ClusterIP', ip: '10.96.0.10', port: 80 }, { kind: 'NodePort', port: 30080 }], v6: [],
    },
    {
      name: 'a ClusterIP service ignores a stray nodePort',
      spec: { ports: [{ port: 80, nodePort: 30080 }] },
      v4: [{ kind: 'ClusterIP', ip: '10.96.0.10', port: 80 }], v6: [],
    },
    {
      name: 'LoadBalancer: ingress IPs per family, ipMode Proxy and hostnames skipped',
      spec: { type: 'LoadBalancer', clusterIPs: ['10.96.0.10', 'fd00:10:96::10'], ports: [{ port: 80, nodePort: 30080 }] },
      status: { loadBalancer: { ingress: [{ ip: '192.0.2.1' }, { ip: '192.0.2.2', ipMode: 'Proxy' }, { ip: '2001:db8::1', ipMode: 'VIP' }, { hostname: 'lb.example' }] } },
      v4: [{ kind: 'ClusterIP', ip: '10.96.0.10', port: 80 }, { kind: 'LoadBalancer', ip: '192.0.2.1', port: 80 }, { kind: 'NodePort', port: 30080 }],
      v6: [{ kind: 'ClusterIP', ip: 'fd00:10:96::10', port: 80 }, { kind: 'LoadBalancer', ip: '2001:db8::1', port: 80 }, { kind: 'NodePort', port: 30080 }],
    },
    {
      name: 'ingress IPs of a non-LoadBalancer service are ignored',
      spec: { type: 'NodePort', ports: [{ port: 80, nodePort: 30080 }] }, status: { loadBalancer: { ingress: [{ ip: '192.0.2.1' }] } },
      v4: [{ kind: 'ClusterIP', ip: '10.96.0.10', port: 80 }, { kind: 'NodePort', port: 30080 }], v6: [],
    },
    {
      name: 'externalIPs per family',
      spec: { externalIPs: ['198.51.100.1', '2001:db8::7'] },
      v4: [{ kind: 'ClusterIP', ip: '10.96.0.10', port: 80 }, { kind: 'ExternalIP', ip: '198.51.100.1', port: 80 }], v6: [],
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const state = stateOf({ services: [service({ spec: c.spec, ...(c.status ? { status: c.status } : {}) })] });
      assert.deepEqual(state.families.IPv4.services.map((p) => p.frontends), c.v4.length ? [c.v4] : []);
      assert.deepEqual(state.families.IPv6.services.map((p) => p.frontends), c.v6.length ? [c.v6] : []);
      for (const plan of plansOf(state)) assert.equal(plan.family, plan.clusterIP.includes(':') ? 'IPv6' : 'IPv4');
    });
  }

  test('slice ports match service ports by name and protocol; addressType picks the family', () => {
    const state = stateOf({
      services: [service({ spec: {
        clusterIPs: ['10.96.0.10', 'fd00:10:96::10'],
        ports: [{ name: 'http', port: 80 }, { name: 'dns', port: 53, protocol: 'UDP' }, { name: 'sig', port: 7, protocol: 'SCTP' }],
      } })],
      slices: [
        slice({ name: 'a', ports: [{ name: 'dns', port: 5353, protocol: 'UDP' }, { name: 'http', port: 8080 }, { name: 'sig', port: 7000, protocol: 'TCP' }],
          endpoints: [endpoint({ ip: '10.244.1.1' })] }),
        slice({ name: 'b', addressType: 'IPv6', ports: [{ name: 'http', port: 8081 }], endpoints: [endpoint({ ip: 'fd00:10:244::1' })] }),
      ],
    });
    const summary = plansOf(state).map((p) => [p.family, p.key, p.protocol, p.port, addrs(p.allEndpoints)]);
    assert.deepEqual(summary, [
      ['IPv4', 'default/web:dns', 'UDP', 53, ['10.244.1.1:5353']],
      ['IPv4', 'default/web:http', 'TCP', 80, ['10.244.1.1:8080']],
      ['IPv4', 'default/web:sig', 'SCTP', 7, []], // the slice's "sig" is TCP: no match
      ['IPv6', 'default/web:dns', 'UDP', 53, []],
      ['IPv6', 'default/web:http', 'TCP', 80, ['fd00:10:244::1:8081']],
      ['IPv6', 'default/web:sig', 'SCTP', 7, []],
    ]);
  });

  test('not-ours Services produce no plans', () => {
    const state = stateOf({
      services: [
        service({ name: 'a', spec: { clusterIP: 'None' } }),
        service({ name: 'b', spec: { type: 'ExternalName', clusterIP: undefined } }),
        service({ name: 'c', labels: { 'service.kubernetes.io/headless': '' } }),
        service({ name: 'd', labels: { 'service.kubernetes.io/service-proxy-name': 'x' } }),
        service({ name: 'e', labels: { 'service.kubernetes.io/service-proxy-name': 'kproxy' } }),
      ],
    }, testOptions({ proxyName: 'kproxy' }));
    assert.deepEqual(plansOf(state).map((p) => p.key), ['default/e:']);
  });

  test('plans are sorted by key across services (web:x sorts after web-2:x)', () => {
    const state = stateOf({
      services: [
        service({ name: 'web', spec: { ports: [{ name: 'b', port: 1 }, { name: 'a', port: 2 }] } }),
        service({ name: 'web-2', spec: { clusterIP: '10.96.0.11' } }),
        service({ namespace: 'alpha', name: 'z', spec: { clusterIP: '10.96.0.12' } }),
      ],
    });
    const keys = state.families.IPv4.services.map((p) => p.key);
    assert.deepEqual(keys, ['alpha/z:', 'default/web-2:', 'default/web:a', 'default/web:b']);
    assert.deepEqual(keys, [...keys].sort());
  });
});

test('sessionAffinity ClientIP with its timeout (default 10800)', () => {
  const cases: Array<[Record<string, unknown>, unknown]> = [
    [{}, undefined],
    [{ sessionAffinity: 'None' }, undefined],
    [{ sessionAffinity: 'ClientIP' }, { timeoutSeconds: 10800 }],
    [{ sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: {} } }, { timeoutSeconds: 10800 }],
    [{ sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } } }, { timeoutSeconds: 60 }],
  ];
  for (const [spec, want] of cases) assert.deepEqual(onlyPlan({ services: [service({ spec })] }).affinity, want, JSON.stringify(spec));
});

test('externalTrafficPolicy applies only with external frontends; healthCheckNodePort only for LB+Local; ITP Local', () => {
  const np = [{ port: 80, nodePort: 30080 }];
  const cases: Array<[string, Record<string, unknown>, boolean, number | undefined, boolean]> = [
    ['ClusterIP + ETP Local', { externalTrafficPolicy: 'Local' }, false, undefined, false],
    ['ClusterIP + externalIPs + ETP Local', { externalTrafficPolicy: 'Local', externalIPs: ['198.51.100.1'] }, true, undefined, false],
    ['NodePort + ETP Local', { type: 'NodePort', ports: np, externalTrafficPolicy: 'Local', healthCheckNodePort: 32000 }, true, undefined, false],
    ['LB + ETP Local', { type: 'LoadBalancer', ports: np, externalTrafficPolicy: 'Local', healthCheckNodePort: 32000 }, true, 32000, false],
    ['LB + ETP Cluster', { type: 'LoadBalancer', ports: np, externalTrafficPolicy: 'Cluster', healthCheckNodePort: 32000 }, false, undefined, false],
    ['ITP Local', { internalTrafficPolicy: 'Local' }, false, undefined, true],
    ['ITP Cluster', { internalTrafficPolicy: 'Cluster' }, false, undefined, false],
  ];
  for (const [label, spec, etpLocal, hc, itpLocal] of cases) {
    const plan = onlyPlan({ services: [service({ spec })] });
    assert.equal(plan.externalPolicyLocal, etpLocal, label);
    assert.equal(plan.healthCheckNodePort, hc, label);
    assert.equal(plan.internalPolicyLocal, itpLocal, label);
  }
});

describe('endpoint conditions and the serving-terminating fallback', () => {
  // A: local ready, B: remote ready, C: remote serving+terminating, D: local serving+terminating,
  // E: remote terminating not serving, F: remote not ready (not terminating).
  const A = endpoint({ ip: '10.244.0.1', node: 'node-a' });
  const B = endpoint({ ip: '10.244.0.2', node: 'node-b' });
  const C = endpoint({ ip: '10.244.0.3', node: 'node-b', ready: false, serving: true, terminating: true });
  const D = endpoint({ ip: '10.244.0.4', node: 'node-a', ready: false, serving: true, terminating: true });
  const E = endpoint({ ip: '10.244.0.5', node: 'node-b', ready: false, serving: false, terminating: true });
  const F = endpoint({ ip: '10.244.0.6', node: 'node-b', ready: false });
  const etpLocal = { type: 'NodePort', ports: [{ port: 80, nodePort: 30080 }], externalTrafficPolicy: 'Local' };
  const cases: Array<[string, Record<string, unknown>, unknown[], string[], string[], boolean]> = [
    ['ready ones only', {}, [A, B, C, D, E, F], ['10.244.0.1', '10.244.0.2'], [], true],
    ['no ready: serving+terminating', {}, [C, D, E, F], ['10.244.0.3', '10.244.0.4'], [], true],
    ['nothing usable', {}, [E, F], [], [], false],
    ['ETP Local: local ready', etpLocal, [A, B, D], ['10.244.0.1', '10.244.0.2'], ['10.244.0.1'], true],
    ['ETP Local: cluster and local fall back separately', etpLocal, [B, D], ['10.244.0.2'], ['10.244.0.4'], true],
    ['ETP Local: no local endpoint', etpLocal, [B, C], ['10.244.0.2'], [], true],
    ['ITP Local: cluster set is the local set', { internalTrafficPolicy: 'Local' }, [A, B], ['10.244.0.1'], ['10.244.0.1'], true],
    ['ITP Local: local fallback', { internalTrafficPolicy: 'Local' }, [B, D], ['10.244.0.4'], ['10.244.0.4'], true],
    ['ITP Local: nothing local, but endpoints elsewhere', { internalTrafficPolicy: 'Local' }, [B], [], [], true],
  ];
  for (const [label, spec, endpoints, cluster, local, hasEndpoints] of cases) {
    test(label, () => {
      const plan = onlyPlan({ services: [service({ spec })], slices: [slice({ endpoints })], node: thisNode });
      assert.deepEqual(plan.clusterEndpoints.map((e) => e.ip), cluster);
      assert.deepEqual(plan.localEndpoints.map((e) => e.ip), local);
      assert.equal(plan.hasEndpoints, hasEndpoints);
      assert.equal(plan.allEndpoints.length, endpoints.length);
    });
  }

  test('serving unset reads as true (upstream): a terminating, not-ready endpoint is a fallback', () => {
    const G = endpoint({ ip: '10.244.0.7', node: 'node-b', ready: false, terminating: true });
    const plan = onlyPlan({ services: [service()], slices: [slice({ endpoints: [G, F] })], node: thisNode });
    assert.deepEqual(plan.clusterEndpoints.map((e) => e.ip), ['10.244.0.7']);
    assert.equal(plan.hasEndpoints, true);
  });

  test('ITP Local with ETP Local: the short-circuit for pods and the node keeps the cluster-wide set', () => {
    const spec = { ...etpLocal, internalTrafficPolicy: 'Local' };
    const plan = onlyPlan({ services: [service({ spec })], slices: [slice({ endpoints: [A, B] })], node: thisNode });
    assert.deepEqual(plan.clusterEndpoints.map((e) => e.ip), ['10.244.0.1']);
    assert.deepEqual(plan.localEndpoints.map((e) => e.ip), ['10.244.0.1']);
    assert.deepEqual(plan.externalClusterEndpoints?.map((e) => e.ip), ['10.244.0.1', '10.244.0.2']);
  });

  test('an endpoint listed in two slices: the local copy wins, as upstream', () => {
    const remoteCopy = endpoint({ ip: '10.244.0.9', node: 'node-b' });
    const localCopy = endpoint({ ip: '10.244.0.9', node: 'node-a', ready: false, serving: true, terminating: true });
    const plan = onlyPlan({
      services: [service({ spec: etpLocal })],
      slices: [slice({ name: 'web-1', endpoints: [remoteCopy] }), slice({ name: 'web-2', endpoints: [localCopy] })], node: thisNode,
    });
    assert.deepEqual(plan.allEndpoints.map((e) => [e.ip, e.local]), [['10.244.0.9', true]]);
    assert.deepEqual(plan.localEndpoints.map((e) => e.ip), ['10.244.0.9']);
  });

  test('ITP Local with ETP Cluster: external traffic keeps the cluster-wide set', () => {
    const spec = { type: 'NodePort', ports: [{ port: 80, nodePort: 30080 }], internalTrafficPolicy: 'Local' };
    const plan = onlyPlan({ services: [service({ spec })], slices: [slice({ endpoints: [A, B] })], node: thisNode });
    assert.deepEqual(plan.clusterEndpoints.map((e) => e.ip), ['10.244.0.1']);
    assert.deepEqual(plan.externalClusterEndpoints?.map((e) => e.ip), ['10.244.0.1', '10.244.0.2']);
    const internalOnly = onlyPlan({ services: [service({ spec: { internalTrafficPolicy: 'Local' } })], slices: [slice({ endpoints: [A, B] })], node: thisNode });
    assert.equal(internalOnly.externalClusterEndpoints, undefined);
  });

  test('Endpoint fields: local from nodeName, conditions, zone', () => {
    const plan = onlyPlan({ services: [service()], slices: [slice({ endpoints: [endpoint({ ip: '10.244.0.4', node: 'node-a', zone: 'zone-a', ready: false, serving: true, terminating: true })] })] });
    assert.deepEqual(plan.allEndpoints, [{ ip: '10.244.0.4', port: 8080, nodeName: 'node-a', zone: 'zone-a', local: true, ready: false, serving: true, terminating: true }]);
  });
});

describe('topology: EndpointSlice hints decide, as upstream topologyModeFromHints', () => {
  const ep = (ip: string, zones?: string[], nodes?: string[], ready = true, nodeName = 'node-x'): unknown =>
    endpoint({ ip, node: nodeName, ready, ...(zones ? { forZones: zones } : {}), ...(nodes ? { forNodes: nodes } : {}) });
  const zone = { trafficDistribution: 'PreferClose' };
  const cases: Array<[string, Record<string, unknown>, Record<string, string> | undefined, unknown[], string[], unknown?]> = [
    ['hints for our zone are used', zone, undefined, [ep('10.0.0.1', ['zone-a']), ep('10.0.0.2', ['zone-b'])], ['10.0.0.1']],
    ['PreferSameZone spelled out', { trafficDistribution: 'PreferSameZone' }, undefined, [ep('10.0.0.1', ['zone-a']), ep('10.0.0.2', ['zone-b'])], ['10.0.0.1']],
    ['a ready endpoint without a hint disables hints', zone, undefined, [ep('10.0.0.1', ['zone-a']), ep('10.0.0.2')], ['10.0.0.1', '10.0.0.2']],
    ['an unhinted NOT ready endpoint does not matter', zone, undefined, [ep('10.0.0.1', ['zone-a']), ep('10.0.0.2', ['zone-b']), ep('10.0.0.3', undefined, undefined, false)], ['10.0.0.1']],
    ['no endpoint hinted for our zone: all', zone, undefined, [ep('10.0.0.1', ['zone-b']), ep('10.0.0.2', ['zone-c'])], ['10.0.0.1', '10.0.0.2']],
    // kube-proxy does not look at the Service's trafficDistribution or annotations: hints present are hints used.
    ['hints without trafficDistribution are used', {}, undefined, [ep('10.0.0.1', ['zone-a']), ep('10.0.0.2', ['zone-b'])], ['10.0.0.1']],
    ['topology-mode: Disabled does not turn hints off', {}, { 'service.kubernetes.io/topology-mode': 'Disabled' }, [ep('10.0.0.1', ['zone-a']), ep('10.0.0.2', ['zone-b'])], ['10.0.0.1']],
    ['PreferSameNode uses node hints', { trafficDistribution: 'PreferSameNode' }, undefined,
      [ep('10.0.0.1', ['zone-a'], ['node-a']), ep('10.0.0.2', ['zone-a'], ['node-b']), ep('10.0.0.3', ['zone-b'], ['node-c'])], ['10.0.0.1']],
    ['PreferSameNode falls back to zone hints when a node hint is missing', { trafficDistribution: 'PreferSameNode' }, undefined,
      [ep('10.0.0.1', ['zone-a'], ['node-a']), ep('10.0.0.2', ['zone-a']), ep('10.0.0.3', ['zone-b'], ['node-c'])], ['10.0.0.1', '10.0.0.2']],
    ['PreferSameNode falls back to zone hints when none is for this node', { trafficDistribution: 'PreferSameNode' }, undefined,
      [ep('10.0.0.1', ['zone-a'], ['node-b']), ep('10.0.0.3', ['zone-b'], ['node-c'])], ['10.0.0.1']],
    ['node hints win whatever the Service says', zone, undefined, [ep('10.0.0.1', ['zone-a'], ['node-b']), ep('10.0.0.2', ['zone-a'], ['node-a']), ep('10.0.0.3', ['zone-b'], ['node-c'])], ['10.0.0.2']],
    ['unzoned node: zone hints unusable', zone, undefined, [ep('10.0.0.1', ['zone-a']), ep('10.0.0.2', ['zone-b'])], ['10.0.0.1', '10.0.0.2'], node({ name: 'node-a' })],
    ['no ready endpoint: terminating fallback ignores topology', zone, undefined,
      [endpoint({ ip: '10.0.0.1', ready: false, serving: true, terminating: true, forZones: ['zone-b'] })], ['10.0.0.1']],
  ];
  for (const [label, spec, annotations, endpoints, want, nodeObject] of cases) {
    test(label, () => {
      const plan = onlyPlan({ services: [service({ spec, ...(annotations ? { annotations } : {}) })], slices: [slice({ endpoints })], node: nodeObject ?? thisNode });
      assert.deepEqual(plan.clusterEndpoints.map((e) => e.ip), want);
    });
  }

  test('topology does not apply to the ITP/ETP Local sets', () => {
    const endpoints = [endpoint({ ip: '10.0.0.1', node: 'node-a', forZones: ['zone-b'] }), endpoint({ ip: '10.0.0.2', node: 'node-b', forZones: ['zone-a'] })];
    const itp = onlyPlan({ services: [service({ spec: { ...zone, internalTrafficPolicy: 'Local' } })], slices: [slice({ endpoints })], node: thisNode });
    assert.deepEqual(itp.clusterEndpoints.map((e) => e.ip), ['10.0.0.1']);
    const etp = onlyPlan({ services: [service({ spec: { ...zone, type: 'NodePort', ports: [{ port: 80, nodePort: 30080 }], externalTrafficPolicy: 'Local' } })], slices: [slice({ endpoints })], node: thisNode });
    assert.deepEqual(etp.localEndpoints.map((e) => e.ip), ['10.0.0.1']);
    assert.deepEqual(etp.clusterEndpoints.map((e) => e.ip), ['10.0.0.2']);
  });
});

describe('source ranges, NodePort addresses, local-traffic detector', () => {
  test('loadBalancerSourceRanges: per family, normalised, LoadBalancer only', () => {
    const spec = { type: 'LoadBalancer', clusterIPs: ['10.96.0.10', 'fd00:10:96::10'], ports: [{ port: 80, nodePort: 30080 }], loadBalancerSourceRanges: ['10.1.2.3/16', '2001:DB8::1/32', '192.168.0.0/24'] };
    const state = stateOf({ services: [service({ spec })] });
    assert.deepEqual(state.families.IPv4.services[0]?.sourceRanges, ['10.1.0.0/16', '192.168.0.0/24']);
    assert.deepEqual(state.families.IPv6.services[0]?.sourceRanges, ['2001:db8::/32']);
    // kube-proxy reads the field only; the annotation is for cloud load balancers.
    const fromAnnotation = onlyPlan({ services: [service({ spec: { type: 'LoadBalancer', ports: [{ port: 80, nodePort: 30080 }] }, annotations: { 'service.beta.kubernetes.io/load-balancer-source-ranges': '10.0.0.0/8,172.16.0.0/12' } })] });
    assert.deepEqual(fromAnnotation.sourceRanges, []);
    // A /0 of a family means everyone: no restriction in that family (upstream), the other family keeps its ranges.
    const open = stateOf({ services: [service({ spec: { ...spec, loadBalancerSourceRanges: ['10.0.0.0/8', '0.0.0.0/0', '2001:db8::/32'] } })] });
    assert.deepEqual(open.families.IPv4.services[0]?.sourceRanges, []);
    assert.deepEqual(open.families.IPv6.services[0]?.sourceRanges, ['2001:db8::/32']);
    assert.deepEqual(onlyPlan({ services: [service({ spec: { loadBalancerSourceRanges: ['10.0.0.0/8'] } })] }).sourceRanges, []);
  });

  const npa: Array<[string[], unknown, unknown, unknown?]> = [
    [[], 'all', 'all'],
    [['primary'], ['192.168.0.10'], ['fd00::10']],
    [['192.168.0.0/16'], ['192.168.0.10'], 'all'], // no IPv6 CIDR given → all for IPv6 (upstream)
    [['203.0.113.0/24', 'fd00::/64'], ['203.0.113.10'], ['fd00::10']],
    [['0.0.0.0/0', '10.0.0.0/8'], 'all', 'all'],
    [['10.0.0.0/8'], [], 'all'],
    [['primary', '203.0.113.0/24'], ['192.168.0.10', '203.0.113.10'], ['fd00::10']],
    [['primary'], [], [], 'no node'],
  ];
  for (const [flag, v4, v6, noNode] of npa) {
    test(`--nodeport-addresses ${JSON.stringify(flag)}${noNode ? ' without a Node' : ''}`, () => {
      const state = stateOf({ ...(noNode ? {} : { node: thisNode }) }, testOptions({ nodePortAddresses: flag }));
      assert.deepEqual(state.families.IPv4.nodePortAddresses, v4);
      assert.deepEqual(state.families.IPv6.nodePortAddresses, v6);
    });
  }

  test('--bind-address is the primary address of its family, over the Node\'s, as kube-proxy takes it', () => {
    const options = testOptions({ nodePortAddresses: ['primary'], primaryIP: '192.168.0.99' });
    const state = stateOf({ node: thisNode }, options);
    assert.deepEqual(state.families.IPv4.nodePortAddresses, ['192.168.0.99']);
    assert.deepEqual(state.families.IPv6.nodePortAddresses, ['fd00::10'], 'the other family keeps the Node\'s');
    assert.deepEqual(state.families.IPv4.nodeIPs, ['192.168.0.99', '192.168.0.10', '203.0.113.10']);
    assert.deepEqual(state.families.IPv6.nodeIPs, ['fd00::10']);
    const before = stateOf({}, options);
    assert.deepEqual(before.families.IPv4.nodePortAddresses, ['192.168.0.99'], 'known before the Node is');
    assert.deepEqual(before.families.IPv6.nodePortAddresses, []);
    const six = stateOf({ node: thisNode }, testOptions({ nodePortAddresses: ['primary'], primaryIP: 'fd00::99' }));
    assert.deepEqual([six.families.IPv4.nodePortAddresses, six.families.IPv6.nodePortAddresses], [['192.168.0.10'], ['fd00::99']]);
  });

  test('detectLocalMode NodeCIDR: the Node\'s own pod CIDRs per family; none before the Node is known', () => {
    const withCidrs = { ...thisNode, spec: { podCIDR: '10.244.7.0/24', podCIDRs: ['10.244.7.0/24', 'fd00:10:244:7::/64'] } };
    const options = testOptions({ detectLocal: 'NodeCIDR', clusterCIDRs: ['10.244.0.0/16'] });
    const state = stateOf({ services: [], node: withCidrs }, options);
    assert.deepEqual(state.families.IPv4.localDetector, { kind: 'ClusterCIDR', cidrs: ['10.244.7.0/24'] });
    assert.deepEqual(state.families.IPv6.localDetector, { kind: 'ClusterCIDR', cidrs: ['fd00:10:244:7::/64'] });
    const legacy = stateOf({ services: [], node: { ...thisNode, spec: { podCIDR: '10.244.9.0/24' } } }, options);
    assert.deepEqual(legacy.families.IPv4.localDetector, { kind: 'ClusterCIDR', cidrs: ['10.244.9.0/24'] });
    assert.deepEqual(stateOf({ services: [] }, options).families.IPv4.localDetector, { kind: 'None' });
    const invalid: InvalidObject[] = [];
    const bad = stateOf({ services: [], node: { ...thisNode, spec: { podCIDRs: ['10.244.7.0/99', '10.244.8.0/24'] } } }, options, invalid);
    assert.deepEqual(bad.families.IPv4.localDetector, { kind: 'ClusterCIDR', cidrs: ['10.244.8.0/24'] });
    assert.equal(invalid.length, 0, 'a bad pod CIDR only drops that CIDR');
  });

  test('--cluster-cidr → ClusterCIDR detector per family, none → None', () => {
    const state = stateOf({}, testOptions({ clusterCIDRs: ['10.244.0.0/16', 'fd00:10:244::1/56'] }));
    assert.deepEqual(state.families.IPv4.localDetector, { kind: 'ClusterCIDR', cidrs: ['10.244.0.0/16'] });
    assert.deepEqual(state.families.IPv6.localDetector, { kind: 'ClusterCIDR', cidrs: ['fd00:10:244::/56'] });
    assert.deepEqual(stateOf({}).families.IPv4.localDetector, { kind: 'None' });
  });
});

describe('several slices per service', () => {
  test('endpoints from all slices of the service, only that service, sorted', () => {
    const plan = onlyPlan({
      services: [service()],
      slices: [
        slice({ name: 'web-2', endpoints: [endpoint({ ip: '10.244.0.9' })] }),
        slice({ name: 'web-1', endpoints: [endpoint({ ip: '10.244.0.10' }), endpoint({ ip: '10.244.0.1' })] }),
        slice({ name: 'other-1', service: 'other', endpoints: [endpoint({ ip: '10.244.0.7' })] }),
        slice({ name: 'web-x', namespace: 'elsewhere', endpoints: [endpoint({ ip: '10.244.0.8' })] }),
      ],
    });
    assert.deepEqual(addrs(plan.allEndpoints), ['10.244.0.10:8080', '10.244.0.1:8080', '10.244.0.9:8080']);
  });

  test('a duplicate ip:port across slices appears once, the ready copy wins', () => {
    for (const order of [['a', 'b'], ['b', 'a']]) {
      const slices = order.map((name) => slice({ name, endpoints: [endpoint({ ip: '10.244.0.1', ready: name === 'b' })] }));
      const plan = onlyPlan({ services: [service()], slices });
      assert.deepEqual(plan.allEndpoints.map((e) => [e.ip, e.ready]), [['10.244.0.1', true]], order.join());
    }
  });

  test('the same ip on different ports is two endpoints', () => {
    const plan = onlyPlan({ services: [service()], slices: [
      slice({ name: 'a', ports: [{ port: 8080 }], endpoints: [endpoint({ ip: '10.244.0.1' })] }),
      slice({ name: 'b', ports: [{ port: 9090 }], endpoints: [endpoint({ ip: '10.244.0.1' })] }),
    ] });
    assert.deepEqual(addrs(plan.allEndpoints), ['10.244.0.1:8080', '10.244.0.1:9090']);
  });
});

test('NodeView and node IPs per family', () => {
  const cases: Array<[unknown, unknown, unknown, unknown]> = [
    [thisNode, { name: 'node-a', zone: 'zone-a', shuttingDown: false }, ['192.168.0.10', '203.0.113.10'], ['fd00::10']],
    [node({ name: 'node-a', deletionTimestamp: new Date() }), { name: 'node-a', shuttingDown: true }, ['192.168.0.10'], []],
    [node({ name: 'node-a', taints: [{ key: 'ToBeDeletedByClusterAutoscaler', effect: 'NoSchedule' }] }), { name: 'node-a', shuttingDown: true }, ['192.168.0.10'], []],
    [undefined, { name: 'node-a', shuttingDown: false }, [], []],
  ];
  for (const [nodeObject, view, v4, v6] of cases) {
    const state = stateOf(nodeObject === undefined ? {} : { node: nodeObject });
    assert.deepEqual(state.node, view);
    assert.deepEqual(state.families.IPv4.nodeIPs, v4);
    assert.deepEqual(state.families.IPv6.nodeIPs, v6);
  }
  assert.deepEqual(stateOf({}, testOptions({ masqueradeAll: true, masqueradeBit: 3 })).settings, { masqueradeAll: true, masqueradeBit: 3, conntrackTcpLiberal: false });
  assert.equal(stateOf({}, testOptions({ conntrackTcpLiberal: true })).settings.conntrackTcpLiberal, true);
});

test('validateComputeOptions: one clear line per bad option', () => {
  assert.deepEqual(validateComputeOptions(testOptions({ clusterCIDRs: ['10.244.0.0/16'], nodePortAddresses: ['primary', '192.168.0.0/16'] })), []);
  assert.deepEqual(validateComputeOptions(testOptions({ nodeName: ' ', masqueradeBit: 32, clusterCIDRs: ['10.244.0.0'], nodePortAddresses: ['primry'], primaryIP: '010.0.0.1' })), [
    'nodeName: must not be empty',
    'masqueradeBit: 32 is not an integer in 0..31',
    'primaryIP: "010.0.0.1" is not a canonical IP address',
    'clusterCIDRs[0]: "10.244.0.0" is not a CIDR',
    'nodePortAddresses[0]: "primry" is not a CIDR or "primary"',
  ]);
});
