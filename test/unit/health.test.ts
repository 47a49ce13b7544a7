import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../src/sync/fake-clock.ts';
import { ProxyHealth } from '../../src/health/proxy-health.ts';
import { nodeEligibilityTap } from '../../src/health/node-tap.ts';
import { healthCheckServices, serviceHealthResponse, ServiceHealthServer } from '../../src/health/service-health.ts';
import { ignoreLaterErrors, listen, parseBindAddress } from '../../src/health/http.ts';
import { EventEmitter } from 'node:events';
import { KproxyError } from '../../src/errors.ts';
import { startHealthServer } from '../../src/health/server.ts';
import { silentLogger } from '../../src/log.ts';
import type { DesiredState, Endpoint, ServicePortPlan } from '../../src/model/types.ts';
import type { SyncSucceeded } from '../../src/model/observe.ts';
import { withRoutes } from '../harness/state.ts';

const TIMEOUT = 60_000;

type Step =
  | { queue: number } // changeQueued at now + offset
  | { sync: true; changeArrivedDuringSync?: true }
  | { advance: number }
  | { eligible: boolean };

const cases: Array<{ name: string; steps: Step[]; healthz: number; livez: number }> = [
  // kproxy's addition: /healthz waits for the first applied sync; /livez is upstream's "healthy while starting".
  { name: 'starting up: nothing applied yet', steps: [], healthz: 503, livez: 200 },
  { name: 'starting up with a change queued long ago (not late before the first sync)', steps: [{ queue: 0 }, { advance: 10 * TIMEOUT }], healthz: 503, livez: 200 },
  { name: 'first sync applied', steps: [{ queue: 0 }, { sync: true }], healthz: 200, livez: 200 },
  { name: 'synced, nothing pending', steps: [{ sync: true }, { advance: 10 * TIMEOUT }], healthz: 200, livez: 200 },
  { name: 'change pending, not late yet', steps: [{ sync: true }, { queue: 0 }, { advance: TIMEOUT - 1 }], healthz: 200, livez: 200 },
  { name: 'change pending for the whole timeout', steps: [{ sync: true }, { queue: 0 }, { advance: TIMEOUT }], healthz: 503, livez: 503 },
  { name: 'late change then applied', steps: [{ sync: true }, { queue: 0 }, { advance: TIMEOUT }, { sync: true }], healthz: 200, livez: 200 },
  { name: 'a change that arrived during a sync stays pending after it', steps: [{ sync: true }, { queue: 0 }, { sync: true, changeArrivedDuringSync: true }, { advance: TIMEOUT }], healthz: 503, livez: 503 },
  { name: 'oldest pending change counts', steps: [{ sync: true }, { queue: 0 }, { advance: TIMEOUT / 2 }, { queue: 0 }, { advance: TIMEOUT / 2 }], healthz: 503, livez: 503 },
  { name: 'node not eligible: healthz only', steps: [{ sync: true }, { eligible: false }], healthz: 503, livez: 200 },
  { name: 'node eligible again', steps: [{ sync: true }, { eligible: false }, { eligible: true }], healthz: 200, livez: 200 },
];

function emptyState(): DesiredState {
  const family = (f: 'IPv4' | 'IPv6') => ({ family: f, services: [], nodePortAddresses: 'all' as const, localDetector: { kind: 'None' as const }, nodeIPs: [] });
  return { node: { name: 'n', shuttingDown: false }, settings: { masqueradeAll: false, masqueradeBit: 14, conntrackTcpLiberal: false }, families: { IPv4: family('IPv4'), IPv6: family('IPv6') } };
}

function succeeded(clock: FakeClock, state = emptyState()): SyncSucceeded {
  return { full: true, startedAt: clock.now(), finishedAt: clock.now(), state, report: { full: true } };
}

