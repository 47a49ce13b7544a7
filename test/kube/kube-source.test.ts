// kproxy against a real kube-apiserver + etcd (started here on loopback): informers → store → sync loop,
// health, health-check node ports and metrics, all authenticated as system:kube-proxy (least privilege).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ControlPlane, kubeTestsDisabled } from './apiserver.ts';
import { eventually, serviceBody, servicePlans, sliceBody, startPipeline, type Pipeline } from './harness.ts';
import { startHealthServer } from '../../src/health/server.ts';
import type { RunningServer } from '../../src/health/http.ts';

const NODE = 'node-a';
const skip = kubeTestsDisabled ? 'KPROXY_NO_KUBE_TESTS=1' : false;

async function getJson(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(url);
  return { status: response.status, body: await response.json() as Record<string, unknown> };
}

describe('kube source against a real kube-apiserver', { skip }, () => {
  let plane: ControlPlane;
  let proxy: Pipeline;
  let healthServer: RunningServer;

  before(async () => {
    plane = await ControlPlane.start();
    for (const ns of ['crud', 'labels', 'hc', 'legacy']) await plane.request('POST', '/api/v1/namespaces', { metadata: { name: ns } });
    await plane.request('POST', '/api/v1/nodes', { metadata: { name: NODE } });
    proxy = await startPipeline({ kubeconfig: plane.proxyKubeconfig, nodeName: NODE });
    healthServer = await startHealthServer({ bindAddress: '127.0.0.1:0', health: proxy.health, onAnswer: (path, code) => proxy.metrics.healthAnswered(path, code) });
    await eventually('first sync', () => proxy.applied());
  });

  after(async () => {
    await healthServer?.close();
    await proxy?.stop();
    await plane?.stop();
  });

  test('the proxy identity has only system:node-proxier rights', async () => {
    // It can do its job (the pipeline synced) but holds nothing beyond system:node-proxier.
    const review = await plane.request('POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', {
      spec: { user: 'system:kube-proxy', resourceAttributes: { verb: 'list', resource: 'secrets' } },
    });
    assert.equal((review.status as { allowed: boolean }).allowed, false);
    const allowed = await plane.request('POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', {
      spec: { user: 'system:kube-proxy', resourceAttributes: { verb: 'watch', group: 'discovery.k8s.io', resource: 'endpointslices' } },
    });
    assert.equal((allowed.status as { allowed: boolean }).allowed, true);
    assert.equal(proxy.store.hasSynced, true);
  });

  test('addresses in the legacy forms this apiserver still accepts are served normalised, as kube-proxy reads them', async () => {
    // The apiserver keeps what was written (here, leading zeros); kube-proxy parses it with ParseIPSloppy.
    const service = await plane.request('POST', '/api/v1/namespaces/legacy/services', serviceBody('old', {
      type: 'LoadBalancer', clusterIP: '10.096.000.012', loadBalancerSourceRanges: ['192.168.000.000/016'],
    }));
    assert.equal((service.spec as { clusterIP: string }).clusterIP, '10.096.000.012', 'stored as written');
    await plane.request('POST', '/apis/discovery.k8s.io/v1/namespaces/legacy/endpointslices', sliceBody('old-1', 'old', [{ ip: '10.244.001.002', node: 'node-b' }]));
    const plan = await eventually('old served', () => servicePlans(proxy.applied(), 'legacy').find((p) => p.clusterEndpoints.length === 1));
    assert.deepEqual(plan.frontends.filter((f) => f.kind === 'ClusterIP').map((f) => ('ip' in f ? f.ip : '')), ['10.96.0.12']);
    assert.equal(plan.clusterEndpoints[0]?.ip, '10.244.1.2');
    assert.deepEqual(plan.sourceRanges, ['192.168.0.0/16']);
  });

  test('Services and EndpointSlices created, updated and deleted reach the applied state', async () => {
    await plane.request('POST', '/api/v1/namespaces/crud/services', serviceBody('web'));
    await plane.request('POST', '/apis/discovery.k8s.io/v1/namespaces/crud/endpointslices', sliceBody('web-1', 'web', [{ ip: '10.244.1.5', node: 'node-b' }]));
    const created = await eventually('web with one endpoint', () => {
      const [plan] = servicePlans(proxy.applied(), 'crud');
      return plan?.clusterEndpoints.length === 1 ? plan : undefined;
    });
    assert.equal(created.key, 'crud/web:http');
    assert.equal(created.clusterEndpoints[0]?.ip, '10.244.1.5');
    assert.equal(created.clusterEndpoints[0]?.port, 8080);

    await plane.request('PATCH', '/apis/discovery.k8s.io/v1/namespaces/crud/endpointslices/web-1',
      { endpoints: [{ addresses: ['10.244.1.5'], conditions: { ready: true } }, { addresses: ['10.244.2.7'], conditions: { ready: true }, nodeName: NODE }] });
    const updated = await eventually('two endpoints', () => {
      const [plan] = servicePlans(proxy.applied(), 'crud');
      return plan?.clusterEndpoints.length === 2 ? plan : undefined;
    });
    assert.deepEqual(updated.clusterEndpoints.map((e) => [e.ip, e.local]).sort(), [['10.244.1.5', false], ['10.244.2.7', true]]);

    await plane.request('PATCH', '/api/v1/namespaces/crud/services/web', { spec: { ports: [{ name: 'http', port: 8081, protocol: 'TCP' }] } });
    await eventually('service port 8081', () => servicePlans(proxy.applied(), 'crud')[0]?.port === 8081);

    await plane.request('DELETE', '/apis/discovery.k8s.io/v1/namespaces/crud/endpointslices/web-1');
    await eventually('no endpoints', () => servicePlans(proxy.applied(), 'crud')[0]?.hasEndpoints === false);
    await plane.request('DELETE', '/api/v1/namespaces/crud/services/web');
    await eventually('service gone', () => servicePlans(proxy.applied(), 'crud').length === 0);

    const text = await proxy.metrics.registry.metrics();
    assert.match(text, /kubeproxy_sync_proxy_rules_service_changes_total [1-9]/);
    assert.match(text, /kubeproxy_sync_proxy_rules_endpoint_changes_total [1-9]/);
  });

  test('label selectors: other proxies\' and headless objects are not served', async () => {
    await plane.request('POST', '/api/v1/namespaces/labels/services', serviceBody('mine'));
    await plane.request('POST', '/api/v1/namespaces/labels/services', serviceBody('theirs', {}, { 'service.kubernetes.io/service-proxy-name': 'other' }));
    await plane.request('POST', '/api/v1/namespaces/labels/services', serviceBody('headless-marked', {}, { 'service.kubernetes.io/headless': '' }));
    await plane.request('POST', '/apis/discovery.k8s.io/v1/namespaces/labels/endpointslices', sliceBody('mine-1', 'mine', [{ ip: '10.244.3.1' }]));
    await plane.request('POST', '/apis/discovery.k8s.io/v1/namespaces/labels/endpointslices',
      sliceBody('mine-headless', 'mine', [{ ip: '10.244.3.99' }], { 'service.kubernetes.io/headless': '' }));
    await eventually('mine with its endpoint', () => servicePlans(proxy.applied(), 'labels')[0]?.clusterEndpoints.length === 1);
    // Give the watch a moment to deliver anything it wrongly would.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const plans = servicePlans(proxy.applied(), 'labels');
    assert.deepEqual(plans.map((p) => p.name), ['mine']);
    assert.deepEqual(plans[0]?.clusterEndpoints.map((e) => e.ip), ['10.244.3.1']);

    // A proxy named "other" serves exactly the labelled one.
    const other = await startPipeline({ kubeconfig: plane.proxyKubeconfig, nodeName: NODE, proxyName: 'other' });
    try {
      await eventually('other synced', () => other.applied());
      assert.deepEqual(servicePlans(other.applied(), 'labels').map((p) => p.name), ['theirs']);
    } finally {
      await other.stop();
    }
  });

  test('health-check node port follows local endpoints', async () => {
    await plane.request('POST', '/api/v1/namespaces/hc/services',
      serviceBody('lb', { type: 'LoadBalancer', externalTrafficPolicy: 'Local' }));
    const service = await plane.request('GET', '/api/v1/namespaces/hc/services/lb');
    const port = (service.spec as { healthCheckNodePort: number }).healthCheckNodePort;
    assert.ok(port > 0, 'apiserver allocated a healthCheckNodePort');
    await plane.request('POST', '/apis/discovery.k8s.io/v1/namespaces/hc/endpointslices', sliceBody('lb-1', 'lb', [{ ip: '10.244.4.1', node: 'node-b' }]));
    await eventually('port open', async () => { await proxy.serviceHealth.settled(); return proxy.serviceHealth.ports().includes(port); });
    let answer = await getJson(`http://127.0.0.1:${port}/`);
    assert.equal(answer.status, 503);
    assert.deepEqual(answer.body.service, { namespace: 'hc', name: 'lb' });
    assert.equal(answer.body.localEndpoints, 0);

    await plane.request('PATCH', '/apis/discovery.k8s.io/v1/namespaces/hc/endpointslices/lb-1',
      { endpoints: [{ addresses: ['10.244.4.1'], conditions: { ready: true }, nodeName: 'node-b' }, { addresses: ['10.244.4.2'], conditions: { ready: true }, nodeName: NODE }] });
    answer = await eventually('200 with one local endpoint', async () => {
      const got = await getJson(`http://127.0.0.1:${port}/`);
      return got.status === 200 ? got : undefined;
    });
    assert.equal(answer.body.localEndpoints, 1);

    await plane.request('DELETE', '/api/v1/namespaces/hc/services/lb');
    await eventually('port closed', async () => { await proxy.serviceHealth.settled(); return !proxy.serviceHealth.ports().includes(port); });
    await assert.rejects(fetch(`http://127.0.0.1:${port}/`));
  });

  test('Node tainted, untainted and deleted flips /healthz (not /livez)', async () => {
    const url = `http://127.0.0.1:${healthServer.port}`;
    let answer = await getJson(`${url}/healthz`);
    assert.equal(answer.status, 200);
    assert.equal(answer.body.nodeEligible, true);
    await plane.request('PATCH', `/api/v1/nodes/${NODE}`, { spec: { taints: [{ key: 'ToBeDeletedByClusterAutoscaler', value: '1', effect: 'NoSchedule' }] } });
    answer = await eventually('healthz 503 when tainted', async () => { const got = await getJson(`${url}/healthz`); return got.status === 503 ? got : undefined; });
    assert.equal(answer.body.nodeEligible, false);
    assert.equal((await getJson(`${url}/livez`)).status, 200);
    await plane.request('PATCH', `/api/v1/nodes/${NODE}`, { spec: { taints: null } });
    await eventually('healthz 200 again', async () => (await getJson(`${url}/healthz`)).status === 200);
    await plane.request('DELETE', `/api/v1/nodes/${NODE}`);
    await eventually('healthz 503 after deletion', async () => (await getJson(`${url}/healthz`)).status === 503);
    const text = await proxy.metrics.registry.metrics();
    assert.match(text, /kubeproxy_proxy_healthz_total\{code="503"\} [1-9]/);
  });

  test('apiserver stopped mid-watch: state kept, stale reported, 410 relist, converges after restart', async () => {
    await plane.request('POST', '/api/v1/namespaces', { metadata: { name: 'restart' } });
    await plane.request('POST', '/api/v1/namespaces/restart/services', serviceBody('kept'));
    await plane.request('POST', '/api/v1/namespaces/restart/services', serviceBody('doomed'));
    await eventually('both services', () => servicePlans(proxy.applied(), 'restart').length === 2);
    // Writes the proxy does not watch move etcd's revision past the proxy's resourceVersion.
    for (let i = 0; i < 3; i++) await plane.request('POST', '/api/v1/namespaces/restart/configmaps', { metadata: { name: `bump-${i}` } });

    await plane.stopApiserver();
    await eventually('stale reported', () => proxy.store.staleness.isStale && proxy.staleEvents.includes(true));
    const healthUrl = `http://127.0.0.1:${healthServer.port}`;
    const during = await getJson(`${healthUrl}/livez`);
    assert.equal(during.body.sourceStale, true);
    assert.deepEqual(servicePlans(proxy.applied(), 'restart').map((p) => p.name).sort(), ['doomed', 'kept']);
    assert.deepEqual(servicePlans(proxy.store.snapshot(), 'restart').map((p) => p.name).sort(), ['doomed', 'kept']);

    // Compact etcd to its newest revision so the proxy's resourceVersion is gone: the watch must relist.
    const status = await (await fetch(`${plane.etcdUrl}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key: Buffer.from('/').toString('base64') }) })).json() as { header: { revision: string } };
    const compact = await fetch(`${plane.etcdUrl}/v3/kv/compaction`, { method: 'POST', body: JSON.stringify({ revision: status.header.revision, physical: true }) });
    assert.equal(compact.status, 200, await compact.text());

    await plane.startApiserver();
    await eventually('fresh again', () => !proxy.store.staleness.isStale, 30_000);
    await plane.request('DELETE', '/api/v1/namespaces/restart/services/doomed');
    await plane.request('POST', '/api/v1/namespaces/restart/services', serviceBody('newcomer'));
    await eventually('converged after restart', () => {
      const names = servicePlans(proxy.applied(), 'restart').map((p) => p.name).sort();
      return names.join(',') === 'kept,newcomer';
    }, 30_000);
    assert.ok(proxy.restarts.some((r) => r.reason === 'gone'), `a 410 relist happened (restarts: ${JSON.stringify(proxy.restarts)})`);
    assert.ok(proxy.restarts.some((r) => r.reason === 'error'));
    const text = await proxy.metrics.registry.metrics();
    assert.match(text, /kproxy_informer_restarts_total\{resource="Service"\} [1-9]/);
    assert.match(text, /kproxy_source_stale 0/);
  });
});
