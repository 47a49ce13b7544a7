// The protobuf list decoder (controllers/kube/protobuf.ts) against the real kube-apiserver: the same objects listed in
// JSON (then slimmed) and in protobuf (decoded straight to slim objects) must be equal, field for field. The objects:
// the packet-flow and oracle clusters (dual-stack, every traffic policy, LB status, hints, multi-slice), a synthetic
// sample, and the odd ones (ExternalName, named target ports, an empty slice, a slice being deleted, trigger-time and
// topology annotations, a tainted Node with pod CIDRs).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { ControlPlane, kubeTestsDisabled } from './apiserver.ts';
import { readManifest, FLOW_MANIFEST_PATH } from '../flows/cluster.ts';
import { syntheticCluster } from '../fixtures/synthetic.ts';
import { createKubeApi, loadClientConfig, type KubeApi } from '../../controllers/kube/client.ts';
import { decodeEndpointSlice, decodeNode, decodeService, type ItemDecoder } from '../../controllers/kube/protobuf.ts';
import { slimEndpointSlice, slimNode, slimService } from '../../controllers/kube/slim.ts';
import { systemClock } from '../../src/sync/clock.ts';

const skip = kubeTestsDisabled ? 'KPROXY_NO_KUBE_TESTS=1' : false;
type Raw = Record<string, unknown>;
const EXTRA = fileURLToPath(new URL('./oracle-extra.yaml', import.meta.url));

