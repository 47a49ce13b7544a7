// The synthetic cluster generator (test/fixtures/synthetic.ts) is deterministic, valid and varied.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseEndpointSlice } from '../../src/compute/parse-endpointslice.ts';
import { parseNode } from '../../src/compute/parse-node.ts';
import { parseService } from '../../src/compute/parse-service.ts';
import type { ServiceRecord } from '../../src/compute/records.ts';
import { mutateOneEndpoint, syntheticCluster } from '../fixtures/synthetic.ts';

test('same seed → same cluster; another seed → another cluster', () => {
  const a = syntheticCluster({ services: 200, endpointsPerService: 3, nodeName: 'n', seed: 1 });
  const b = syntheticCluster({ services: 200, endpointsPerService: 3, nodeName: 'n', seed: 1 });
  const c = syntheticCluster({ services: 200, endpointsPerService: 3, nodeName: 'n', seed: 2 });
  assert.equal(JSON.stringify([a.services, a.slices, a.node]), JSON.stringify([b.services, b.slices, b.node]));
  assert.notEqual(JSON.stringify(a.slices), JSON.stringify(c.slices));
});

test('every object is valid and the mix covers the features', () => {
  const cluster = syntheticCluster({ services: 1000, endpointsPerService: 120, nodeName: 'node-0', seed: 3, dualStack: true });
  const services: ServiceRecord[] = [];
  for (const raw of cluster.services) {
    const parsed = parseService(raw);
    assert.equal(parsed.kind, 'ok', JSON.stringify(parsed));
    if (parsed.kind === 'ok') services.push(parsed.value);
  }
  let endpoints = 0;
  let local = 0;
  for (const raw of cluster.slices) {
    const parsed = parseEndpointSlice(raw);
    assert.ok(parsed.kind === 'ok' && parsed.problem === undefined, JSON.stringify(parsed));
    assert.ok(parsed.value.endpoints.length <= 100);
    endpoints += parsed.value.endpoints.length;
    local += parsed.value.endpoints.filter((e) => e.nodeName === 'node-0').length;
  }
  assert.equal(parseNode(cluster.node).kind, 'ok');
  const count = (predicate: (s: ServiceRecord) => boolean): number => services.filter(predicate).length;
  assert.ok(count((s) => s.type === 'NodePort') > 50);
  assert.ok(count((s) => s.type === 'LoadBalancer' && s.loadBalancerIPs.length === 1) > 50);
  assert.ok(count((s) => s.externalIPs.length > 0) > 5);
  assert.ok(count((s) => s.externalTrafficPolicyLocal) > 10);
  assert.ok(count((s) => s.affinityTimeoutSeconds !== undefined) > 10);
  assert.ok(count((s) => s.ports.some((p) => p.protocol === 'UDP')) > 30);
  assert.ok(count((s) => s.clusterIPs.length === 2) > 100);
  assert.ok(endpoints > 120_000 && local > endpoints * 0.05 && local < endpoints * 0.2);
  const nodePorts = services.flatMap((s) => s.ports.flatMap((p) => (p.nodePort === undefined ? [] : [p.nodePort])));
  assert.equal(new Set(nodePorts).size, nodePorts.length, 'NodePorts are unique');
});

test('mutateOneEndpoint adds and removes exactly one endpoint, as a new object', () => {
  const cluster = syntheticCluster({ services: 20, endpointsPerService: 4, nodeName: 'n', seed: 5 });
  const original = cluster.slices[3];
  const added = mutateOneEndpoint(cluster, { change: 'add', sliceIndex: 3 });
  assert.notEqual(added, original);
  assert.equal(cluster.slices[3], added);
  assert.equal((added.endpoints as unknown[]).length, 5);
  assert.equal((original?.endpoints as unknown[]).length, 4);
  const removed = mutateOneEndpoint(cluster, { change: 'remove', sliceIndex: 3 });
  assert.equal((removed.endpoints as unknown[]).length, 4);
  assert.notEqual((removed.metadata as { resourceVersion: string }).resourceVersion, (added.metadata as { resourceVersion: string }).resourceVersion);
});
