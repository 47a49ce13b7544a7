// The chart against a real kube-apiserver (RBAC authorizer on, test/kube/apiserver.ts): the rendered objects of
// every mode are created with strict server-side validation, and kproxy runs from the rendered ConfigMap and
// arguments with a token of the chart's ServiceAccount, in the node namespace of the netns harness (iptables mode,
// real traffic). The apiserver's audit log then shows that kproxy used exactly the rights the chart grants (no
// refusal, no unused grant), and the token is refused everything else.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, fetch } from 'undici';
import { ControlPlane, kubeTestsDisabled } from '../kube/apiserver.ts';
import { eventually, serviceBody, sliceBody } from '../kube/harness.ts';
import { createCluster, KPROXY_BIN, KPROXY_NODE_ENV, KPROXY_NODE_FLAGS, type Cluster } from '../harness/index.ts';
import { run, stopChildProcess } from '../harness/run.ts';
import { expandArgs, kproxyContainer, only, renderChart, type KubeObject } from './helm.ts';
import { auditArgs, createObjects, podServiceAccount, readAudit, serviceAccountToken, writePodFiles, type AuditEntry } from './install.ts';

const skip = kubeTestsDisabled ? 'KPROXY_NO_KUBE_TESTS=1' : process.env.KPROXY_NO_KERNEL_TESTS === '1' ? 'KPROXY_NO_KERNEL_TESTS=1' : false;
const NODE = 'node-a';
const RELEASE = 'kproxy';
const SERVICE_ACCOUNT_USER = 'system:serviceaccount:kube-system:kproxy';

interface Rule { readonly apiGroups: readonly string[]; readonly resources: readonly string[]; readonly verbs: readonly string[] }

/** "verb group/resource [in namespace]" for every right the chart's ClusterRole and Role grant. */
function granted(objects: readonly KubeObject[]): string[] {
  const keys = (object: KubeObject, scope: string): string[] => (object.rules as readonly Rule[]).flatMap((rule) =>
    rule.apiGroups.flatMap((group) => rule.resources.flatMap((resource) => rule.verbs.map((verb) => `${verb} ${group}/${resource}${scope}`))));
  const role = only(objects, 'Role');
  return [...keys(only(objects, 'ClusterRole'), ''), ...keys(role, ` in ${role.metadata.namespace ?? ''}`)].sort();
}

/** The same keys for what the audit log shows kproxy did (with the namespace where the grant is a Role: events). */
function used(entries: readonly AuditEntry[]): string[] {
  const keys = entries.map((e) => `${e.verb} ${e.apiGroup}/${e.resource}${e.resource === 'events' ? ` in ${e.namespace ?? '(all)'}` : ''}`);
  return [...new Set(keys)].sort();
}

