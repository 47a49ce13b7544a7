import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { InvalidObject, ObjectNotice } from '../../src/model/observe.ts';
import { ClusterStore } from '../../src/store/cluster-store.ts';
import { testOptions, stateOf } from '../fixtures/compute-helpers.ts';
import { endpoint, node, service, slice } from '../fixtures/objects.ts';
import { mutateOneEndpoint, serviceKeyOfSlice, syntheticCluster } from '../fixtures/synthetic.ts';

function makeStore(overrides: Parameters<typeof testOptions>[0] = {}): { store: ClusterStore; invalid: InvalidObject[]; changes: () => number } {
  const invalid: InvalidObject[] = [];
  const store = new ClusterStore({ compute: testOptions(overrides), onInvalid: (i) => invalid.push(i) });
  let count = 0;
  store.onChange(() => count++);
  return { store, invalid, changes: () => count };
}

const v = (raw: Record<string, unknown>, resourceVersion: string): Record<string, unknown> =>
  ({ ...raw, metadata: { ...(raw.metadata as object), resourceVersion } });

describe('ClusterStore', () => {
  test('snapshot equals a from-scratch compute; unchanged → same object', () => {
    const { store } = makeStore();
    const objects = { services: [service(), service({ name: 'api', spec: { clusterIP: '10.96.0.11' } })], slices: [slice(), slice({ service: 'api' })], node: node({ zone: 'zone-a' }) };
    store.replaceAll('Service', objects.services);
    store.replaceAll('EndpointSlice', objects.slices);
    store.replaceAll('Node', [objects.node]);
    const first = store.snapshot();
    assert.deepEqual(first, stateOf(objects));
    assert.equal(store.snapshot(), first);
  });

  test('memoised: one slice change replans only its service', () => {
    const { store } = makeStore();
    store.replaceAll('Service', [service(), service({ name: 'api', spec: { clusterIP: '10.96.0.11' } })]);
    store.replaceAll('EndpointSlice', [slice(), slice({ service: 'api' })]);
    const before = store.snapshot().families.IPv4.services;
    store.upsert('EndpointSlice', slice({ service: 'api', endpoints: [endpoint({ ip: '10.244.9.9' })] }));
    assert.equal(store.pendingServiceChanges, 1);
    const after = store.snapshot().families.IPv4.services;
    assert.equal(after[1], before[1], 'web plan reused'); // keys: default/api:, default/web:
    assert.notEqual(after[0], before[0]);
    assert.deepEqual(after[0]?.allEndpoints.map((e) => e.ip), ['10.244.9.9']);
  });

  test('slices that arrive before their Service are used when it arrives; removal drops them', () => {
    const { store } = makeStore();
    store.upsert('EndpointSlice', slice());
    assert.deepEqual(store.snapshot().families.IPv4.services, []);
    store.upsert('Service', service());
    assert.deepEqual(store.snapshot().families.IPv4.services[0]?.allEndpoints.map((e) => e.ip), ['10.244.1.5']);
    store.remove('EndpointSlice', 'default', 'web-abc');
    assert.deepEqual(store.snapshot().families.IPv4.services[0]?.allEndpoints, []);
    store.remove('Service', 'default', 'web');
    assert.deepEqual(store.snapshot().families.IPv4.services, []);
  });

  test('a slice that moves to another service updates both', () => {
    const { store } = makeStore();
    store.replaceAll('Service', [service(), service({ name: 'api', spec: { clusterIP: '10.96.0.11' } })]);
    store.upsert('EndpointSlice', slice({ name: 's' }));
    store.upsert('EndpointSlice', slice({ name: 's', service: 'api' }));
    const plans = store.snapshot().families.IPv4.services;
    assert.deepEqual(plans.map((p) => [p.key, p.allEndpoints.length]), [['default/api:', 1], ['default/web:', 0]]);
  });

  test('invalid objects: reported once per bad version, the last good version is kept', () => {
    const { store, invalid } = makeStore();
    store.upsert('Service', v(service(), '1'));
    const good = store.snapshot();
    const bad = v(service({ spec: { clusterIP: 'bogus' } }), '2');
    store.upsert('Service', bad);
    store.upsert('Service', bad); // same version again (resync): no new report
    store.replaceAll('Service', [bad]); // relist: still the same bad version
    assert.deepEqual(invalid, [{ kind: 'Service', ref: 'default/web', reason: 'spec.clusterIP: "bogus" is not an IP address' }]);
    assert.deepEqual(store.snapshot(), good, 'working rules kept');
    store.upsert('Service', v(service({ spec: { clusterIP: 'bogus' } }), '3'));
    assert.equal(invalid.length, 2, 'a new bad version is reported again');
    // Without resourceVersion (manifests), the same bad content is not re-reported.
    store.upsert('Service', service({ name: 'x', spec: { clusterIP: 'bogus' } }));
    store.upsert('Service', service({ name: 'x', spec: { clusterIP: 'bogus' } }));
    assert.equal(invalid.length, 3);
    // A fix clears the memory: breaking it again reports again.
    store.upsert('Service', service({ name: 'x', spec: { clusterIP: '10.96.0.99' } }));
    store.upsert('Service', service({ name: 'x', spec: { clusterIP: 'bogus' } }));
    assert.equal(invalid.length, 4);
  });

  test('objects are parsed once: identical updates change nothing and notify nobody', () => {
    const { store, changes } = makeStore();
    store.upsert('Service', service());
    store.upsert('EndpointSlice', slice());
    const count = changes();
    const first = store.snapshot();
    store.upsert('Service', service()); // no resourceVersion, same content
    store.upsert('Service', v(service(), '7'));
    store.upsert('EndpointSlice', slice());
    store.replaceAll('EndpointSlice', [slice()]);
    assert.equal(changes(), count);
    assert.equal(store.snapshot(), first);
  });

  test('Node: heartbeat-only updates are ignored, addresses change the frame, zone replans every service', () => {
    const { store, changes } = makeStore({ nodePortAddresses: ['primary'] });
    store.upsert('Service', service({ spec: { trafficDistribution: 'PreferClose' } }));
    store.upsert('EndpointSlice', slice({ endpoints: [endpoint({ ip: '10.244.0.1', forZones: ['zone-a'] }), endpoint({ ip: '10.244.0.2', forZones: ['zone-b'] })] }));
    store.upsert('Node', node({ zone: 'zone-a', version: '1' }));
    const a = store.snapshot();
    assert.deepEqual(a.families.IPv4.services[0]?.clusterEndpoints.map((e) => e.ip), ['10.244.0.1']);
    const count = changes();
    const heartbeat = { ...node({ zone: 'zone-a', version: '2' }), status: { addresses: [{ type: 'InternalIP', address: '192.168.0.10' }], conditions: [{ type: 'Ready', lastHeartbeatTime: new Date() }] } };
    store.upsert('Node', heartbeat);
    assert.equal(changes(), count);
    assert.equal(store.snapshot(), a);
    store.upsert('Node', node({ zone: 'zone-a', version: '3', addresses: [['InternalIP', '192.168.0.20']] }));
    const b = store.snapshot();
    assert.deepEqual(b.families.IPv4.nodePortAddresses, ['192.168.0.20']);
    assert.equal(b.families.IPv4.services[0], a.families.IPv4.services[0], 'plans reused on an address change');
    store.upsert('Node', node({ zone: 'zone-b', version: '4', addresses: [['InternalIP', '192.168.0.20']] }));
    const c = store.snapshot();
    assert.equal(c.node.zone, 'zone-b');
    assert.deepEqual(c.families.IPv4.services[0]?.clusterEndpoints.map((e) => e.ip), ['10.244.0.2']);
    store.upsert('Node', node({ name: 'someone-else', zone: 'zone-c' }));
    assert.equal(store.snapshot(), c, 'other Nodes are ignored');
    store.remove('Node', undefined, 'node-a');
    assert.equal(store.snapshot().node.zone, undefined);
  });

  test('replaceAll removes what is gone; hasSynced, stale and onChange', () => {
    const store = new ClusterStore({ compute: testOptions() });
    let notified = 0;
    const unsubscribe = store.onChange(() => notified++);
    store.replaceAll('Service', [service(), service({ name: 'api', spec: { clusterIP: '10.96.0.11' } })]);
    assert.equal(notified, 1, 'one notification per replaceAll');
    store.replaceAll('Service', [service({ name: 'api', spec: { clusterIP: '10.96.0.11' } })]);
    assert.deepEqual(store.snapshot().families.IPv4.services.map((p) => p.key), ['default/api:']);
    assert.equal(store.hasSynced, false);
    store.synced();
    assert.equal(store.hasSynced, true);
    store.stale(true, 'watch closed');
    assert.deepEqual(store.staleness, { isStale: true, reason: 'watch closed' });
    store.batch(() => {
      store.upsert('Service', service({ name: 'b', spec: { clusterIP: '10.96.0.12' } }));
      store.upsert('Service', service({ name: 'c', spec: { clusterIP: '10.96.0.13' } }));
    });
    const afterBatch = notified;
    assert.equal(afterBatch, 4, 'replaceAll ×2, synced, one for the batch');
    unsubscribe();
    store.remove('Service', 'default', 'b');
    assert.equal(notified, afterBatch);
  });

  test('a Service becoming not-ours loses its plans', () => {
    const { store } = makeStore();
    store.upsert('Service', service());
    assert.equal(store.snapshot().families.IPv4.services.length, 1);
    store.upsert('Service', service({ spec: { clusterIP: 'None' } }));
    assert.equal(store.snapshot().families.IPv4.services.length, 0);
    assert.deepEqual(store.counts(), { services: 0, skippedServices: 1, slices: 0, endpoints: 0, hasNode: false });
  });

  test('synthetic cluster: incremental snapshots match a from-scratch compute after many changes', () => {
    const cluster = syntheticCluster({ services: 300, endpointsPerService: 5, nodeName: 'node-a', seed: 7, dualStack: true });
    const options = testOptions({ clusterCIDRs: ['10.244.0.0/16'], nodePortAddresses: ['primary'] });
    const store = new ClusterStore({ compute: options, onInvalid: (i) => assert.fail(JSON.stringify(i)) });
    store.replaceAll('Service', cluster.services);
    store.replaceAll('EndpointSlice', cluster.slices);
    store.upsert('Node', cluster.node);
    store.snapshot();
    const changes: Array<'add' | 'remove' | 'toggle-ready'> = ['add', 'remove', 'toggle-ready'];
    for (let i = 0; i < 30; i++) {
      const changed = mutateOneEndpoint(cluster, { change: changes[i % 3] ?? 'add' });
      const before = store.snapshot();
      store.upsert('EndpointSlice', changed);
      const after = store.snapshot();
      // Only the touched service's plans are new objects.
      const key = serviceKeyOfSlice(changed);
      after.families.IPv4.services.forEach((plan, index) => {
        if (`${plan.namespace}/${plan.name}` !== key) assert.equal(plan, before.families.IPv4.services[index]);
      });
    }
    const scratch = new ClusterStore({ compute: options });
    scratch.replaceAll('Service', cluster.services);
    scratch.replaceAll('EndpointSlice', cluster.slices);
    scratch.upsert('Node', cluster.node);
    assert.deepEqual(store.snapshot(), scratch.snapshot());
    assert.ok(store.snapshot().families.IPv6.services.length > 0);
  });
});

