import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseService } from '../../src/compute/parse-service.ts';
import { parseEndpointSlice } from '../../src/compute/parse-endpointslice.ts';
import { parseNode } from '../../src/compute/parse-node.ts';
import { endpoint, node, service, slice } from '../fixtures/objects.ts';

const reasonOf = (parsed: { kind: string; invalid?: { reason: string }; problem?: string }): string | undefined =>
  parsed.kind === 'invalid' ? parsed.invalid?.reason : undefined;

describe('parseService: invalid Services name the object and the field', () => {
  const cases: Array<[string, unknown, string]> = [
    ['not an object', 'hello', 'not an object (got "hello")'],
    ['null', null, 'not an object (got null)'],
    ['no metadata', { spec: {} }, 'metadata: missing'],
    ['no name', { metadata: { namespace: 'x' }, spec: {} }, 'metadata.name: missing'],
    ['name wrong type', { metadata: { name: 5 } }, 'metadata.name: 5 is not a string'],
    ['bad name', { metadata: { name: 'Web!' } }, 'metadata.name: "Web!" is not a valid name'],
    ['no spec', { metadata: { name: 'web' } }, 'spec: missing'],
    ['port too big', service({ spec: { ports: [{ name: 'a', port: 80 }, { name: 'b', port: 70000 }] } }), 'spec.ports[1].port: 70000 is not a valid port'],
    ['port as string', service({ spec: { ports: [{ port: '80' }] } }), 'spec.ports[0].port: "80" is not a valid port'],
    ['port zero', service({ spec: { ports: [{ port: 0 }] } }), 'spec.ports[0].port: 0 is not a valid port'],
    ['port missing', service({ spec: { ports: [{ name: 'x' }] } }), 'spec.ports[0].port: missing'],
    ['no ports', service({ spec: { ports: [] } }), 'spec.ports: a Service needs at least one port'],
    ['ports not a list', service({ spec: { ports: { port: 80 } } }), 'spec.ports: an object is not a list'],
    ['port entry not an object', service({ spec: { ports: [80] } }), 'spec.ports[0]: 80 is not an object'],
    ['protocol', service({ spec: { ports: [{ port: 80, protocol: 'ICMP' }] } }), 'spec.ports[0].protocol: "ICMP" is not TCP, UDP or SCTP'],
    ['lower-case protocol', service({ spec: { ports: [{ port: 80, protocol: 'tcp' }] } }), 'spec.ports[0].protocol: "tcp" is not TCP, UDP or SCTP'],
    ['unnamed among several', service({ spec: { ports: [{ port: 80 }, { name: 'b', port: 81 }] } }), 'spec.ports[0].name: required when a Service has several ports'],
    ['duplicate name', service({ spec: { ports: [{ name: 'a', port: 80 }, { name: 'a', port: 81 }] } }), 'spec.ports[1].name: "a" is used twice'],
    ['nodePort', service({ spec: { type: 'NodePort', ports: [{ port: 80, nodePort: -1 }] } }), 'spec.ports[0].nodePort: -1 is not a valid port'],
    ['cluster IP', service({ spec: { clusterIP: '10.0.0.300' } }), 'spec.clusterIP: "10.0.0.300" is not an IP address'],
    ['cluster IPs', service({ spec: { clusterIP: undefined, clusterIPs: ['10.0.0.300'] } }), 'spec.clusterIPs[0]: "10.0.0.300" is not an IP address'],
    ['cluster IPs mismatch', service({ spec: { clusterIPs: ['10.96.0.11'] } }), 'spec.clusterIPs[0]: "10.96.0.11" does not match spec.clusterIP "10.96.0.10"'],
    ['two of a family', service({ spec: { clusterIPs: ['10.96.0.10', '10.96.0.11'] } }), 'spec.clusterIPs[1]: "10.96.0.11" has the same family as spec.clusterIPs[0]'],
    ['ipFamilies mismatch', service({ spec: { ipFamilies: ['IPv6'] } }), 'spec.ipFamilies[0]: IPv6 does not match cluster IP "10.96.0.10"'],
    ['ipFamilies nonsense', service({ spec: { ipFamilies: ['IPv5'] } }), 'spec.ipFamilies[0]: "IPv5" is not IPv4 or IPv6'],
    ['no cluster IP', service({ spec: { clusterIP: undefined } }), 'spec.clusterIP: missing (no cluster IP allocated)'],
    ['cluster IP wrong type', service({ spec: { clusterIP: 10 } }), 'spec.clusterIP: 10 is not a string'],
    ['type', service({ spec: { type: 'Magic' } }), 'spec.type: "Magic" is not ClusterIP, NodePort, LoadBalancer or ExternalName'],
    ['external IP', service({ spec: { externalIPs: ['1.2.3.4', 'x'] } }), 'spec.externalIPs[1]: "x" is not an IP address'],
    ['source range', service({ spec: { type: 'LoadBalancer', loadBalancerSourceRanges: ['x/99'] } }), 'spec.loadBalancerSourceRanges[0]: "x/99" is not a CIDR'],
    ['source range prefix', service({ spec: { loadBalancerSourceRanges: ['10.0.0.0/33'] } }), 'spec.loadBalancerSourceRanges[0]: "10.0.0.0/33" is not a CIDR'],
    ['source range bare IP', service({ spec: { loadBalancerSourceRanges: ['10.0.0.1'] } }), 'spec.loadBalancerSourceRanges[0]: "10.0.0.1" is not a CIDR'],
    ['affinity', service({ spec: { sessionAffinity: 'Cookie' } }), 'spec.sessionAffinity: "Cookie" is not None or ClientIP'],
    ['affinity timeout', service({ spec: { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 0 } } } }),
      'spec.sessionAffinityConfig.clientIP.timeoutSeconds: 0 is not an integer in 1..86400'],
    ['affinity config type', service({ spec: { sessionAffinity: 'ClientIP', sessionAffinityConfig: [] } }), 'spec.sessionAffinityConfig: a list is not an object'],
    ['ETP', service({ spec: { externalTrafficPolicy: 'Global' } }), 'spec.externalTrafficPolicy: "Global" is not Cluster or Local'],
    ['ITP', service({ spec: { internalTrafficPolicy: true } }), 'spec.internalTrafficPolicy: true is not a string'],
    ['health check port', service({ spec: { healthCheckNodePort: 1.5 } }), 'spec.healthCheckNodePort: 1.5 is not a valid port'],
    ['LB ingress IP', service({ spec: { type: 'LoadBalancer' }, status: { loadBalancer: { ingress: [{ ip: '1.2.3' }] } } }),
      'status.loadBalancer.ingress[0].ip: "1.2.3" is not an IP address'],
    ['LB ipMode', service({ spec: { type: 'LoadBalancer' }, status: { loadBalancer: { ingress: [{ ip: '1.2.3.4', ipMode: 'Tunnel' }] } } }),
      'status.loadBalancer.ingress[0].ipMode: "Tunnel" is not VIP or Proxy'],
    ['label wrong type', { ...service(), metadata: { name: 'web', labels: { 'service.kubernetes.io/service-proxy-name': 1 } } },
      'metadata.labels[service.kubernetes.io/service-proxy-name]: 1 is not a string'],
    ['labels not an object', { ...service(), metadata: { name: 'web', labels: 'x' } }, 'metadata.labels: "x" is not an object'],
  ];
  for (const [label, raw, reason] of cases) {
    test(label, () => {
      const parsed = parseService(raw);
      assert.equal(parsed.kind, 'invalid', label);
      assert.equal(reasonOf(parsed), reason);
    });
  }

  test('the ref is namespace/name, or <unnamed>', () => {
    const bad = parseService(service({ namespace: 'shop', name: 'api', spec: { clusterIP: 'nope' } }));
    assert.deepEqual(bad, { kind: 'invalid', invalid: { kind: 'Service', ref: 'shop/api', reason: 'spec.clusterIP: "nope" is not an IP address' } });
    const anonymous = parseService(42);
    assert.equal(anonymous.kind === 'invalid' && anonymous.invalid.ref, '<unnamed>');
  });
});

