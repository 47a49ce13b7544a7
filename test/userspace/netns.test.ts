// The userspace mode as the real agent in the namespace cluster (test/harness): kproxy runs in the node
// namespace, service addresses go on its own interface, clients are a pod and an outside host. Root only.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import {
  createCluster, EXT_IP, NODE_IP, POD_GATEWAY, runKproxyCleanup, startKproxy, writeManifests,
  type Cluster, type KproxyProcess, type ServiceSpec,
} from '../harness/index.ts';
import { eventually, kernelSuite } from '../kernel/preflight.ts';
import { treeRssKiB } from './helpers.ts';

const HOLD = fileURLToPath(new URL('./scripts/hold-many.ts', import.meta.url));
const IFACE = 'kproxy0';
/** 10k connections held at once, by HOLDERS client processes (a process's descriptor limit is ~20k here). */
const HELD = 10_000;
const HOLDERS = 2;
/** Descriptors this process (and so kproxy, its child) may open. */
function fileLimit(): number {
  const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
  return Number(line?.split(/\s+/)[3] ?? 1024);
}
const names = (answers: Readonly<Record<string, number>>): string[] => Object.keys(answers).sort();

describe('userspace mode in network namespaces', kernelSuite, () => {
  let cluster: Cluster;
  let kproxy: KproxyProcess;
  let dir: string;
  let manifests: string;

  const publish = (specs: readonly ServiceSpec[]): void =>
    writeManifests(manifests, specs, [{ name: 'node1', ip: NODE_IP }]);

  before(async () => {
    cluster = await createCluster({ pods: 3, podPorts: [8080], ipv6: false });
    dir = mkdtempSync(join(tmpdir(), 'kproxy-userspace-'));
    manifests = join(dir, 'cluster.yaml');
    const all = cluster.pods.map((pod) => ({ pod }));
    publish([
      { name: 'web', clusterIP: '10.96.0.10', type: 'NodePort', ports: [{ port: 80, targetPort: 8080, nodePort: 30080 }], endpoints: all },
      { name: 'dns', clusterIP: '10.96.0.11', ports: [{ port: 53, targetPort: 8080, protocol: 'UDP' }], endpoints: all },
      { name: 'empty', clusterIP: '10.96.0.18', ports: [{ port: 80, targetPort: 8080 }], endpoints: [] },
    ]);
    // Node lists only interfaces that are up and running: the relay reads the node's addresses at a sync, so
    // wait for eth0's carrier (its peer outside) before the first one, or NodePorts miss NODE_IP until a resync.
    await eventually(async () => /LOWER_UP/.test((await cluster.exec(cluster.nodeNs, 'ip', ['link', 'show', 'dev', 'eth0'])).stdout),
      'eth0 of the node running', 5000, 20);
    kproxy = startKproxy(cluster, {
      mode: 'userspace', manifests,
      args: ['--min-sync-period', '0s', '--metrics-bind-address', '', '--log-format', 'json'],
    });
    // Ready when the relay answers (does not depend on the health server).
    await eventually(async () => {
      const r = await cluster.tcp(cluster.client.ns, '10.96.0.10', 80, { count: 1, timeoutMs: 500 });
      return Object.keys(r.answers).length === 1;
    }, `the relay answering:\n${kproxy.output()}`, 15_000, 200);
  });

  after(async () => {
    await kproxy?.stop('SIGKILL');
    await cluster?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('ClusterIP from a pod: spread over every endpoint, the backend sees the node', async () => {
    const r = await cluster.tcp(cluster.client.ns, '10.96.0.10', 80, { count: 30, concurrency: 5 });
    assert.deepEqual(r.errors, {});
    assert.deepEqual(names(r.answers), ['pod1', 'pod2', 'pod3']);
    assert.deepEqual(Object.keys(r.peers), [POD_GATEWAY]);
  });

  test('NodePort and ClusterIP from outside; never on 127.0.0.1', async () => {
    const nodePort = await cluster.tcp(cluster.extNs, NODE_IP, 30080, { count: 30, concurrency: 5 });
    assert.deepEqual(nodePort.errors, {});
    assert.deepEqual(names(nodePort.answers), ['pod1', 'pod2', 'pod3']);
    const clusterIP = await cluster.tcp(cluster.extNs, '10.96.0.10', 80, { count: 6 });
    assert.deepEqual(names(clusterIP.answers), ['pod1', 'pod2', 'pod3']);
    const loopback = await cluster.tcp(cluster.nodeNs, '127.0.0.1', 30080, { count: 1 });
    assert.deepEqual(loopback.errors, { ECONNREFUSED: 1 });
    assert.notEqual(EXT_IP, NODE_IP);
  });

  test('UDP ClusterIP from a pod', async () => {
    const r = await cluster.udp(cluster.client.ns, '10.96.0.11', 53, { count: 9 });
    assert.deepEqual(r.errors, {});
    assert.equal(Object.values(r.answers).reduce((a, b) => a + b, 0), 9);
  });

  test('no endpoints: reset at once', async () => {
    const r = await cluster.tcp(cluster.client.ns, '10.96.0.18', 80, { count: 3 });
    assert.deepEqual(r.errors, { ECONNRESET: 3 });
    assert.ok(r.ms < 2000);
  });

  test('service addresses live on kproxy\'s interface (a bridge when the kernel has no dummy)', async () => {
    const link = JSON.parse((await cluster.exec(cluster.nodeNs, 'ip', ['-j', '-d', 'link', 'show', 'dev', IFACE])).stdout) as
      { ifalias?: string; linkinfo?: { info_kind?: string } }[];
    assert.equal(link[0]?.ifalias, 'kproxy-userspace-relay');
    assert.ok(['dummy', 'bridge'].includes(link[0]?.linkinfo?.info_kind ?? ''));
    const addrs = (await cluster.exec(cluster.nodeNs, 'ip', ['-o', '-4', 'addr', 'show', 'dev', IFACE])).stdout;
    for (const ip of ['10.96.0.10', '10.96.0.11', '10.96.0.18']) assert.match(addrs, new RegExp(`${ip.replaceAll('.', '\\.')}/32`));
  });

  test('a node address added after start: the NodePort answers there within seconds, without a resync', async () => {
    // kproxy's periodic resync is 30 s away; only the address watch (addressPollMs, 2 s) can open this in time.
    const LATE_IP = '192.168.100.3';
    const before = await cluster.tcp(cluster.extNs, LATE_IP, 30080, { count: 1, timeoutMs: 300 });
    assert.equal(Object.keys(before.answers).length, 0);
    await cluster.exec(cluster.nodeNs, 'ip', ['addr', 'add', `${LATE_IP}/24`, 'dev', 'eth0']);
    try {
      const added = Date.now();
      await eventually(async () => {
        const r = await cluster.tcp(cluster.extNs, LATE_IP, 30080, { count: 1, timeoutMs: 300 });
        return Object.keys(r.answers).length === 1;
      }, `NodePort on ${LATE_IP}:\n${kproxy.output()}`, 6000, 100);
      process.stdout.write(`# NodePort answered on the new address ${Date.now() - added} ms after it was added\n`);
      const r = await cluster.tcp(cluster.extNs, LATE_IP, 30080, { count: 9, concurrency: 3 });
      assert.deepEqual(r.errors, {});
      assert.deepEqual(names(r.answers), ['pod1', 'pod2', 'pod3']);
    } finally {
      await cluster.exec(cluster.nodeNs, 'ip', ['addr', 'del', `${LATE_IP}/24`, 'dev', 'eth0'], { allowFailure: true });
    }
  });

  test('10k concurrent connections held through the relay; kproxy (all its processes) stays under 300 MiB', async () => {
    // Each relay process holds its share (two descriptors per connection), so no process nears its limit.
    const holders = Array.from({ length: HOLDERS }, () =>
      cluster.spawn(cluster.client.ns, process.execPath, [HOLD, '10.96.0.10', '80', String(HELD / HOLDERS), '250']));
    try {
      const results = await Promise.all(holders.map((holder) => new Promise<string>((resolve, reject) => {
        createInterface({ input: holder.stdout! }).once('line', resolve);
        holder.once('exit', (code) => reject(new Error(`hold-many exited ${code}`)));
      })));
      const parsed = results.map((line) => JSON.parse(line) as { held: number; errors: Record<string, number>; answers: Record<string, number> });
      for (const r of parsed) assert.deepEqual(r.errors, {});
      assert.equal(parsed.reduce((n, r) => n + r.held, 0), HELD);
      const answers: Record<string, number> = {};
      for (const r of parsed) for (const [k, v] of Object.entries(r.answers)) answers[k] = (answers[k] ?? 0) + v;
      assert.deepEqual(names(answers), ['pod1', 'pod2', 'pod3']);
      const rss = treeRssKiB(kproxy.pid);
      const rssKiB = rss.total;
      const mib = (kib: number): string => (kib / 1024).toFixed(0);
      process.stdout.write(`# kproxy RSS with ${HELD} relayed connections held (fd limit ${fileLimit()} per process): ${mib(rssKiB)} MiB = agent ${rss.each.map(mib).join(' + relay ')} MiB; answers ${JSON.stringify(answers)}\n`);
      assert.ok(rssKiB / 1024 <= 300, `RSS ${rssKiB} KiB`);
    } finally {
      for (const holder of holders) {
        holder.stdin?.end();
        holder.kill();
      }
    }
  });

  test('cleanup removes the interface', async () => {
    await kproxy.stop('SIGTERM');
    const result = await runKproxyCleanup(cluster, 'userspace', []);
    assert.equal(result.code, 0, result.output);
    await eventually(async () => {
      const r = await cluster.exec(cluster.nodeNs, 'ip', ['link', 'show', 'dev', IFACE], { allowFailure: true });
      return r.code !== 0;
    }, 'interface removed');
  });
});