describe('ProxyHealth', () => {
  for (const c of cases) {
    test(c.name, async () => {
      const clock = new FakeClock();
      const health = new ProxyHealth({ clock, healthTimeoutMs: TIMEOUT, families: ['IPv4'] });
      for (const step of c.steps) {
        if ('queue' in step) health.changeQueued(clock.now() + step.queue);
        else if ('sync' in step) health.syncSucceeded({ ...succeeded(clock), ...(step.changeArrivedDuringSync && { pendingSince: clock.now() }) });
        else if ('advance' in step) await clock.advance(step.advance);
        else health.setNodeEligible(step.eligible);
      }
      assert.equal(health.healthz().status, c.healthz);
      assert.equal(health.livez().status, c.livez);
    });
  }

  test('JSON has upstream fields: lastUpdated, currentTime, nodeEligible (healthz only), status per family', async () => {
    const clock = new FakeClock(Date.UTC(2025, 0, 2, 3, 4, 5));
    const health = new ProxyHealth({ clock, healthTimeoutMs: TIMEOUT, families: ['IPv4', 'IPv6'] });
    const before = JSON.parse(health.livez().body) as Record<string, unknown>;
    assert.equal(before.currentTime, '2025-01-02T03:04:05.000Z');
    assert.equal('nodeEligible' in before, false);
    assert.equal('status' in before, false);
    const starting = JSON.parse(health.healthz().body) as Record<string, unknown>;
    assert.equal(starting.synced, false);
    assert.equal(starting.healthy, true); // the proxier itself is healthy while starting, as upstream
    health.syncSucceeded(succeeded(clock));
    health.changeQueued(clock.now());
    await clock.advance(TIMEOUT);
    const late = JSON.parse(health.healthz().body) as Record<string, unknown>;
    assert.equal(late.lastUpdated, '2025-01-02T03:04:05.000Z'); // the last applied sync, not "now"
    assert.equal(late.currentTime, '2025-01-02T03:05:05.000Z');
    assert.equal(late.nodeEligible, true);
    assert.equal(late.synced, true);
    assert.equal(late.healthy, false);
    assert.deepEqual(late.status, { IPv4: { lastUpdated: '2025-01-02T03:04:05.000Z', healthy: false }, IPv6: { lastUpdated: '2025-01-02T03:04:05.000Z', healthy: false } });
    health.syncSucceeded(succeeded(clock));
    const ok = JSON.parse(health.healthz().body) as Record<string, unknown>;
    assert.equal(ok.lastUpdated, ok.currentTime); // healthy answers report "now", as upstream
  });

  test('stale source is reported in the JSON but does not fail the check', () => {
    const clock = new FakeClock();
    const health = new ProxyHealth({ clock, healthTimeoutMs: TIMEOUT });
    const tap = nodeEligibilityTap(health);
    health.syncSucceeded(succeeded(clock));
    tap.stale?.(true, 'Service: connection refused');
    const answer = health.healthz();
    assert.equal(answer.status, 200);
    assert.equal(JSON.parse(answer.body).sourceStale, true);
    assert.equal(JSON.parse(answer.body).sourceStaleReason, 'Service: connection refused');
  });
});