describe('ClusterStore: objects in legacy address forms', () => {
  test('are served on the normalised addresses, reported once per version, not counted as invalid', () => {
    const notices: ObjectNotice[] = [];
    const invalid: InvalidObject[] = [];
    const store = new ClusterStore({ compute: testOptions(), onInvalid: (i) => invalid.push(i), onNotice: (n) => notices.push(n) });
    const legacy = v(service({ spec: { clusterIP: '10.096.000.012' } }), '1');
    store.upsert('Service', legacy);
    store.upsert('EndpointSlice', slice({ endpoints: [endpoint({ ip: '10.244.001.002' })] }));
    store.upsert('Service', legacy);
    store.upsert('Service', v(service({ spec: { clusterIP: '10.096.000.012' } }), '2'));
    const plan = store.snapshot().families.IPv4.services[0];
    assert.deepEqual(plan?.frontends.map((f) => ('ip' in f ? f.ip : f.kind)), ['10.96.0.12']);
    assert.deepEqual(plan?.allEndpoints.map((e) => e.ip), ['10.244.1.2']);
    assert.deepEqual(notices.map((n) => `${n.kind} ${n.ref}: ${n.notes.join('; ')}`), [
      'Service default/web: spec.clusterIP "10.096.000.012" read as 10.96.0.12',
      'EndpointSlice default/web-abc: endpoints[0].addresses[0] "10.244.001.002" read as 10.244.1.2',
    ], 'a new version with the same notes is not reported again');
    assert.deepEqual(invalid, []);
    store.upsert('Service', v(service({ spec: { clusterIP: '10.96.0.12' } }), '3'));
    store.upsert('Service', v(service({ spec: { clusterIP: '10.096.000.012' } }), '4'));
    assert.equal(notices.length, 3, 'fixed, then legacy again: reported again');
  });
});
