// Unit tests of the informer's own logic (backoff, selectors, slimming, restart rules). The real behaviour
// against kube-apiserver is in test/kube/kube-source.test.ts; here a scripted API drives the edge cases
// (a 410 in the middle of a watch, a silent watch) precisely and fast.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Backoff } from '../../controllers/kube/backoff.ts';
import { nodeFieldSelector, proxyLabelSelector } from '../../controllers/kube/selectors.ts';
import { slimEndpointSlice, slimNode, slimService } from '../../controllers/kube/slim.ts';
import { ApiError, loadClientConfig, type KubeApi, type ListPage, type QueryParams, type WatchEventHandler, type WatchHandle } from '../../controllers/kube/client.ts';
import { Reflector, type RestartReason } from '../../controllers/kube/reflector.ts';
import { TokenBucket } from '../../controllers/kube/rate-limit.ts';
import { FakeClock, settle } from '../../src/sync/fake-clock.ts';

describe('backoff', () => {
  test('grows, is capped, jitters upward only, resets', () => {
    const none = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0 });
    assert.deepEqual([none.next(), none.next(), none.next(), none.next(), none.next()], [100, 200, 400, 800, 1000]);
    none.reset();
    assert.equal(none.next(), 100);
    const full = new Backoff({ initialMs: 100, maxMs: 1000, jitter: 0.5, random: () => 0.999 });
    assert.equal(full.next(), 150);
    assert.equal(full.next(), 300);
  });
});

describe('selectors', () => {
  test('kube-proxy label selectors', () => {
    assert.equal(proxyLabelSelector(), '!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless');
    assert.equal(proxyLabelSelector('kproxy'), 'service.kubernetes.io/service-proxy-name=kproxy,!service.kubernetes.io/headless');
    assert.equal(nodeFieldSelector('node-a'), 'metadata.name=node-a');
  });
});

describe('slimming keeps what the model reads and drops the rest', () => {
  test('Service', () => {
    const slim = slimService({
      apiVersion: 'v1', kind: 'Service',
      metadata: { name: 's', namespace: 'n', resourceVersion: '5', uid: 'u', labels: { a: 'b' }, managedFields: [{}],
        annotations: { 'service.kubernetes.io/topology-mode': 'Auto', 'kubectl.kubernetes.io/last-applied-configuration': '{...}' } },
      spec: { type: 'ClusterIP', clusterIP: '10.0.0.1', selector: { app: 'x' }, ports: [{ port: 80, targetPort: 8080, appProtocol: 'http' }], trafficDistribution: 'PreferClose' },
      status: { loadBalancer: { ingress: [{ ip: '1.2.3.4', ipMode: 'VIP', ports: [] }] }, conditions: [] },
    });
    assert.deepEqual(slim, {
      apiVersion: 'v1', kind: 'Service',
      metadata: { name: 's', namespace: 'n', resourceVersion: '5', annotations: { 'service.kubernetes.io/topology-mode': 'Auto' } },
      spec: { type: 'ClusterIP', clusterIP: '10.0.0.1', ports: [{ port: 80, targetPort: 8080 }], trafficDistribution: 'PreferClose' },
      status: { loadBalancer: { ingress: [{ ip: '1.2.3.4', ipMode: 'VIP' }] } },
    });
  });
  test('EndpointSlice and Node', () => {
    const slice = slimEndpointSlice({
      metadata: { name: 'e', namespace: 'n', labels: { 'kubernetes.io/service-name': 's', other: 'x' }, managedFields: [] },
      addressType: 'IPv4', ports: [{ name: 'p', port: 1, protocol: 'TCP', appProtocol: 'h' }],
      endpoints: [{ addresses: ['10.1.1.1'], conditions: { ready: true, serving: true, terminating: false }, nodeName: 'a', zone: 'z', targetRef: { kind: 'Pod' }, hints: { forZones: [{ name: 'z' }] } }],
    });
    assert.deepEqual(slice, {
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
      metadata: { name: 'e', namespace: 'n', labels: { 'kubernetes.io/service-name': 's' } },
      addressType: 'IPv4', ports: [{ name: 'p', port: 1, protocol: 'TCP' }],
      endpoints: [{ addresses: ['10.1.1.1'], conditions: { ready: true, serving: true, terminating: false }, nodeName: 'a', zone: 'z', hints: { forZones: [{ name: 'z' }] } }],
    });
    const node = slimNode({ metadata: { name: 'a', deletionTimestamp: 't', labels: { 'topology.kubernetes.io/zone': 'z', x: 'y' } }, spec: { taints: [], providerID: 'p' }, status: { addresses: [], images: [{}] } });
    assert.deepEqual(node, { apiVersion: 'v1', kind: 'Node', metadata: { name: 'a', deletionTimestamp: 't', labels: { 'topology.kubernetes.io/zone': 'z' } }, spec: { taints: [] }, status: { addresses: [] } });
  });
  test('odd values pass through unchanged (compute validates)', () => {
    assert.equal(slimService('nope'), 'nope');
    assert.deepEqual(slimService({ spec: { ports: 'x' } }), { apiVersion: 'v1', kind: 'Service', spec: { ports: 'x' } });
  });
});