describe('node eligibility tap', () => {
  const node = (extra: Record<string, unknown> = {}, spec: Record<string, unknown> = {}) => ({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n', resourceVersion: '1', ...extra }, spec });
  const table: Array<{ name: string; run: (tap: ReturnType<typeof nodeEligibilityTap>) => void; eligible: boolean }> = [
    { name: 'no node ever seen: eligible (start-up)', run: (t) => t.replaceAll?.('Node', []), eligible: true },
    { name: 'plain node', run: (t) => t.upsert?.('Node', node()), eligible: true },
    { name: 'deletionTimestamp', run: (t) => t.upsert?.('Node', node({ deletionTimestamp: '2025-01-01T00:00:00Z' })), eligible: false },
    { name: 'autoscaler taint', run: (t) => t.upsert?.('Node', node({}, { taints: [{ key: 'ToBeDeletedByClusterAutoscaler', effect: 'NoSchedule' }] })), eligible: false },
    { name: 'other taint', run: (t) => t.upsert?.('Node', node({}, { taints: [{ key: 'x', effect: 'NoSchedule' }] })), eligible: true },
    { name: 'removed after being seen', run: (t) => { t.upsert?.('Node', node()); t.remove?.('Node', undefined, 'n'); }, eligible: false },
    { name: 'relisted without it', run: (t) => { t.replaceAll?.('Node', [node()]); t.replaceAll?.('Node', []); }, eligible: false },
    { name: 'Service events are ignored', run: (t) => t.remove?.('Service', 'a', 'b'), eligible: true },
  ];
  for (const c of table) {
    test(c.name, () => {
      const health = new ProxyHealth({ clock: new FakeClock(), healthTimeoutMs: TIMEOUT });
      c.run(nodeEligibilityTap(health));
      assert.equal(health.nodeEligible, c.eligible);
    });
  }
});

const endpoint = (ip: string, local: boolean, ready = true): Endpoint => ({ ip, port: 80, local, ready, serving: ready, terminating: false });

function plan(name: string, options: Partial<ServicePortPlan>): ServicePortPlan {
  return withRoutes({
    key: `ns/${name}:p`, namespace: 'ns', name, portName: 'p', protocol: 'TCP', family: 'IPv4', port: 80, clusterIP: '10.96.0.1',
    frontends: [{ kind: 'NodePort', port: 30080 }], externalPolicyLocal: true, internalPolicyLocal: false, sourceRanges: [],
    clusterEndpoints: [], localEndpoints: [], allEndpoints: [], hasEndpoints: true, ...options,
  });
}

describe('health-check node ports', () => {
  test('healthCheckServices counts distinct ready local endpoints, ETP Local only', () => {
    const state = emptyState();
    const services = [
      plan('a', { healthCheckNodePort: 32001, allEndpoints: [endpoint('10.0.0.1', true), endpoint('10.0.0.1', true), endpoint('10.0.0.2', false), endpoint('10.0.0.3', true, false)] }),
      plan('b', { healthCheckNodePort: 32002, allEndpoints: [] }),
      plan('c', { healthCheckNodePort: 32003, externalPolicyLocal: false }),
      plan('d', {}),
    ];
    const wanted = healthCheckServices({ ...state, families: { ...state.families, IPv4: { ...state.families.IPv4, services } } });
    assert.deepEqual([...wanted.keys()], [32001, 32002]);
    assert.equal(wanted.get(32001)?.localEndpoints, 1);
    assert.equal(wanted.get(32002)?.localEndpoints, 0);
    assert.deepEqual(wanted.get(32001)?.hosts, ['::']);
  });

  test('answers: 200 only with local endpoints and a healthy proxy', () => {
    const table = [
      { local: 2, healthy: true, status: 200 }, { local: 0, healthy: true, status: 503 }, { local: 2, healthy: false, status: 503 },
    ];
    for (const row of table) {
      const answer = serviceHealthResponse({ namespace: 'ns', name: 's', localEndpoints: row.local }, row.healthy);
      assert.equal(answer.status, row.status);
      assert.deepEqual(JSON.parse(answer.body), { service: { namespace: 'ns', name: 's' }, localEndpoints: row.local, serviceProxyHealthy: row.healthy });
      assert.equal(answer.weight, String(row.local));
    }
  });

  test('servers open and close as the state changes', async () => {
    const server = new ServiceHealthServer({ log: silentLogger(), proxyHealthy: () => true });
    const clock = new FakeClock();
    const base = emptyState();
    const withServices = (services: ServicePortPlan[]): DesiredState => ({ ...base, families: { ...base.families, IPv4: { ...base.families.IPv4, nodePortAddresses: ['127.0.0.1'], services } } });
    const { listen } = await import('../../src/health/http.ts');
    const probe = await listen({ host: '127.0.0.1', port: 0 }, () => {}, 'probe');
    const port = probe.port;
    await probe.close();
    try {
      server.syncSucceeded(succeeded(clock, withServices([plan('a', { healthCheckNodePort: port, allEndpoints: [endpoint('10.0.0.1', true)] })])));
      await server.settled();
      assert.deepEqual(server.ports(), [port]);
      let response = await fetch(`http://127.0.0.1:${port}/`);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get('x-load-balancing-endpoint-weight'), '1');
      assert.equal((await response.json() as { localEndpoints: number }).localEndpoints, 1);
      server.syncSucceeded(succeeded(clock, withServices([plan('a', { healthCheckNodePort: port, allEndpoints: [endpoint('10.0.0.1', false)] })])));
      await server.settled();
      response = await fetch(`http://127.0.0.1:${port}/`);
      assert.equal(response.status, 503);
      await response.body?.cancel();
      server.syncSucceeded(succeeded(clock, withServices([])));
      await server.settled();
      assert.deepEqual(server.ports(), []);
      await assert.rejects(fetch(`http://127.0.0.1:${port}/`));
    } finally {
      await server.close();
    }
  });
});

describe('health HTTP server', () => {
  test('bind addresses', () => {
    assert.deepEqual(parseBindAddress('0.0.0.0:10256', 'f'), { host: '0.0.0.0', port: 10256 });
    assert.deepEqual(parseBindAddress('[::1]:10256', 'f'), { host: '::1', port: 10256 });
    assert.deepEqual(parseBindAddress(':10256', 'f'), { host: '::', port: 10256 });
    assert.deepEqual(parseBindAddress('10256', 'f'), { host: '::', port: 10256 });
    assert.throws(() => parseBindAddress('localhost', '--healthz-bind-address'), /--healthz-bind-address "localhost": expected/);
    assert.throws(() => parseBindAddress('1.2.3.4:70000', 'f'), /expected/);
  });

  test('a port in use is a one-line KP_ERR_LISTEN_FAILED; errors after listening do not throw', async () => {
    const first = await listen({ host: '127.0.0.1', port: 0 }, () => {}, 'first');
    try {
      await assert.rejects(listen({ host: '127.0.0.1', port: first.port }, () => {}, 'second'), (err: unknown) => {
        assert.ok(err instanceof KproxyError);
        assert.equal(err.code, 'KP_ERR_LISTEN_FAILED');
        assert.equal(err.oneLine(), `second: cannot listen on 127.0.0.1:${first.port}: EADDRINUSE (KP_ERR_LISTEN_FAILED)`);
        return true;
      });
    } finally {
      await first.close();
    }
    // An 'error' event without a listener throws (and would end the agent); after ignoreLaterErrors it does not.
    const server = new EventEmitter();
    server.once('error', () => undefined);
    ignoreLaterErrors(server);
    for (let i = 0; i < 2; i++) server.emit('error', Object.assign(new Error('accept EMFILE'), { code: 'EMFILE' }));
  });

  test('serves /healthz and /livez with status, JSON and counts answers', async () => {
    const clock = new FakeClock();
    const health = new ProxyHealth({ clock, healthTimeoutMs: TIMEOUT });
    const answers: string[] = [];
    const server = await startHealthServer({ bindAddress: '127.0.0.1:0', health, onAnswer: (path, code) => answers.push(`${path} ${code}`) });
    try {
      health.syncSucceeded(succeeded(clock));
      health.setNodeEligible(false);
      const healthz = await fetch(`http://127.0.0.1:${server.port}/healthz`);
      assert.equal(healthz.status, 503);
      assert.equal(healthz.headers.get('content-type'), 'application/json');
      assert.equal((await healthz.json() as { nodeEligible: boolean }).nodeEligible, false);
      const livez = await fetch(`http://127.0.0.1:${server.port}/livez`);
      assert.equal(livez.status, 200);
      await livez.body?.cancel();
      const other = await fetch(`http://127.0.0.1:${server.port}/other`);
      assert.equal(other.status, 404);
      await other.body?.cancel();
      assert.deepEqual(answers, ['healthz 503', 'livez 200']);
    } finally {
      await server.close();
    }
  });
});