describe('parseService: skipped (not ours) vs accepted', () => {
  const cases: Array<[string, unknown, string | undefined, string | undefined]> = [
    ['headless clusterIP None', service({ spec: { clusterIP: 'None' } }), undefined, 'headless (clusterIP: None)'],
    ['headless clusterIPs None', service({ spec: { clusterIP: undefined, clusterIPs: ['None'] } }), undefined, 'headless (clusterIP: None)'],
    ['ExternalName', service({ spec: { type: 'ExternalName', clusterIP: undefined, ports: [] } }), undefined, 'type ExternalName'],
    ['headless label', service({ labels: { 'service.kubernetes.io/headless': '' } }), undefined, 'headless (label)'],
    ['proxy-name label, no proxy name configured', service({ labels: { 'service.kubernetes.io/service-proxy-name': 'kproxy' } }), undefined, 'served by proxy "kproxy"'],
    ['proxy-name label, other name', service({ labels: { 'service.kubernetes.io/service-proxy-name': 'cilium' } }), 'kproxy', 'served by proxy "cilium"'],
    ['proxy-name label, our name', service({ labels: { 'service.kubernetes.io/service-proxy-name': 'kproxy' } }), 'kproxy', undefined],
    ['no label, proxy name configured', service(), 'kproxy', undefined],
  ];
  for (const [label, raw, proxyName, skipped] of cases) {
    test(label, () => {
      const parsed = parseService(raw, proxyName === undefined ? {} : { proxyName });
      if (skipped === undefined) assert.equal(parsed.kind, 'ok');
      else assert.deepEqual(parsed, { kind: 'skipped', ref: 'default/web', reason: skipped });
    });
  }
});