describe('the chart on a real kube-apiserver; kproxy runs as its ServiceAccount', { skip }, () => {
  let plane: ControlPlane;
  let cluster: Cluster;
  let auditDir: string;
  let podDir: string;
  let objects: KubeObject[];
  let token = '';

  before(async () => {
    auditDir = mkdtempSync(join(tmpdir(), 'kproxy-audit-'));
    podDir = mkdtempSync(join(tmpdir(), 'kproxy-pod-'));
    // --allow-privileged as kubeadm sets it: the ipvs mode's pods are privileged.
    plane = await ControlPlane.start({ apiserverArgs: [...auditArgs(auditDir, [SERVICE_ACCOUNT_USER]), '--allow-privileged=true'] });
    cluster = await createCluster({ pods: 2, podPorts: [8080], ipv6: false });
    await plane.reachFrom((cmd, args) => cluster.spawn(cluster.nodeNs, cmd, args));
  });

  after(async () => {
    await cluster?.destroy();
    await plane?.stop();
    for (const dir of [auditDir, podDir]) if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the rendered objects of every mode are accepted by the apiserver (strict validation, admission)', async () => {
    const port = Number(new URL(plane.server).port);
    objects = await renderChart({ apiServer: { host: '127.0.0.1', port }, config: { clusterCIDR: '10.244.0.0/16' } }, { release: RELEASE });
    assert.equal(podServiceAccount(objects).user, SERVICE_ACCOUNT_USER);
    await createObjects(plane, objects);
    for (const mode of ['nftables', 'ipvs', 'userspace']) {
      await createObjects(plane, await renderChart({ proxyMode: mode }, { release: `kp-${mode}` }));
    }
    // The ServiceMonitor needs the Prometheus Operator's CRD; a stand-in that accepts any spec, so the apiserver
    // checks the envelope (group, version, kind, metadata) and the metrics Service for real.
    await plane.request('POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', {
      apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', metadata: { name: 'servicemonitors.monitoring.coreos.com' },
      spec: {
        group: 'monitoring.coreos.com', scope: 'Namespaced', names: { plural: 'servicemonitors', singular: 'servicemonitor', kind: 'ServiceMonitor' },
        versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } }],
      },
    });
    const monitored = await renderChart({ serviceMonitor: { enabled: true }, config: { metricsBindAddress: '0.0.0.0:10249' } }, { release: 'kp-monitored' });
    await eventually('ServiceMonitor kind served', async () => {
      try { await createObjects(plane, monitored); return true; } catch (error) { if (/no matches for kind/.test(String(error))) return false; throw error; }
    }, 30_000);
    const daemonSets = await plane.request('GET', '/apis/apps/v1/namespaces/kube-system/daemonsets');
    assert.deepEqual((daemonSets.items as KubeObject[]).map((d) => d.metadata.name).sort(),
      ['kp-ipvs-kproxy', 'kp-monitored-kproxy', 'kp-nftables-kproxy', 'kp-userspace-kproxy', 'kproxy']);
    // And a value the apiserver itself refuses (not the schema): two releases cannot own one ClusterRole name.
    await assert.rejects(createObjects(plane, objects), /already exists/);
  });

  test('kproxy runs from the rendered ConfigMap and args with the ServiceAccount\'s token, and serves traffic', async () => {
    assert.ok(objects, 'the first test created the objects');
    token = await serviceAccountToken(plane, 'kube-system', 'kproxy');
    const files = writePodFiles(podDir, plane, objects, token);
    await plane.request('POST', '/api/v1/nodes', { metadata: { name: NODE } });
    await plane.request('POST', '/api/v1/namespaces', { metadata: { name: 'web' } });
    await plane.request('POST', '/api/v1/namespaces/web/services', serviceBody('hello'));
    await plane.request('POST', '/apis/discovery.k8s.io/v1/namespaces/web/endpointslices',
      { ...sliceBody('hello-1', 'hello', []), endpoints: cluster.pods.map((pod) => ({ addresses: [pod.ip], conditions: { ready: true } })) });

    // The pod's command line and config; only the credentials differ (a kubeconfig holding the token, named in the
    // config file, instead of the token mounted where the kubelet puts it: test/image runs it that way).
    const args = expandArgs(kproxyContainer(objects), NODE).map((arg) => arg.replace(/^--config=.*/, `--config=${files.processConfigFile}`));
    const agent: ChildProcess = cluster.spawn(cluster.nodeNs, process.execPath, [...KPROXY_NODE_FLAGS, KPROXY_BIN, ...args], KPROXY_NODE_ENV);
    let output = '';
    agent.stderr?.removeAllListeners('data');
    agent.stderr?.on('data', (d: Buffer) => { output += d.toString(); });
    const exited = new Promise<number | null>((resolve) => agent.once('exit', (code) => resolve(code)));
    try {
      await eventually('kproxy healthy', async () => {
        if (agent.exitCode !== null) throw new Error(`kproxy exited ${agent.exitCode}:\n${output.slice(-1500)}`);
        return (await cluster.httpStatus(cluster.nodeNs, 'http://127.0.0.1:10256/healthz')) === 200;
      }, 30_000);
      assert.match(output, /"msg":"Using iptables proxier"/);
      const service = await plane.request('GET', '/api/v1/namespaces/web/services/hello');
      const clusterIP = (service.spec as { clusterIP: string }).clusterIP;
      await eventually('traffic through the ClusterIP', async () => {
        const got = await cluster.tcp(cluster.client.ns, clusterIP, 80, { count: 10, timeoutMs: 1000 });
        return got.answers.pod1 && got.answers.pod2 && Object.keys(got.errors).length === 0;
      });
      await eventually('the Starting event on the Node', async () => {
        const list = await plane.request('GET', `/api/v1/namespaces/default/events?fieldSelector=involvedObject.name=${NODE}`);
        return (list.items as Array<{ reason: string }>).some((e) => e.reason === 'Starting');
      });
      // What a person runs on the node: plan and trace from the cluster, with the same config and credentials.
      const plan = await run(process.execPath, [KPROXY_BIN, 'plan', `--config=${files.processConfigFile}`, `--hostname-override=${NODE}`], { timeoutMs: 60_000 });
      assert.match(plan.stdout, new RegExp(`web/hello:http +TCP +${clusterIP.replaceAll('.', '\\.')}:80 .* ${cluster.pods.map((p) => `${p.ip}:8080`).join(' ')}`), plan.stdout);
      const trace = await run(process.execPath, [KPROXY_BIN, 'trace', `--config=${files.processConfigFile}`, `--hostname-override=${NODE}`,
        '--src', cluster.client.ip, '--dst', `${clusterIP}:80`], { timeoutMs: 60_000 });
      assert.match(trace.stdout, new RegExp(`^TCP ${cluster.client.ip} -> ${clusterIP}:80 from pod \\(iptables mode\\): forwarded to one of 2 endpoints`), trace.stdout);
    } finally {
      assert.equal(await stopChildProcess(agent, exited, 'SIGTERM', 10_000), 0, output.slice(-1500));
    }
    assert.doesNotMatch(output, /forbidden|403/i, 'kproxy was refused something');

    // Every request kproxy made, from the apiserver's side: none refused, and exactly the granted rights used.
    const entries = await eventually('audit entries', () => {
      const read = readAudit(auditDir, SERVICE_ACCOUNT_USER);
      return read.some((e) => e.resource === 'events') ? read : undefined;
    });
    const refused = entries.filter((e) => e.code !== undefined && e.code >= 400);
    assert.deepEqual(refused, [], 'requests of kproxy the apiserver refused');
    assert.deepEqual(used(entries), granted(objects));
  });

  test('the ServiceAccount\'s token is refused what the chart does not grant', async () => {
    assert.ok(token, 'the previous test got a token');
    const agent = new Agent({ connect: { ca: readFileSync(plane.caFile()) } });
    const status = async (method: string, path: string, body?: object): Promise<number> => {
      const response = await fetch(`${plane.server}${path}`, {
        method, dispatcher: agent,
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      await response.body?.cancel();
      return response.status;
    };
    try {
      // A right it has, as the control: the token is valid and RBAC answers.
      assert.equal(await status('GET', '/api/v1/services?limit=1'), 200);
      const refusals: Array<[string, string, object?]> = [
        ['GET', '/api/v1/namespaces/kube-system/secrets'],
        ['GET', '/api/v1/pods'],
        ['GET', `/api/v1/nodes/${NODE}`],
        ['GET', '/api/v1/endpoints'],
        ['PATCH', '/api/v1/namespaces/web/services/hello', {}],
        ['POST', '/apis/discovery.k8s.io/v1/namespaces/web/endpointslices', sliceBody('x', 'hello', [])],
        ['POST', '/api/v1/namespaces/kube-system/events', { metadata: { name: 'x' }, involvedObject: { kind: 'Node', name: NODE } }],
        ['GET', '/api/v1/namespaces/default/events'],
        ['POST', '/apis/events.k8s.io/v1/namespaces/default/events', { metadata: { name: 'x' } }],
        ['GET', '/apis/apps/v1/daemonsets'],
      ];
      for (const [method, path, body] of refusals) assert.equal(await status(method, path, body), 403, `${method} ${path}`);
    } finally {
      await agent.close();
    }
  });
});
