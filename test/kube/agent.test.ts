// The real agent process (bin/kproxy.js --proxy-mode userspace) against a real kube-apiserver + etcd, with
// real traffic. ClusterIPs come from the apiserver's 10.96.0.0/16 and endpoints must not be loopback, so the
// agent runs in the node namespace of the netns harness (test/harness): its userspace relay binds the
// ClusterIPs on its own interface there, and the pods (10.244.1.x) answer their name. The apiserver stays on
// the root namespace's loopback and is bridged to 127.0.0.1:<same port> inside the node namespace over a Unix
// socket, so the agent uses the ordinary kubeconfig of system:kube-proxy (token, only system:node-proxier).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ControlPlane, freePort, kubeTestsDisabled } from './apiserver.ts';
import { eventually, serviceBody, sliceBody } from './harness.ts';
import { createCluster, KPROXY_BIN, nsRun, type Cluster, type ProbeSummary } from '../harness/index.ts';
import type { ChildProcess } from 'node:child_process';

const NODE = 'agent-node';
const NS = 'demo';
// Needs the kube binaries and root (network namespaces): either opt-out skips it.
const skip = kubeTestsDisabled ? 'KPROXY_NO_KUBE_TESTS=1' : process.env.KPROXY_NO_KERNEL_TESTS === '1' ? 'KPROXY_NO_KERNEL_TESTS=1' : false;

interface Answer { status: number; body: string }