test('parseService keeps only what the model needs, normalised, with defaults', () => {
  const parsed = parseService(service({
    spec: {
      type: 'LoadBalancer', clusterIP: 'FD00::0:10', clusterIPs: ['fd00::10', '10.96.0.10'], ipFamilies: ['IPv6', 'IPv4'],
      ports: [{ name: 'b', port: 81, nodePort: 30081 }, { name: 'a', port: 80, protocol: 'SCTP', nodePort: 30080 }],
      externalIPs: ['2001:DB8::1', '2001:db8::1'], loadBalancerSourceRanges: ['10.1.2.3/8', '10.0.0.0/8'],
      sessionAffinity: 'ClientIP', selector: { app: 'x' }, trafficDistribution: 'PreferClose',
    },
    status: { loadBalancer: { ingress: [{ ip: '192.0.2.1', ipMode: 'VIP' }, { ip: '192.0.2.2', ipMode: 'Proxy' }, { hostname: 'x' }] } },
  }));
  assert.deepEqual(parsed, {
    kind: 'ok',
    value: {
      namespace: 'default', name: 'web', type: 'LoadBalancer',
      clusterIPs: [{ family: 'IPv6', ip: 'fd00::10' }, { family: 'IPv4', ip: '10.96.0.10' }],
      ports: [{ name: 'b', protocol: 'TCP', port: 81, nodePort: 30081 }, { name: 'a', protocol: 'SCTP', port: 80, nodePort: 30080 }],
      externalIPs: ['2001:db8::1'], loadBalancerIPs: ['192.0.2.1'], sourceRanges: ['10.0.0.0/8'],
      externalTrafficPolicyLocal: false, internalTrafficPolicyLocal: false, affinityTimeoutSeconds: 10800,
    },
  });
});

test('parseService: loadBalancerSourceRanges as kube-proxy reads them', () => {
  const rangesOf = (raw: unknown): unknown => {
    const parsed = parseService(raw);
    return parsed.kind === 'ok' ? parsed.value.sourceRanges : parsed.kind;
  };
  // API validation lets whitespace padding through; upstream trims it.
  assert.deepEqual(rangesOf(service({ spec: { type: 'LoadBalancer', loadBalancerSourceRanges: [' 10.0.0.0/8 ', '192.168.1.0/24'] } })), ['10.0.0.0/8', '192.168.1.0/24']);
  // The annotation is for cloud load balancers; kube-proxy ignores it, even when malformed.
  assert.deepEqual(rangesOf(service({ annotations: { 'service.beta.kubernetes.io/load-balancer-source-ranges': '10.0.0.0/8, nope' } })), []);
});

