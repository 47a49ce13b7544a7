// The nftables mode on a real kernel, through real sockets, in a namespace cluster (test/harness): the real agent
// in the node namespace. The iptables suite's scenarios, plus what is this mode's own: updates under constant
// connection load break nothing, another program's table in the namespace is left alone, drift is repaired.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createCluster, EXT_IP, NODE_IP, POD_GATEWAY, runKproxyCleanup, startKproxy, writeManifests,
  type Cluster, type KproxyProcess, type ProbeSummary, type ServiceSpec,
} from '../harness/index.ts';
import { eventually, kernelSuite, requireKernelTools } from './preflight.ts';

const PORT = 8080;
const total = (counts: Readonly<Record<string, number>>): number => Object.values(counts).reduce((a, b) => a + b, 0);
const backends = (summary: ProbeSummary): string[] => Object.keys(summary.answers).sort();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Another program's table: base chains at kproxy's hooks and priorities, a set, a map, rules that count. */
const FOREIGN_TABLE = `table ip foreign {
  set blocked { type ipv4_addr; elements = { 192.0.2.1, 192.0.2.2 } }
  map ports { type inet_service : verdict; elements = { 9999 : drop } }
  chain pre { type nat hook prerouting priority -100; policy accept; ip saddr @blocked counter drop; tcp dport vmap @ports; }
  chain out { type filter hook output priority 0; policy accept; counter; }
  chain post { type nat hook postrouting priority 100; policy accept; counter; }
}
`;