describe('the kproxy agent process against a real kube-apiserver (userspace mode, real traffic)', { skip }, () => {
  let plane: ControlPlane;
  let cluster: Cluster;
  let agent: ChildProcess | undefined;
  let agentOutput = '';
  let healthz = '';
  let metricsUrl = '';
  const podIp = (name: string): string => cluster.pods.find((p) => p.name === name)?.ip ?? 'missing';

  /** GET from inside the node namespace (the agent's servers listen on its loopback). */
  async function get(url: string): Promise<Answer> {
    const script = 'fetch(process.argv[1]).then(async (r) => console.log(JSON.stringify({ status: r.status, body: await r.text() })), () => console.log(JSON.stringify({ status: 0, body: "" })))';
    const result = await nsRun(cluster.nodeNs, process.execPath, ['-e', script, url], { timeoutMs: 10_000 });
    return JSON.parse(result.stdout.trim()) as Answer;
  }

  /** `count` new TCP connections from the client pod to ip:port; counts which pod answered. */
  const connections = (ip: string, count: number, timeoutMs = 1000): Promise<ProbeSummary> =>
    cluster.tcp(cluster.client.ns, ip, 80, { count, timeoutMs });

  async function clusterIpOf(name: string): Promise<string> {
    const service = await plane.request('GET', `/api/v1/namespaces/${NS}/services/${name}`);
    return (service.spec as { clusterIP: string }).clusterIP;
  }

  const endpoints = (...pods: string[]): Array<{ addresses: string[]; conditions: { ready: boolean } }> =>
    pods.map((pod) => ({ addresses: [podIp(pod)], conditions: { ready: true } }));

  before(async () => {
    plane = await ControlPlane.start();
    cluster = await createCluster({ pods: 3, podPorts: [8080], ipv6: false });
    await plane.reachFrom((cmd, args) => cluster.spawn(cluster.nodeNs, cmd, args));
    await plane.request('POST', '/api/v1/namespaces', { metadata: { name: NS } });
    await plane.request('POST', '/api/v1/nodes', { metadata: { name: NODE } });
    // Ports are picked free on this machine; the node namespace is fresh, so they are free there too.
    const healthPort = await freePort();
    const metricsPort = await freePort();
    healthz = `http://127.0.0.1:${healthPort}/healthz`;
    metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
    agent = cluster.spawn(cluster.nodeNs, process.execPath, [
      KPROXY_BIN, '--proxy-mode', 'userspace', '--kubeconfig', plane.proxyKubeconfig, '--hostname-override', NODE,
      '--healthz-bind-address', `127.0.0.1:${healthPort}`, '--metrics-bind-address', `127.0.0.1:${metricsPort}`,
      '--log-format', 'json', '--oom-score-adj', '250',
    ]);
    agent.stdout?.on('data', (d: Buffer) => { agentOutput += d.toString(); });
    agent.stderr?.removeAllListeners('data');
    agent.stderr?.on('data', (d: Buffer) => { agentOutput += d.toString(); });
    await eventually('agent healthy', async () => {
      if (agent?.exitCode !== null) throw new Error(`agent exited (${agent?.exitCode}):\n${agentOutput.slice(-2000)}`);
      return (await get(healthz)).status === 200;
    }, 30_000);
  });

  after(async () => {
    if (agent?.pid !== undefined && agent.exitCode === null && agent.signalCode === null) process.kill(agent.pid, 'SIGKILL');
    await cluster?.destroy();
    await plane?.stop();
  });

  test('/healthz is 200 with nodeEligible after the first sync, and a Starting Event was posted', async () => {
    const answer = await get(healthz);
    assert.equal(answer.status, 200);
    assert.equal((JSON.parse(answer.body) as { nodeEligible: boolean }).nodeEligible, true);
    const events = await eventually('Starting event', async () => {
      const list = await plane.request('GET', `/api/v1/events?fieldSelector=involvedObject.name=${NODE}`);
      const items = (list.items as Array<{ reason: string; involvedObject: { kind: string }; source?: { component?: string } }>)
        .filter((e) => e.reason === 'Starting' && e.involvedObject.kind === 'Node');
      return items.length > 0 ? items : undefined;
    });
    assert.equal(events.length, 1);
  });

  test('the agent applies --oom-score-adj to its own process', () => {
    // 250, not kube-proxy's -999: lowering needs CAP_SYS_RESOURCE, which this machine's root lacks (unit-tested).
    assert.equal(readFileSync(`/proc/${agent?.pid ?? 0}/oom_score_adj`, 'utf8').trim(), '250');
  });

  test('a Service and EndpointSlice created through the API become reachable and balanced', async () => {
    await plane.request('POST', `/api/v1/namespaces/${NS}/services`, serviceBody('web'));
    await plane.request('POST', `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices`,
      { ...sliceBody('web-1', 'web', []), endpoints: endpoints('pod1', 'pod2') });
    const ip = await clusterIpOf('web');
    assert.match(ip, /^10\.96\./);
    const summary = await eventually('web answers', async () => {
      const got = await connections(ip, 8);
      return got.answers.pod1 !== undefined && got.answers.pod2 !== undefined ? got : undefined;
    });
    // Round robin over two endpoints: both serve a fair share, nobody else answers.
    assert.deepEqual(Object.keys(summary.answers).sort(), ['pod1', 'pod2']);
    assert.ok((summary.answers.pod1 ?? 0) >= 3 && (summary.answers.pod2 ?? 0) >= 3, JSON.stringify(summary));
  });

  test('endpoints added and removed through the API are followed', async () => {
    const ip = await clusterIpOf('web');
    await plane.request('PATCH', `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices/web-1`, { endpoints: endpoints('pod1', 'pod2', 'pod3') });
    await eventually('pod3 added', async () => (await connections(ip, 6)).answers.pod3 !== undefined);
    await plane.request('PATCH', `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices/web-1`, { endpoints: endpoints('pod2', 'pod3') });
    const after = await eventually('pod1 removed', async () => {
      const got = await connections(ip, 6);
      return got.answers.pod1 === undefined && Object.keys(got.errors).length === 0 ? got : undefined;
    });
    assert.deepEqual(Object.keys(after.answers).sort(), ['pod2', 'pod3']);
  });

  test('a Service of another proxy is ignored; a deleted Service stops answering', async () => {
    await plane.request('POST', `/api/v1/namespaces/${NS}/services`, serviceBody('theirs', {}, { 'service.kubernetes.io/service-proxy-name': 'other' }));
    await plane.request('POST', `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices`, { ...sliceBody('theirs-1', 'theirs', []), endpoints: endpoints('pod1') });
    await plane.request('POST', `/api/v1/namespaces/${NS}/services`, serviceBody('doomed'));
    await plane.request('POST', `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices`, { ...sliceBody('doomed-1', 'doomed', []), endpoints: endpoints('pod3') });
    const doomed = await clusterIpOf('doomed');
    // 'doomed' was created after 'theirs': once it answers, the agent has seen 'theirs' too.
    await eventually('doomed answers', async () => (await connections(doomed, 1)).answers.pod3 === 1);
    const theirs = await connections(await clusterIpOf('theirs'), 2, 500);
    assert.deepEqual(theirs.answers, {}, 'nothing answers on the other proxy\'s service');

    await plane.request('DELETE', `/api/v1/namespaces/${NS}/services/doomed`);
    await eventually('doomed stops answering', async () => Object.keys((await connections(doomed, 2, 500)).answers).length === 0);
  });

  test('apiserver restarted mid-run: traffic keeps flowing, informers restart, changes converge after', async () => {
    const ip = await clusterIpOf('web');
    await plane.stopApiserver();
    try {
      await eventually('stale reported', async () => /kproxy_source_stale 1/.test((await get(metricsUrl)).body), 20_000);
      const during = await connections(ip, 4);
      assert.deepEqual(Object.keys(during.answers).sort(), ['pod2', 'pod3'], `traffic while the apiserver is down: ${JSON.stringify(during)}`);
    } finally {
      await plane.startApiserver();
    }
    await eventually('fresh again', async () => /kproxy_source_stale 0/.test((await get(metricsUrl)).body), 30_000);
    await plane.request('PATCH', `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices/web-1`, { endpoints: endpoints('pod1') });
    await eventually('change after restart applied', async () => {
      const got = await connections(ip, 3);
      return got.answers.pod1 === 3 ? got : undefined;
    }, 20_000);
    const metrics = (await get(metricsUrl)).body;
    assert.match(metrics, /kproxy_informer_restarts_total\{resource="Service"\} [1-9]/);
    assert.match(metrics, /kproxy_informer_restarts_total\{resource="EndpointSlice"\} [1-9]/);
    const last = /kubeproxy_sync_proxy_rules_last_timestamp_seconds\{ip_family="IPv4"\} ([0-9.e+]+)/.exec(metrics);
    assert.ok(last, 'last sync timestamp exported');
    assert.ok(Math.abs(Number(last[1]) - Date.now() / 1000) < 60, `last sync ${last[1]} is recent`);
  });

  test('/healthz flips to 503 when the Node is tainted for deletion and when it is deleted', async () => {
    await plane.request('PATCH', `/api/v1/nodes/${NODE}`, { spec: { taints: [{ key: 'ToBeDeletedByClusterAutoscaler', value: '1', effect: 'NoSchedule' }] } });
    const tainted = await eventually('503 when tainted', async () => { const got = await get(healthz); return got.status === 503 ? got : undefined; });
    assert.equal((JSON.parse(tainted.body) as { nodeEligible: boolean }).nodeEligible, false);
    await plane.request('PATCH', `/api/v1/nodes/${NODE}`, { spec: { taints: null } });
    await eventually('200 again', async () => (await get(healthz)).status === 200);
    await plane.request('DELETE', `/api/v1/nodes/${NODE}`);
    await eventually('503 after deletion', async () => (await get(healthz)).status === 503);
  });

  test('SIGTERM stops the agent within a few seconds', async () => {
    const child = agent;
    assert.ok(child?.pid !== undefined && child.exitCode === null, 'agent still running');
    const started = Date.now();
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    process.kill(child.pid, 'SIGTERM');
    const code = await exited;
    const tookMs = Date.now() - started;
    assert.equal(code, 0, agentOutput.slice(-2000));
    assert.ok(tookMs < 5000, `stopped in ${tookMs} ms`);
    // JSON logs: every line parses.
    for (const line of agentOutput.split('\n').filter((l) => l.trim() !== '')) assert.doesNotThrow(() => JSON.parse(line), line);
  });
});