describe('client configuration', () => {
  test('kubeconfig, --master override, and a clear error outside a cluster', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kproxy-kc-'));
    try {
      const file = join(dir, 'kc');
      writeFileSync(file, JSON.stringify({ apiVersion: 'v1', kind: 'Config', 'current-context': 'c',
        clusters: [{ name: 'k', cluster: { server: 'https://10.0.0.1:6443' } }], users: [{ name: 'u', user: { token: 't' } }],
        contexts: [{ name: 'c', context: { cluster: 'k', user: 'u' } }] }));
      assert.equal(loadClientConfig({ kubeconfig: file }).server, 'https://10.0.0.1:6443');
      assert.equal(loadClientConfig({ kubeconfig: file, master: 'https://10.0.0.2:6443/' }).server, 'https://10.0.0.2:6443');
      assert.equal(loadClientConfig({ master: 'http://127.0.0.1:8080' }).server, 'http://127.0.0.1:8080');
      // lists in protobuf unless only JSON is asked for; other types are noted
      const protobuf = loadClientConfig({ kubeconfig: file, contentType: 'application/vnd.kubernetes.protobuf' });
      assert.deepEqual([protobuf.notes, protobuf.protobufLists], [[], true]);
      assert.equal(loadClientConfig({ kubeconfig: file }).protobufLists, true);
      assert.equal(loadClientConfig({ kubeconfig: file, contentType: 'application/json' }).protobufLists, false);
      assert.equal(loadClientConfig({ kubeconfig: file, acceptContentTypes: 'application/json' }).protobufLists, false);
      assert.deepEqual(loadClientConfig({ kubeconfig: file, contentType: 'application/yaml' }).notes,
        ['clientConnection.contentType "application/yaml" is not supported; using application/json']);
      assert.throws(() => loadClientConfig({ env: {} }), /no --kubeconfig or --master given and not running in a cluster/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('token bucket: burst at once, then qps', async () => {
    const clock = new FakeClock(0);
    const bucket = new TokenBucket({ qps: 10, burst: 2, clock });
    const done: number[] = [];
    for (let i = 0; i < 4; i++) void bucket.acquire().then(() => done.push(clock.now()));
    await settle();
    assert.deepEqual(done, [0, 0]);
    await clock.advance(250);
    assert.deepEqual(done, [0, 0, 100, 200]);
  });
});

/** An API whose answers the test scripts, one per call. */
class ScriptedApi implements KubeApi {
  readonly server = 'https://scripted';
  lists: Array<ListPage | Error> = [];
  watches: Array<Error | ((emit: WatchEventHandler, end: (error: Error | null) => void) => void)> = [];
  readonly calls: string[] = [];
  active = 0;
  maxActive = 0;
  aborted = 0;

  async list(_path: string, params: QueryParams): Promise<ListPage> {
    this.calls.push(`list limit=${params.limit ?? ''}${params.continue ? ` continue=${params.continue}` : ''}`);
    const next = this.lists.shift() ?? new Error('no more lists');
    if (next instanceof Error) throw next;
    return next;
  }

  async watch(_path: string, params: QueryParams, onEvent: WatchEventHandler): Promise<WatchHandle> {
    this.calls.push(`watch rv=${params.resourceVersion ?? ''}`);
    const next = this.watches.shift() ?? new Error('no more watches');
    if (next instanceof Error) throw next;
    let finish: (error: Error | null) => void = () => {};
    const done = new Promise<Error | null>((resolve) => { finish = resolve; });
    this.active++;
    this.maxActive = Math.max(this.maxActive, this.active);
    const end = (error: Error | null): void => { this.active--; finish(error); };
    let ended = false;
    const endOnce = (error: Error | null): void => { if (!ended) { ended = true; end(error); } };
    next(onEvent, endOnce);
    return { abort: () => { this.aborted++; endOnce(new Error('aborted')); }, done };
  }

  async create(): Promise<void> {}
}

const svc = (name: string, rv: string) => ({ metadata: { name, namespace: 'n', resourceVersion: rv } });

function reflectorWith(api: ScriptedApi, clock: FakeClock) {
  const log: string[] = [];
  const restarts: RestartReason[] = [];
  const stale: boolean[] = [];
  const reflector = new Reflector({
    kind: 'Service', path: '/api/v1/services', api, clock, slim: (o) => o, random: () => 0,
    backoff: { initialMs: 100, maxMs: 1000, random: () => 0 }, silenceMs: 5000,
    sink: {
      replaceAll: (objects) => log.push(`replaceAll ${objects.length}`),
      upsert: (o) => log.push(`upsert ${(o as { metadata: { name: string } }).metadata.name}`),
      remove: (ns, name) => log.push(`remove ${ns}/${name}`),
    },
    hooks: { listed: () => log.push('listed'), restarted: (reason) => restarts.push(reason), stale: (s) => stale.push(s) },
  });
  return { reflector, log, restarts, stale };
}

describe('reflector', () => {
  test('list, watch events, 410 Gone in the stream → paged relist, resume from the new resourceVersion', async () => {
    const clock = new FakeClock(0);
    const api = new ScriptedApi();
    api.lists = [
      { items: [svc('a', '1')], resourceVersion: '10', continueToken: undefined },
      { items: [svc('b', '30')], resourceVersion: '31', continueToken: 'next' },
      { items: [svc('c', '32')], resourceVersion: '31', continueToken: undefined },
    ];
    api.watches = [
      (emit, end) => { emit('ADDED', svc('b', '11')); emit('DELETED', svc('a', '12')); emit('BOOKMARK', { metadata: { resourceVersion: '20' } }); emit('ERROR', { code: 410, reason: 'Expired' }); end(null); },
      () => { /* stays open */ },
    ];
    const { reflector, log, restarts } = reflectorWith(api, clock);
    reflector.start();
    await clock.advance(10);
    assert.deepEqual(log, ['replaceAll 1', 'listed', 'upsert b', 'remove n/a', 'replaceAll 2']);
    assert.deepEqual(api.calls, ['list limit=500', 'watch rv=10', 'list limit=500', 'list limit=500 continue=next', 'watch rv=31']);
    assert.deepEqual(restarts, ['gone']);
    await reflector.stop();
  });

  test('errors: stale, jittered growing delays, one attempt at a time, fresh again after recovery', async () => {
    const clock = new FakeClock(0);
    const api = new ScriptedApi();
    api.lists = [new ApiError('connection refused'), new ApiError('connection refused'), { items: [], resourceVersion: '5', continueToken: undefined }];
    api.watches = [new ApiError('watch: connection refused'), () => {}];
    const { reflector, restarts, stale } = reflectorWith(api, clock);
    reflector.start();
    await clock.advance(0);
    assert.deepEqual(api.calls, ['list limit=500']);
    assert.deepEqual(stale, [true]);
    await clock.advance(99);
    assert.equal(api.calls.length, 1, 'waits the first backoff delay');
    await clock.advance(1);
    assert.equal(api.calls.length, 2);
    await clock.advance(199);
    assert.equal(api.calls.length, 2, 'second delay is doubled');
    await clock.advance(1);
    assert.deepEqual(api.calls, ['list limit=500', 'list limit=500', 'list limit=500', 'watch rv=5']);
    await clock.advance(400);
    assert.deepEqual(api.calls.at(-1), 'watch rv=5');
    assert.deepEqual(restarts, ['error', 'error', 'error']);
    assert.deepEqual(stale, [true, false, true, false]);
    assert.ok(api.maxActive <= 1);
    await reflector.stop();
  });

  test('watchdog restarts a silent watch from the same resourceVersion', async () => {
    const clock = new FakeClock(0);
    const api = new ScriptedApi();
    api.lists = [{ items: [], resourceVersion: '7', continueToken: undefined }];
    api.watches = [() => {}, () => {}];
    const { reflector, restarts } = reflectorWith(api, clock);
    reflector.start();
    await clock.advance(4999);
    assert.equal(api.aborted, 0);
    await clock.advance(1);
    assert.equal(api.aborted, 1);
    assert.deepEqual(restarts, ['silent']);
    assert.deepEqual(api.calls, ['list limit=500', 'watch rv=7', 'watch rv=7']);
    assert.equal(api.maxActive, 1);
    await reflector.stop();
  });
});