describe('nftables mode on a real kernel', kernelSuite, () => {
  let cluster: Cluster;
  let proxy: KproxyProcess | undefined;
  let dir: string;
  let manifests: string;
  const services = new Map<string, ServiceSpec>();

  const write = (): void => writeManifests(manifests, [...services.values()], [{ name: 'node1', ip: NODE_IP }]);
  const publish = (...specs: ServiceSpec[]): void => {
    for (const spec of specs) services.set(spec.name, spec);
    write();
  };
  const withdraw = (name: string): void => {
    services.delete(name);
    write();
  };
  const pod = (i: number) => cluster.pods[i]!;
  const start = async (): Promise<void> => {
    proxy = startKproxy(cluster, {
      mode: 'nftables', manifests,
      // A full resync every second: the drift test waits for one.
      args: ['--min-sync-period', '0s', '--iptables-sync-period', '1s', '--metrics-bind-address', '', '--log-format', 'json'],
    });
    await proxy.waitHealthy(20_000);
  };
  const nft = async (...args: string[]): Promise<string> => (await cluster.exec(cluster.nodeNs, 'nft', args)).stdout;
  // Without counters (-s): the foreign rules count packets, which is their business.
  const foreignListing = (): Promise<string> => nft('-s', 'list', 'table', 'ip', 'foreign');

  before(async () => {
    requireKernelTools(['nft', 'conntrack']);
    cluster = await createCluster({ pods: 3, podPorts: [PORT] });
    dir = mkdtempSync(join(tmpdir(), 'kproxy-nft-'));
    manifests = join(dir, 'cluster.yaml');
    await cluster.exec(cluster.nodeNs, 'nft', ['-f', '-'], { input: FOREIGN_TABLE });
    const all = cluster.pods.map((p) => ({ pod: p }));
    for (const spec of [
      { name: 'web', clusterIP: '10.96.0.10', clusterIP6: 'fd00:96::10', type: 'NodePort', ports: [{ port: 80, targetPort: PORT, nodePort: 30080 }], endpoints: all },
      { name: 'hairpin', clusterIP: '10.96.0.12', ports: [{ port: 80, targetPort: PORT }], endpoints: [{ pod: pod(0) }] },
      { name: 'sticky', clusterIP: '10.96.0.13', ports: [{ port: 80, targetPort: PORT }], endpoints: all, affinityTimeoutSeconds: 1 },
      { name: 'empty', clusterIP: '10.96.0.14', ports: [{ port: 80, targetPort: PORT }], endpoints: [] },
      {
        name: 'local', clusterIP: '10.96.0.15', type: 'NodePort', externalTrafficPolicy: 'Local',
        ports: [{ port: 80, targetPort: PORT, nodePort: 30082 }], endpoints: [{ pod: pod(1), node: 'node2' }],
      },
      {
        name: 'itp', clusterIP: '10.96.0.16', internalTrafficPolicy: 'Local', ports: [{ port: 80, targetPort: PORT }],
        endpoints: [{ pod: pod(0) }, { pod: pod(1), node: 'node2' }, { pod: pod(2), node: 'node2' }],
      },
      { name: 'dns', clusterIP: '10.96.0.20', ports: [{ port: 53, targetPort: PORT, protocol: 'UDP' }], endpoints: [{ pod: pod(0) }] },
    ] satisfies ServiceSpec[]) services.set(spec.name, spec);
    write();
    const started = Date.now();
    await start();
    const startupMs = Date.now() - started;
    process.stderr.write(`# nftables: agent healthy ${startupMs} ms after start\n`);
    // ≈ 1 s on a quiet machine; the bound leaves room for a loaded CI machine.
    assert.ok(startupMs < 8000, `feature check, first sync and /healthz 200 within 8 s (took ${startupMs} ms)`);
  });

  after(async () => {
    await proxy?.stop('SIGKILL');
    await cluster?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('ClusterIP reaches every endpoint, from a pod and from the node, over IPv4 and IPv6', async () => {
    const fromPod = await cluster.tcp(cluster.client.ns, '10.96.0.10', 80, { count: 30, concurrency: 3 });
    assert.deepEqual(fromPod.errors, {});
    assert.deepEqual(backends(fromPod), ['pod1', 'pod2', 'pod3']);
    assert.deepEqual(Object.keys(fromPod.peers), [cluster.client.ip], 'pod-to-service traffic is not masqueraded');
    const fromNode = await cluster.tcp(cluster.nodeNs, '10.96.0.10', 80, { count: 30, concurrency: 3 });
    assert.deepEqual(fromNode.errors, {});
    assert.deepEqual(backends(fromNode), ['pod1', 'pod2', 'pod3']);
    const v6 = await cluster.tcp(cluster.client.ns, 'fd00:96::10', 80, { count: 30, concurrency: 3 });
    assert.deepEqual(v6.errors, {});
    assert.deepEqual(backends(v6), ['pod1', 'pod2', 'pod3']);
    assert.deepEqual(Object.keys(v6.peers), [cluster.client.ip6]);
  });

  test('NodePort from outside reaches every endpoint, masqueraded', async () => {
    const summary = await cluster.tcp(cluster.extNs, NODE_IP, 30080, { count: 30, concurrency: 3 });
    assert.deepEqual(summary.errors, {});
    assert.deepEqual(backends(summary), ['pod1', 'pod2', 'pod3']);
    assert.deepEqual(Object.keys(summary.peers), [POD_GATEWAY], 'policy Cluster SNATs external traffic');
  });

  test('hairpin: a pod reaches itself through its own service', async () => {
    const summary = await cluster.tcp(pod(0).ns, '10.96.0.12', 80, { count: 5 });
    assert.deepEqual(summary.answers, { pod1: 5 });
    assert.deepEqual(Object.keys(summary.peers), [POD_GATEWAY], 'hairpin traffic is masqueraded');
  });

  test('session affinity sticks, then expires after its timeout', async () => {
    const first = await cluster.tcp(cluster.client.ns, '10.96.0.13', 80, { count: 15 });
    assert.equal(backends(first).length, 1, `one backend while sticky: ${JSON.stringify(first.answers)}`);
    const sticky = backends(first)[0];
    let other: string | undefined;
    for (let attempt = 0; attempt < 10 && other === undefined; attempt++) {
      await sleep(1200);
      const next = await cluster.tcp(cluster.client.ns, '10.96.0.13', 80, { count: 1 });
      other = backends(next).find((b) => b !== sticky);
    }
    assert.ok(other, `affinity to ${sticky} never expired`);
  });

  test('a service without endpoints is refused at once', async () => {
    for (const ns of [cluster.client.ns, cluster.nodeNs]) {
      const summary = await cluster.tcp(ns, '10.96.0.14', 80, { count: 3, timeoutMs: 2000 });
      assert.deepEqual(summary.errors, { ECONNREFUSED: 3 });
      assert.ok(summary.ms < 1000, `refused quickly (${summary.ms} ms)`);
    }
  });

  test('externalTrafficPolicy Local: no local endpoint, no answer; a local one answers with the client address', async () => {
    const none = await cluster.tcp(cluster.extNs, NODE_IP, 30082, { count: 1, timeoutMs: 500 });
    assert.equal(total(none.answers), 0, `no answer without a local endpoint: ${JSON.stringify(none)}`);
    const internal = await cluster.tcp(cluster.client.ns, '10.96.0.15', 80, { count: 3 });
    assert.deepEqual(internal.answers, { pod2: 3 }, 'cluster traffic still reaches the remote endpoint');
    publish({ ...services.get('local')!, endpoints: [{ pod: pod(1), node: 'node2' }, { pod: pod(0) }] });
    const local = await eventually(async () => {
      const summary = await cluster.tcp(cluster.extNs, NODE_IP, 30082, { count: 10, timeoutMs: 500 });
      return total(summary.answers) === 10 ? summary : undefined;
    }, 'local endpoint answers');
    assert.deepEqual(local.answers, { pod1: 10 }, 'only the local endpoint serves external traffic');
    assert.deepEqual(Object.keys(local.peers), [EXT_IP], 'client source address preserved');
  });

  test('internalTrafficPolicy Local: only node-local endpoints serve cluster traffic', async () => {
    const summary = await cluster.tcp(cluster.client.ns, '10.96.0.16', 80, { count: 20, concurrency: 2 });
    assert.deepEqual(summary.answers, { pod1: 20 });
  });

  test('UDP follows an endpoint change: stale conntrack entries are cleared', async () => {
    const srcPort = 40053;
    const first = await cluster.udp(cluster.client.ns, '10.96.0.20', 53, { count: 3, srcPort });
    assert.deepEqual(first.answers, { pod1: 3 });
    publish({ ...services.get('dns')!, endpoints: [{ pod: pod(1) }] });
    await eventually(async () => {
      const summary = await cluster.udp(cluster.client.ns, '10.96.0.20', 53, { count: 1, srcPort, timeoutMs: 300 });
      return summary.answers.pod2 === 1;
    }, 'UDP reaches the new endpoint');
  });

  test('UDP: a service that gets its first endpoint is reachable from a client that was blackholed', async () => {
    const srcPort = 40054;
    const lost = await cluster.udp(cluster.client.ns, '10.96.0.21', 53, { count: 1, srcPort, timeoutMs: 300 });
    assert.equal(total(lost.answers), 0);
    publish({ name: 'dns2', clusterIP: '10.96.0.21', ports: [{ port: 53, targetPort: PORT, protocol: 'UDP' }], endpoints: [{ pod: pod(2) }] });
    await eventually(async () => {
      const summary = await cluster.udp(cluster.client.ns, '10.96.0.21', 53, { count: 1, srcPort, timeoutMs: 300 });
      return summary.answers.pod3 === 1;
    }, 'UDP reaches the first endpoint');
  });

  test('UDP: an endpoint removed while kproxy was down no longer receives a pinned client after restart', async () => {
    const srcPort = 40055;
    publish({ name: 'dns3', clusterIP: '10.96.0.22', ports: [{ port: 53, targetPort: PORT, protocol: 'UDP' }], endpoints: [{ pod: pod(0) }, { pod: pod(1) }] });
    const first = await eventually(async () => {
      const summary = await cluster.udp(cluster.client.ns, '10.96.0.22', 53, { count: 3, srcPort, timeoutMs: 300 });
      return total(summary.answers) === 3 ? summary : undefined;
    }, 'UDP reaches the new service');
    assert.equal(backends(first).length, 1, `one 5-tuple, one conntrack entry, one backend: ${JSON.stringify(first.answers)}`);
    const remaining = backends(first)[0] === 'pod1' ? 1 : 0;
    await proxy?.stop('SIGKILL');
    publish({ ...services.get('dns3')!, endpoints: [{ pod: pod(remaining) }] });
    await start();
    const later = await cluster.udp(cluster.client.ns, '10.96.0.22', 53, { count: 3, srcPort, timeoutMs: 300 });
    assert.deepEqual(later.answers, { [pod(remaining).name]: 3 }, 'the entry to the removed endpoint was deleted on the first sync');
  });

  test('a manifest change converges: add, change, remove a service', async () => {
    const spec: ServiceSpec = { name: 'late', clusterIP: '10.96.0.30', ports: [{ port: 80, targetPort: PORT }], endpoints: [{ pod: pod(0) }] };
    publish(spec);
    await eventually(async () => (await cluster.tcp(cluster.client.ns, '10.96.0.30', 80, { count: 1, timeoutMs: 300 })).answers.pod1 === 1, 'new service');
    publish({ ...spec, endpoints: [{ pod: pod(2) }] });
    await eventually(async () => (await cluster.tcp(cluster.client.ns, '10.96.0.30', 80, { count: 5, timeoutMs: 300 })).answers.pod3 === 5, 'changed endpoints');
    withdraw('late');
    await eventually(async () => total((await cluster.tcp(cluster.client.ns, '10.96.0.30', 80, { count: 1, timeoutMs: 300 })).answers) === 0, 'removed service');
  });

  test('updates under constant connection load break no established connection and refuse no new one', async () => {
    const all = cluster.pods.map((p) => ({ pod: p }));
    publish({ name: 'busy', clusterIP: '10.96.0.40', ports: [{ port: 80, targetPort: PORT }], endpoints: all });
    await eventually(async () => backends(await cluster.tcp(cluster.client.ns, '10.96.0.40', 80, { count: 12, concurrency: 3 })).length === 3, 'busy service');
    // Established connections on every endpoint, and a stream of new ones, while the service and others change:
    // endpoints come and go (the endpoint count, so its map and chain, changes), services are added and removed.
    const held = [0, 1, 2].map(() => cluster.hold(cluster.client.ns, '10.96.0.40', 80, { durationMs: 6000, intervalMs: 50 }));
    await Promise.all(held.map((h) => h.ready));
    const load = cluster.tcp(cluster.client.ns, '10.96.0.40', 80, { count: 400, concurrency: 2, timeoutMs: 1000 });
    for (let round = 0; round < 6; round++) {
      publish(
        // An endpoint leaves and comes back: its established connection lives on (conntrack), new ones avoid it.
        { name: 'busy', clusterIP: '10.96.0.40', ports: [{ port: 80, targetPort: PORT }], endpoints: round % 2 ? all : all.slice(0, 2) },
        { name: `churn${round}`, clusterIP: `10.96.0.${50 + round}`, ports: [{ port: 80, targetPort: PORT }], endpoints: all.slice(0, 1 + (round % 3)) },
      );
      if (round > 0) withdraw(`churn${round - 1}`);
      await sleep(400);
    }
    const stream = await load;
    assert.deepEqual(stream.errors, {}, 'every new connection during the updates was answered');
    for (const h of held) {
      const result = await h.result;
      assert.deepEqual(result.errors, {}, 'an established connection broke');
      assert.equal(backends(result).length, 1, 'and stayed on its backend');
    }
  });

  test('drift is repaired by the next resync without disturbing traffic; the other table is untouched', async () => {
    const foreign = await foreignListing();
    // Someone deletes a service's dispatch element and flushes a kproxy chain.
    await nft('delete', 'element', 'ip', 'kproxy', 'service-ips', '{ 10.96.0.12 . tcp . 80 }');
    await nft('flush', 'chain', 'ip', 'kproxy', 'masquerading');
    await eventually(async () => (await cluster.tcp(pod(0).ns, '10.96.0.12', 80, { count: 1, timeoutMs: 300 })).answers.pod1 === 1, 'hairpin service back', 5000);
    await eventually(async () => /masquerade fully-random/.test(await nft('list', 'chain', 'ip', 'kproxy', 'masquerading')), 'masquerading chain back', 5000);
    const fromNode = await cluster.tcp(cluster.nodeNs, '10.96.0.10', 80, { count: 10, concurrency: 2 });
    assert.deepEqual(fromNode.errors, {});
    assert.equal(await foreignListing(), foreign, 'another program\'s table is left as it was');
  });

  test('kill and restart keep established and new connections working; the other table is untouched', async () => {
    const foreign = await foreignListing();
    const held = cluster.hold(cluster.client.ns, '10.96.0.10', 80, { durationMs: 3000, intervalMs: 50 });
    await held.ready;
    await proxy?.stop('SIGKILL');
    const whileDown = await cluster.tcp(cluster.client.ns, '10.96.0.10', 80, { count: 10, concurrency: 2 });
    assert.deepEqual(whileDown.errors, {}, 'the table stays while kproxy is down');
    await start();
    const afterRestart = await cluster.tcp(cluster.client.ns, '10.96.0.10', 80, { count: 20, concurrency: 2 });
    assert.deepEqual(afterRestart.errors, {});
    assert.deepEqual(backends(afterRestart), ['pod1', 'pod2', 'pod3']);
    const result = await held.result;
    assert.deepEqual(result.errors, {}, 'the established connection never broke');
    assert.equal(backends(result).length, 1, 'and stayed on its backend');
    assert.equal(await foreignListing(), foreign);
  });

  test('--cleanup removes kproxy\'s tables and nothing else', async () => {
    await proxy?.stop('SIGTERM');
    assert.match(await nft('list', 'tables'), /table ip kproxy/, 'SIGTERM leaves the tables in place');
    const foreign = await foreignListing();
    const cleaned = await runKproxyCleanup(cluster, 'nftables');
    assert.equal(cleaned.code, 0, cleaned.output);
    const tables = await nft('list', 'tables');
    assert.doesNotMatch(tables, /kproxy/);
    assert.match(tables, /table ip foreign/);
    assert.equal(await foreignListing(), foreign);
    const gone = await cluster.tcp(cluster.client.ns, '10.96.0.10', 80, { count: 1, timeoutMs: 300 });
    assert.equal(total(gone.answers), 0, 'service traffic is no longer proxied');
  });
});
