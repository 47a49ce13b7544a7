// Garbage among valid objects: the valid services' plans are exactly what they are without the garbage,
// nothing throws, and every bad object yields exactly one InvalidObject with a precise reason.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { InvalidObject } from '../../src/model/observe.ts';
import type { ObjectKind } from '../../src/model/source.ts';
import { ClusterStore } from '../../src/store/cluster-store.ts';
import { testOptions } from '../fixtures/compute-helpers.ts';
import { endpoint, node, service, slice } from '../fixtures/objects.ts';

const good = {
  services: [
    service({ name: 'web', spec: { type: 'NodePort', ports: [{ name: 'http', port: 80, nodePort: 30080 }, { name: 'dns', port: 53, protocol: 'UDP' }] } }),
    service({ name: 'api', spec: { clusterIP: '10.96.0.11', clusterIPs: ['10.96.0.11', 'fd00::11'], sessionAffinity: 'ClientIP' } }),
  ],
  slices: [
    slice({ name: 'web-1', service: 'web', ports: [{ name: 'http', port: 8080 }, { name: 'dns', port: 5353, protocol: 'UDP' }],
      endpoints: [endpoint({ ip: '10.244.0.1', node: 'node-a' }), endpoint({ ip: '10.244.0.2', node: 'node-b', ready: false })] }),
    slice({ name: 'api-4', service: 'api', endpoints: [endpoint({ ip: '10.244.0.3' })] }),
    slice({ name: 'api-6', service: 'api', addressType: 'IPv6', endpoints: [endpoint({ ip: 'fd00:244::3' })] }),
  ],
  node: node({ zone: 'zone-a' }),
};

const svc = (spec: Record<string, unknown>, name = 'bad'): Record<string, unknown> => service({ name, spec });

// [kind, object, expected ref, expected reason]
const garbage: Array<[ObjectKind, unknown, string, string]> = [
  ['Service', 'not a service', '<unnamed>', 'not an object (got "not a service")'],
  ['Service', 17, '<unnamed>', 'not an object (got 17)'],
  ['Service', { kind: 'Service' }, '<unnamed>', 'metadata: missing'],
  ['Service', { metadata: {} }, '<unnamed>', 'metadata.name: missing'],
  ['Service', { metadata: { name: 'n1', namespace: 7 }, spec: {} }, 'default/n1', 'metadata.namespace: 7 is not a string'],
  ['Service', { metadata: { name: 'n2' }, spec: 'x' }, 'default/n2', 'spec: "x" is not an object'],
  ['Service', svc({ clusterIP: '10.0.0.300' }, 'b1'), 'default/b1', 'spec.clusterIP: "10.0.0.300" is not an IP address'],
  ['Service', svc({ clusterIPs: ['10.96.0.10', 'fd00::zz'] }, 'b2'), 'default/b2', 'spec.clusterIPs[1]: "fd00::zz" is not an IP address'],
  ['Service', svc({ ports: [{ name: 'a', port: 80 }, { name: 'b', port: 70000 }] }, 'b3'), 'default/b3', 'spec.ports[1].port: 70000 is not a valid port'],
  ['Service', svc({ ports: [{ port: 80, protocol: 'ICMP' }] }, 'b4'), 'default/b4', 'spec.ports[0].protocol: "ICMP" is not TCP, UDP or SCTP'],
  ['Service', svc({ loadBalancerSourceRanges: ['x/99'] }, 'b5'), 'default/b5', 'spec.loadBalancerSourceRanges[0]: "x/99" is not a CIDR'],
  ['Service', svc({ ports: 'eighty' }, 'b6'), 'default/b6', 'spec.ports: "eighty" is not a list'],
  ['Service', svc({ externalIPs: 'x' }, 'b7'), 'default/b7', 'spec.externalIPs: "x" is not a list'],
  ['Service', svc({ type: 42 }, 'b8'), 'default/b8', 'spec.type: 42 is not a string'],
  ['Service', svc({ sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: '60' } } }, 'b9'), 'default/b9',
    'spec.sessionAffinityConfig.clientIP.timeoutSeconds: "60" is not an integer in 1..86400'],
  ['Service', svc({ externalTrafficPolicy: ['Local'] }, 'b10'), 'default/b10', 'spec.externalTrafficPolicy: a list is not a string'],
  ['Service', { ...svc({ type: 'LoadBalancer' }, 'b11'), status: { loadBalancer: { ingress: 'x' } } }, 'default/b11', 'status.loadBalancer.ingress: "x" is not a list'],
  ['EndpointSlice', null, '<unnamed>', 'not an object (got null)'],
  ['EndpointSlice', slice({ name: 's1', service: 'web', addressType: 'Banana' }), 'default/s1', 'addressType: "Banana" is not IPv4, IPv6 or FQDN'],
  ['EndpointSlice', slice({ name: 's2', service: 'web', ports: [{ name: 'http', port: -5 }] }), 'default/s2', 'ports[0].port: -5 is not a valid port'],
  ['EndpointSlice', { ...slice({ name: 's3' }), metadata: { name: 's3', namespace: 'default', labels: {} } }, 'default/s3', 'metadata.labels[kubernetes.io/service-name]: missing'],
  // A bad endpoint in a slice of a VALID service: only that endpoint is dropped, and this slice adds nothing
  // else to "web" because its other endpoint duplicates one web-1 already has.
  ['EndpointSlice', slice({ name: 's4', service: 'web', ports: [{ name: 'http', port: 8080 }], endpoints: [endpoint({ ip: '10.244.0.1', node: 'node-a' }), endpoint({ ip: '10.244.0.999' })] }),
    'default/s4', 'endpoints[1].addresses[0]: "10.244.0.999" is not an IP address (that endpoint is skipped)'],
  ['Node', { metadata: { name: 'node-a', labels: { 'topology.kubernetes.io/zone': 5 } } }, 'node-a', 'metadata.labels[topology.kubernetes.io/zone]: 5 is not a string'],
];