describe('parseEndpointSlice', () => {
  const invalid: Array<[string, unknown, string]> = [
    ['not an object', [1, 2], 'not an object (got a list)'],
    ['no service-name label', { ...slice(), metadata: { name: 's', namespace: 'default' } }, 'metadata.labels[kubernetes.io/service-name]: missing'],
    ['nonsense addressType', slice({ addressType: 'IPv7' }), 'addressType: "IPv7" is not IPv4, IPv6 or FQDN'],
    ['addressType wrong type', slice({ addressType: 4 }), 'addressType: 4 is not a string'],
    ['bad port', slice({ ports: [{ port: 99999 }] }), 'ports[0].port: 99999 is not a valid port'],
    ['bad protocol', slice({ ports: [{ port: 80, protocol: 'GRE' }] }), 'ports[0].protocol: "GRE" is not TCP, UDP or SCTP'],
    ['port name type', slice({ ports: [{ port: 80, name: 7 }] }), 'ports[0].name: 7 is not a string'],
    ['endpoints not a list', { ...slice(), endpoints: 'all' }, 'endpoints: "all" is not a list'],
  ];
  for (const [label, raw, reason] of invalid) {
    test(`invalid: ${label}`, () => assert.equal(reasonOf(parseEndpointSlice(raw)), reason));
  }

  test('FQDN slices are not ours', () => {
    assert.deepEqual(parseEndpointSlice(slice({ addressType: 'FQDN' })), { kind: 'skipped', ref: 'default/web-abc', reason: 'addressType FQDN' });
  });

  // Choice (see parse-endpointslice.ts): one bad endpoint drops only that endpoint; the slice reports it once.
  const badEndpoints: Array<[string, unknown, string]> = [
    ['bad address', endpoint({ ip: '10.0.0.300' }), 'endpoints[1].addresses[0]: "10.0.0.300" is not an IP address (that endpoint is skipped)'],
    ['wrong family', endpoint({ ip: 'fd00::1' }), 'endpoints[1].addresses[0]: "fd00::1" is not an IPv4 address (that endpoint is skipped)'],
    ['no addresses', { conditions: {} }, 'endpoints[1].addresses: missing (that endpoint is skipped)'],
    ['ready not boolean', { addresses: ['10.244.0.9'], conditions: { ready: 'yes' } }, 'endpoints[1].conditions.ready: "yes" is not true or false (that endpoint is skipped)'],
    ['nodeName type', { addresses: ['10.244.0.9'], nodeName: ['a'] }, 'endpoints[1].nodeName: a list is not a string (that endpoint is skipped)'],
    ['hint without name', { addresses: ['10.244.0.9'], hints: { forZones: [{}] } }, 'endpoints[1].hints.forZones[0].name: missing (that endpoint is skipped)'],
    ['endpoint not an object', 'x', 'endpoints[1]: "x" is not an object (that endpoint is skipped)'],
  ];
  for (const [label, bad, problem] of badEndpoints) {
    test(`bad endpoint: ${label}`, () => {
      const parsed = parseEndpointSlice(slice({ endpoints: [endpoint({ ip: '10.244.0.1' }), bad, endpoint({ ip: '10.244.0.2' })] }));
      assert.equal(parsed.kind, 'ok');
      if (parsed.kind !== 'ok') return;
      assert.deepEqual(parsed.value.endpoints.map((e) => e.ip), ['10.244.0.1', '10.244.0.2']);
      assert.equal(parsed.problem, problem);
    });
  }

  test('several bad endpoints are counted in one problem', () => {
    const parsed = parseEndpointSlice(slice({ endpoints: ['x', 'y', endpoint({ ip: '10.244.0.2' })] }));
    assert.equal(parsed.kind === 'ok' && parsed.problem, 'endpoints[0]: "x" is not an object (2 endpoints are skipped)');
  });

  test('conditions default as upstream: nil ready = true, nil serving = true (endpointslicecache), nil terminating = false', () => {
    const parsed = parseEndpointSlice(slice({
      endpoints: [endpoint({ ip: '10.244.0.1' }), endpoint({ ip: '10.244.0.2', ready: false }), endpoint({ ip: '10.244.0.3', ready: null, serving: false, terminating: true })],
    }));
    assert.ok(parsed.kind === 'ok');
    assert.deepEqual(parsed.value.endpoints.map((e) => [e.ready, e.serving, e.terminating]), [[true, true, false], [false, true, false], [true, false, true]]);
  });

  test('node hints are read unless the PreferSameTrafficDistribution feature gate is off (zone hints always)', () => {
    const raw = slice({ endpoints: [endpoint({ ip: '10.244.0.1', forNodes: ['n1'], forZones: ['z1'] })] });
    const on = parseEndpointSlice(raw);
    const off = parseEndpointSlice(raw, { nodeHints: false });
    assert.ok(on.kind === 'ok' && off.kind === 'ok');
    assert.deepEqual([on.value.endpoints[0]?.nodeHints, on.value.endpoints[0]?.zoneHints], [['n1'], ['z1']]);
    assert.deepEqual([off.value.endpoints[0]?.nodeHints, off.value.endpoints[0]?.zoneHints], [undefined, ['z1']]);
  });

  test('ports without a number are ignored; missing name is ""; missing protocol is TCP', () => {
    const parsed = parseEndpointSlice(slice({ ports: [{ name: 'all' }, { port: 8080 }, { name: 'x', port: null }] }));
    assert.ok(parsed.kind === 'ok');
    assert.deepEqual(parsed.value.ports, [{ name: '', protocol: 'TCP', port: 8080 }]);
  });
});