describe('protobuf lists decode to what JSON lists slim to (real kube-apiserver)', { skip }, () => {
  let plane: ControlPlane;
  let api: KubeApi;

  before(async () => {
    plane = await ControlPlane.start({ apiserverArgs: ['--service-cluster-ip-range=10.96.0.0/16,fd00:96::/108', '--service-node-port-range=30000-39999'] });
    const post = (path: string, body: Raw): Promise<Raw> => plane.request('POST', path, body);
    const services: Raw[] = [];
    const slices: Raw[] = [];
    for (const file of [FLOW_MANIFEST_PATH, EXTRA]) {
      const objects = readManifest(file);
      services.push(...(objects.Service as Raw[]));
      slices.push(...(objects.EndpointSlice as Raw[]));
    }
    const synthetic = syntheticCluster({ services: 60, endpointsPerService: 4, nodeName: 'node1', seed: 3, dualStack: true });
    await plane.request('POST', '/api/v1/namespaces', { metadata: { name: 'synth' } });
    for (const s of synthetic.services) {
      const spec = { ...(s.spec as Raw) };
      // the apiserver picks these (the generated ones collide with the flow cluster's)
      for (const field of ['healthCheckNodePort', 'clusterIP', 'clusterIPs']) delete spec[field];
      spec.ports = (spec.ports as Raw[]).map(({ nodePort: _drop, ...port }) => port);
      services.push({ ...s, metadata: { ...(s.metadata as Raw), namespace: 'synth' }, spec });
    }
    slices.push(...synthetic.slices.map((s) => ({ ...s, metadata: { ...(s.metadata as Raw), namespace: 'synth' } })));
    for (const service of services) {
      const metadata = service.metadata as { name: string; namespace?: string; labels?: Raw; annotations?: Raw };
      const path = `/api/v1/namespaces/${metadata.namespace ?? 'default'}/services`;
      await post(path, { metadata: { name: metadata.name, labels: metadata.labels, annotations: metadata.annotations }, spec: service.spec });
      if (service.status) await plane.request('PATCH', `${path}/${metadata.name}/status`, { status: service.status });
    }
    for (const slice of slices) {
      const { apiVersion: _v, kind: _k, ...body } = slice;
      const metadata = body.metadata as { namespace?: string; resourceVersion?: string };
      delete metadata.resourceVersion;
      await post(`/apis/discovery.k8s.io/v1/namespaces/${metadata.namespace ?? 'default'}/endpointslices`, body);
    }
    // the odd ones
    await post('/api/v1/namespaces/default/services', {
      metadata: { name: 'odd', annotations: { 'service.kubernetes.io/topology-mode': 'Auto', other: 'dropped' }, labels: { a: 'b' } },
      spec: { ports: [{ name: 'web', port: 80, targetPort: 'http', protocol: 'TCP' }, { name: 'udp', port: 53, protocol: 'UDP' }], sessionAffinity: 'ClientIP',
        sessionAffinityConfig: { clientIP: { timeoutSeconds: 30 } }, internalTrafficPolicy: 'Local' },
    });
    await post('/api/v1/namespaces/default/services', { metadata: { name: 'external' }, spec: { type: 'ExternalName', externalName: 'example.com' } });
    await post('/apis/discovery.k8s.io/v1/namespaces/default/endpointslices', {
      metadata: { name: 'odd-1', labels: { 'kubernetes.io/service-name': 'odd', x: 'y' },
        annotations: { 'endpoints.kubernetes.io/last-change-trigger-time': '2026-01-02T03:04:05Z', 'other': 'dropped' } },
      addressType: 'IPv4', ports: [{ name: 'web', port: 8080, protocol: 'TCP' }, { port: 9090 }], endpoints: [
        { addresses: ['10.244.9.1'], conditions: {}, hostname: 'h', targetRef: { kind: 'Pod', name: 'p', namespace: 'default' } },
        { addresses: ['10.244.9.2'], conditions: { ready: false, serving: true, terminating: true }, nodeName: 'node2', zone: 'z',
          hints: { forZones: [{ name: 'z' }], forNodes: [{ name: 'node2' }] } },
      ],
    });
    await post('/apis/discovery.k8s.io/v1/namespaces/default/endpointslices', { metadata: { name: 'empty-1', labels: { 'kubernetes.io/service-name': 'odd' } }, addressType: 'IPv6', ports: [], endpoints: [] });
    await post('/apis/discovery.k8s.io/v1/namespaces/default/endpointslices', {
      metadata: { name: 'going-1', finalizers: ['kproxy.test/hold'], labels: { 'kubernetes.io/service-name': 'odd' } },
      addressType: 'IPv4', endpoints: [{ addresses: ['10.244.9.3'] }],
    });
    await plane.request('DELETE', '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/going-1');
    await post('/api/v1/nodes', {
      metadata: { name: 'node1', labels: { 'topology.kubernetes.io/zone': 'zone-a', 'kubernetes.io/hostname': 'node1', other: 'dropped' } },
      spec: { podCIDR: '10.244.1.0/24', podCIDRs: ['10.244.1.0/24', 'fd00:244:1::/64'], taints: [{ key: 'k', value: 'v', effect: 'NoSchedule' }, { key: 'n', effect: 'NoExecute', timeAdded: '2026-03-04T05:06:07Z' }] },
    });
    await plane.request('PATCH', '/api/v1/nodes/node1/status', { status: { addresses: [{ type: 'InternalIP', address: '192.168.100.2' }, { type: 'Hostname', address: 'node1' }] } });
    await post('/api/v1/nodes', { metadata: { name: 'bare' } });
    api = createKubeApi({ config: loadClientConfig({ kubeconfig: plane.proxyKubeconfig }), clock: systemClock, qps: 0 });
  });

  after(async () => { await plane?.stop(); });

  const cases: Array<[string, string, (o: unknown) => unknown, ItemDecoder]> = [
    ['Services', '/api/v1/services', slimService, decodeService],
    ['EndpointSlices', '/apis/discovery.k8s.io/v1/endpointslices', slimEndpointSlice, decodeEndpointSlice],
    ['Nodes', '/api/v1/nodes', slimNode, decodeNode],
  ];
  for (const [kind, path, slim, decode] of cases) {
    test(`${kind}: every object the same, in the same list, with the same resourceVersion`, async () => {
      const json = await api.list(path, { resourceVersion: '0' });
      const proto = await api.list(path, { resourceVersion: '0' }, decode);
      assert.equal(proto.slim, true, 'the apiserver answered in protobuf');
      assert.equal(json.slim, undefined);
      const key = (o: unknown): string => { const m = (o as { metadata: { namespace?: string; name: string } }).metadata; return `${m.namespace ?? ''}/${m.name}`; };
      const sorted = (items: readonly unknown[]): unknown[] => [...items].sort((a, b) => key(a).localeCompare(key(b)));
      assert.ok(json.items.length >= (kind === 'Nodes' ? 2 : 60), `${json.items.length} ${kind}`);
      assert.deepEqual(sorted(proto.items), sorted(json.items.map(slim)));
      assert.ok(proto.resourceVersion !== '' && proto.resourceVersion === json.resourceVersion, `${proto.resourceVersion} / ${json.resourceVersion}`);
    });
  }

  test('pages: the continue token comes through and the pages add up to the whole list', async () => {
    const all = await api.list('/apis/discovery.k8s.io/v1/endpointslices', { resourceVersion: '0' }, decodeEndpointSlice);
    const names: string[] = [];
    let continueToken: string | undefined;
    let pages = 0;
    do {
      const page = await api.list('/apis/discovery.k8s.io/v1/endpointslices', { limit: 25, ...(continueToken ? { continue: continueToken } : {}) }, decodeEndpointSlice);
      for (const item of page.items) names.push((item as { metadata: { name: string } }).metadata.name);
      continueToken = page.continueToken;
      pages++;
    } while (continueToken !== undefined);
    assert.ok(pages > 2, `${pages} pages`);
    assert.equal(names.length, all.items.length);
  });
});
