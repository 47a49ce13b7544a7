// The hand-written manifests in test/fixtures/manifests/basic.yaml, end to end through the store.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import type { InvalidObject } from '../../src/model/observe.ts';
import type { ObjectKind } from '../../src/model/source.ts';
import { ClusterStore } from '../../src/store/cluster-store.ts';
import { addrs, testOptions } from '../fixtures/compute-helpers.ts';

function load(file: string): Record<ObjectKind, unknown[]> {
  const byKind: Record<ObjectKind, unknown[]> = { Service: [], EndpointSlice: [], Node: [] };
  for (const doc of parseAllDocuments(readFileSync(new URL(`../fixtures/manifests/${file}`, import.meta.url), 'utf8'))) {
    const object = doc.toJS() as { kind?: ObjectKind } | null;
    if (object?.kind) byKind[object.kind].push(object);
  }
  return byKind;
}

test('basic.yaml: plans for web, api (dual-stack) and edge; headless, ExternalName and foreign services skipped', () => {
  const invalid: InvalidObject[] = [];
  const store = new ClusterStore({ compute: testOptions({ nodePortAddresses: ['primary'], clusterCIDRs: ['10.244.0.0/16'] }), onInvalid: (i) => invalid.push(i) });
  const objects = load('basic.yaml');
  for (const kind of ['Node', 'Service', 'EndpointSlice'] as const) store.replaceAll(kind, objects[kind]);
  store.synced();
  const state = store.snapshot();
  assert.deepEqual(invalid, []);
  assert.deepEqual(state.node, { name: 'node-a', zone: 'zone-a', shuttingDown: false });
  const v4 = state.families.IPv4;
  const v6 = state.families.IPv6;
  assert.deepEqual(v4.nodeIPs, ['192.168.0.10', '203.0.113.10']);
  assert.deepEqual(v4.nodePortAddresses, ['192.168.0.10']);
  assert.deepEqual(v6.nodePortAddresses, ['fd00:192:168::10']);
  assert.deepEqual(v4.services.map((p) => p.key), ['public/edge:dns', 'shop/api:', 'shop/web:http', 'shop/web:metrics']);
  assert.deepEqual(v6.services.map((p) => p.key), ['shop/api:']);

  const [edge, api, http, metrics] = v4.services;
  assert.deepEqual(edge?.frontends, [
    { kind: 'ClusterIP', ip: '10.96.0.30', port: 53 }, { kind: 'ExternalIP', ip: '198.51.100.7', port: 53 },
    { kind: 'LoadBalancer', ip: '192.0.2.1', port: 53 }, { kind: 'NodePort', port: 31053 },
  ]);
  assert.equal(edge?.protocol, 'UDP');
  assert.deepEqual(edge?.sourceRanges, ['203.0.113.0/24']);
  assert.deepEqual(edge?.affinity, { timeoutSeconds: 10800 });
  assert.equal(edge?.hasEndpoints, false);

  assert.equal(api?.externalPolicyLocal, true);
  assert.deepEqual(addrs(api?.localEndpoints ?? []), ['10.244.1.9:8443']);
  assert.deepEqual(addrs(api?.clusterEndpoints ?? []), ['10.244.1.9:8443', '10.244.3.9:8443']);
  assert.deepEqual(addrs(v6.services[0]?.clusterEndpoints ?? []), ['fd00:10:244:3::9:8443']);
  assert.deepEqual(v6.services[0]?.localEndpoints, []);

  assert.deepEqual(addrs(http?.clusterEndpoints ?? []), ['10.244.1.5:8080']);
  assert.deepEqual(addrs(http?.allEndpoints ?? []), ['10.244.1.5:8080', '10.244.2.7:8080']);
  assert.deepEqual(addrs(metrics?.clusterEndpoints ?? []), ['10.244.1.5:9100']);
  assert.deepEqual(store.counts(), { services: 3, skippedServices: 3, slices: 3, endpoints: 5, hasNode: true });
});