describe('parseNode', () => {
  test('zone, addresses InternalIP first per family, primary', () => {
    const parsed = parseNode(node({
      zone: 'z1',
      addresses: [['ExternalIP', '203.0.113.1'], ['Hostname', 'node-a'], ['InternalIP', '192.168.0.10'], ['InternalIP', 'FD00::10'], ['InternalIP', '192.168.0.11']],
    }));
    assert.deepEqual(parsed, {
      kind: 'ok',
      value: {
        name: 'node-a', shuttingDown: false, zone: 'z1',
        addresses: { IPv4: ['192.168.0.10', '192.168.0.11', '203.0.113.1'], IPv6: ['fd00::10'] },
        primary: { IPv4: '192.168.0.10', IPv6: 'fd00::10' },
        podCIDRs: [],
      },
    });
  });

  test('pod CIDRs: spec.podCIDRs, else spec.podCIDR; a bad one is skipped and reported', () => {
    const both = { ...node(), spec: { podCIDR: '10.244.7.0/24', podCIDRs: ['10.244.7.5/24', 'FD00:10:244:7::/64'] } };
    const parsed = parseNode(both);
    assert.ok(parsed.kind === 'ok');
    assert.deepEqual(parsed.value.podCIDRs, ['10.244.7.0/24', 'fd00:10:244:7::/64']);
    const single = parseNode({ ...node(), spec: { podCIDR: '10.244.9.0/24' } });
    assert.ok(single.kind === 'ok');
    assert.deepEqual(single.value.podCIDRs, ['10.244.9.0/24']);
    const bad = parseNode({ ...node(), spec: { podCIDRs: ['nonsense', '10.244.8.0/24'] } });
    assert.ok(bad.kind === 'ok');
    assert.deepEqual(bad.value.podCIDRs, ['10.244.8.0/24']);
    assert.match(bad.problem ?? '', /spec\.podCIDRs\[0\].*nonsense.*skipped/);
  });

  const shutting: Array<[string, unknown, boolean]> = [
    ['deletionTimestamp as Date (client-node)', node({ deletionTimestamp: new Date('2025-01-01T00:00:00Z') }), true],
    ['deletionTimestamp as string', node({ deletionTimestamp: '2025-01-01T00:00:00Z' }), true],
    ['autoscaler taint', node({ taints: [{ key: 'ToBeDeletedByClusterAutoscaler', value: '123', effect: 'NoSchedule' }] }), true],
    ['other taint', node({ taints: [{ key: 'node.kubernetes.io/unschedulable', effect: 'NoSchedule' }] }), false],
    ['healthy', node(), false],
  ];
  for (const [label, raw, want] of shutting) {
    test(`shuttingDown: ${label}`, () => {
      const parsed = parseNode(raw);
      assert.equal(parsed.kind === 'ok' && parsed.value.shuttingDown, want);
    });
  }

  test('a bad address drops only that address; bad structure is invalid', () => {
    const parsed = parseNode(node({ addresses: [['InternalIP', 'nope'], ['InternalIP', '192.168.0.10']] }));
    assert.equal(parsed.kind, 'ok');
    assert.ok(parsed.kind === 'ok');
    assert.deepEqual(parsed.value.addresses.IPv4, ['192.168.0.10']);
    assert.equal(parsed.problem, 'status.addresses[0].address: "nope" is not an IP address (that address is skipped)');
    assert.equal(reasonOf(parseNode({ metadata: { name: 'node-a' }, spec: { taints: 'x' } })), 'spec.taints: "x" is not a list');
    assert.equal(reasonOf(parseNode({ metadata: { name: 'node-a' }, status: { addresses: {} } })), 'status.addresses: an object is not a list');
  });
});