function feed(store: ClusterStore, withGarbage: boolean): void {
  const kinds: ObjectKind[] = ['Node', 'Service', 'EndpointSlice'];
  for (const kind of kinds) {
    const valid = kind === 'Service' ? good.services : kind === 'EndpointSlice' ? good.slices : [good.node];
    const bad = withGarbage ? garbage.filter(([k]) => k === kind).map(([, object]) => object) : [];
    // Interleave garbage with the valid objects, first as one list, then again object by object.
    const mixed = [...bad.slice(0, 2), ...valid, ...bad.slice(2)];
    if (kind === 'Node') for (const object of mixed) store.upsert(kind, object);
    else {
      store.replaceAll(kind, mixed);
      for (const object of mixed) store.upsert(kind, object);
    }
  }
}

test('garbage among valid objects: valid plans unchanged, one precise InvalidObject per bad object', () => {
  const clean = new ClusterStore({ compute: testOptions() });
  feed(clean, false);
  const invalid: InvalidObject[] = [];
  const dirty = new ClusterStore({ compute: testOptions(), onInvalid: (i) => invalid.push(i) });
  assert.doesNotThrow(() => feed(dirty, true));
  assert.deepEqual(dirty.snapshot(), clean.snapshot());
  assert.ok(clean.snapshot().families.IPv4.services.length === 3 && clean.snapshot().families.IPv6.services.length === 1);
  assert.deepEqual(
    [...invalid].sort((a, b) => (a.ref + a.reason < b.ref + b.reason ? -1 : 1)),
    garbage.map(([kind, , ref, reason]) => ({ kind, ref, reason })).sort((a, b) => (a.ref + a.reason < b.ref + b.reason ? -1 : 1)),
  );
});

test('a broken update of a working Service keeps its plans; its removal still removes them', () => {
  const invalid: InvalidObject[] = [];
  const store = new ClusterStore({ compute: testOptions(), onInvalid: (i) => invalid.push(i) });
  feed(store, false);
  const before = store.snapshot();
  store.upsert('Service', service({ name: 'web', spec: { ports: [{ port: 99999 }] } }));
  assert.deepEqual(store.snapshot(), before);
  assert.deepEqual(invalid, [{ kind: 'Service', ref: 'default/web', reason: 'spec.ports[0].port: 99999 is not a valid port' }]);
  store.remove('Service', 'default', 'web');
  assert.deepEqual(store.snapshot().families.IPv4.services.map((p) => p.key), ['default/api:']);
});