describe('legacy address forms (leading zeros), read as kube-proxy reads them (ParseIPSloppy), with notes', () => {
  test('a Service: cluster IP, external IP, load-balancer IP and source range normalised; each field noted once', () => {
    const parsed = parseService(service({
      spec: {
        type: 'LoadBalancer', clusterIP: '10.096.000.012', clusterIPs: ['10.096.000.012'], externalIPs: ['010.1.2.3', '10.1.2.4'],
        loadBalancerSourceRanges: ['192.168.000.000/016', '10.0.0.0/8'], ports: [{ port: 80, nodePort: 30080 }],
      },
      status: { loadBalancer: { ingress: [{ ip: '192.168.001.001' }] } },
    }));
    assert.ok(parsed.kind === 'ok');
    assert.deepEqual(parsed.value.clusterIPs, [{ ip: '10.96.0.12', family: 'IPv4' }]);
    assert.deepEqual(parsed.value.externalIPs, ['10.1.2.3', '10.1.2.4']);
    assert.deepEqual(parsed.value.loadBalancerIPs, ['192.168.1.1']);
    assert.deepEqual(parsed.value.sourceRanges, ['192.168.0.0/16', '10.0.0.0/8']);
    assert.deepEqual(parsed.notes, [
      'spec.clusterIP "10.096.000.012" read as 10.96.0.12',
      'spec.externalIPs[0] "010.1.2.3" read as 10.1.2.3',
      'status.loadBalancer.ingress[0].ip "192.168.001.001" read as 192.168.1.1',
      'spec.loadBalancerSourceRanges[0] "192.168.000.000/016" read as 192.168.0.0/16',
    ]);
  });

  test('octets with leading zeros are decimal, not octal (010 is 10)', () => {
    const parsed = parseService(service({ spec: { clusterIP: '010.010.010.010' } }));
    assert.ok(parsed.kind === 'ok');
    assert.equal(parsed.value.clusterIPs[0]?.ip, '10.10.10.10');
  });

  test('canonical addresses carry no note', () => {
    const parsed = parseService(service({ spec: { clusterIP: '10.96.0.12', loadBalancerSourceRanges: ['10.0.0.1/8'] } }));
    assert.ok(parsed.kind === 'ok');
    assert.equal(parsed.notes, undefined);
  });

  test('an EndpointSlice: endpoint addresses normalised and noted', () => {
    const parsed = parseEndpointSlice(slice({ endpoints: [endpoint({ ip: '10.244.001.002' }), endpoint({ ip: '10.244.1.3' })] }));
    assert.ok(parsed.kind === 'ok');
    assert.deepEqual(parsed.value.endpoints.map((e) => e.ip), ['10.244.1.2', '10.244.1.3']);
    assert.deepEqual(parsed.notes, ['endpoints[0].addresses[0] "10.244.001.002" read as 10.244.1.2']);
    assert.equal(parsed.problem, undefined);
  });

  test('a Node: addresses and pod CIDRs', () => {
    const raw = { ...node({ addresses: [['InternalIP', '192.168.000.010']] }), spec: { podCIDRs: ['10.244.007.000/024'] } };
    const parsed = parseNode(raw);
    assert.ok(parsed.kind === 'ok');
    assert.deepEqual(parsed.value.addresses.IPv4, ['192.168.0.10']);
    assert.deepEqual(parsed.value.podCIDRs, ['10.244.7.0/24']);
    assert.equal(parsed.notes?.length, 2);
  });
});
