// Taking a node over from a running kube-proxy (--take-over-from-kube-proxy), with the built upstream kube-proxy
// (tools/kube) in a namespace node against the test apiserver: traffic flows to a service through kube-proxy's rules,
// kube-proxy is stopped (its rules stay, as they do on a real node), kproxy starts with takeOverFromKubeProxy in its
// config file, programs its own rules, then removes kube-proxy's. A client keeps opening connections all along and
// one connection stays open across the switch: no connection may fail, and the longest time without an answer is
// reported. Afterwards nothing of kube-proxy's is left, and what was not kube-proxy's is still there. For kube-proxy's
// iptables mode (legacy) and its nftables mode.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { CLUSTER_CIDR, CLUSTER_CIDR6, createCluster, NODE_IP, type Cluster } from '../harness/index.ts';
import { ControlPlane, kubeTestsDisabled } from './apiserver.ts';
import { createNode, startPeer, type PeerProcess } from './peers.ts';
import { isKubeProxyChain } from '../../kit/takeover/kube-proxy.ts';

const skip = kubeTestsDisabled ? 'KPROXY_NO_KUBE_TESTS=1' : process.env.KPROXY_NO_KERNEL_TESTS === '1' ? 'KPROXY_NO_KERNEL_TESTS=1' : false;
const NODE = 'node1';
const NS = 'takeover';
const CLUSTER_IP = '10.96.0.50';
const PORT = 8080;
/** How long the clients keep connecting: from before kube-proxy stops until after kproxy took over (≈ 10 s here). */
const CLIENTS_MS = 45_000;

/** kube-proxy's modes taken over from, with how to see its rules in the node namespace. */
const FROM: ReadonlyArray<{ readonly mode: 'iptables' | 'nftables'; readonly config: Readonly<Record<string, unknown>> }> = [
  { mode: 'iptables', config: {} },
  { mode: 'nftables', config: { mode: 'nftables', nftables: { syncPeriod: '30s', minSyncPeriod: '1s', masqueradeBit: 14 } } },
];

describe('taking over from a running kube-proxy (built upstream) with no failed connection', { skip }, () => {
  let plane: ControlPlane;

  before(async () => {
    plane = await ControlPlane.start();
    await createNode(plane, NODE, [NODE_IP]);
    await plane.request('POST', '/api/v1/namespaces', { metadata: { name: NS } });
    await plane.request('POST', `/api/v1/namespaces/${NS}/services`, {
      metadata: { name: 'web' }, spec: { clusterIP: CLUSTER_IP, ports: [{ name: 'http', port: 80, targetPort: PORT, protocol: 'TCP' }] },
    });
  });

  after(async () => { await plane?.stop(); });

  for (const from of FROM) {
    test(`from kube-proxy's ${from.mode} mode to kproxy's iptables mode`, async () => {
      const cluster = await createCluster({ pods: 3, podPorts: [PORT] });
      const peers: PeerProcess[] = [];
      const sliceName = `web-${from.mode}`;
      try {
        await plane.reachFrom((cmd, args) => cluster.spawn(cluster.nodeNs, cmd, args));
        await plane.request('POST', `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices`, {
          metadata: { name: sliceName, labels: { 'kubernetes.io/service-name': 'web' } },
          addressType: 'IPv4', ports: [{ name: 'http', port: PORT, protocol: 'TCP' }],
          endpoints: cluster.pods.map((pod) => ({ addresses: [pod.ip], conditions: { ready: true }, nodeName: NODE })),
        });
        const exec = async (cmd: string, args: readonly string[]): Promise<string> => (await cluster.exec(cluster.nodeNs, cmd, args, { allowFailure: true })).stdout;
        const settings = { mode: 'iptables' as const, kubeconfig: plane.proxyKubeconfig, nodeName: NODE, clusterCIDR: `${CLUSTER_CIDR},${CLUSTER_CIDR6}` };
        // Not kube-proxy's, so it must survive the takeover: a chain of the node's own with a jump to it.
        await exec('iptables-legacy', ['-w', '-t', 'nat', '-N', 'KUBE-NODE-LOCAL']);
        await exec('iptables-legacy', ['-w', '-t', 'nat', '-A', 'OUTPUT', '-d', '203.0.113.1/32', '-j', 'KUBE-NODE-LOCAL']);

        const kubeProxy = startPeer(cluster, 'kube-proxy', { ...settings, workDir: join(plane.dir, `kube-proxy-${from.mode}`), config: from.config });
        peers.push(kubeProxy);
        await kubeProxy.waitListening();
        const kubeProxyRules = async (): Promise<string[]> => kubeProxyLeftovers(
          (await exec('iptables-legacy-save', [])) + (await exec('ip6tables-legacy-save', [])), await exec('nft', ['list', 'tables']));
        await eventually(async () => Object.keys((await cluster.tcp(cluster.client.ns, CLUSTER_IP, 80, { count: 3, timeoutMs: 500 })).errors).length === 0, 'kube-proxy serves the service');
        assert.ok((await kubeProxyRules()).length > 0, `kube-proxy's ${from.mode} rules are there`);

        // Clients all along (a new connection every 25 ms) and one connection held open, both long enough to outlast
        // the switch on a loaded machine; their results are read at the end.
        const clientsEnd = Date.now() + CLIENTS_MS;
        const clients = cluster.timeline(cluster.client.ns, CLUSTER_IP, 80, { durationMs: CLIENTS_MS, intervalMs: 25, timeoutMs: 2000 });
        const held = cluster.hold(cluster.client.ns, CLUSTER_IP, 80, { durationMs: CLIENTS_MS, intervalMs: 100 });
        await held.ready;
        const stoppedAt = Date.now();
        assert.ok([0, 'SIGTERM'].includes(await kubeProxy.stop()), 'kube-proxy stopped');
        assert.ok((await kubeProxyRules()).length > 0, 'kube-proxy leaves its rules when it stops');

        const startedAt = Date.now();
        const kproxy = startPeer(cluster, 'kproxy', {
          ...settings, workDir: join(plane.dir, `kproxy-${from.mode}`), config: { takeOverFromKubeProxy: true },
        });
        peers.push(kproxy);
        await kproxy.waitListening();
        await eventually(async () => (await kubeProxyRules()).length === 0, 'kube-proxy\'s rules removed', 30_000);
        const tookOver = Date.now();
        assert.match(await exec('iptables-legacy', ['-w', '-t', 'nat', '-S', 'KPROXY-SERVICES']), new RegExp(`-d ${CLUSTER_IP}/32`), 'kproxy\'s own rules are in place');
        assert.ok(clientsEnd - tookOver > 2000, 'the clients went on for a while after the takeover (else it proves nothing)');
        const attempts = await clients;
        const heldSeen = await held.result;
        const failed = attempts.filter(([, , error]) => error !== null);
        const answered = attempts.filter(([, , error]) => error === null).map(([at, ms]) => at + ms).sort((a, b) => a - b);
        const gaps = answered.slice(1).map((at, i) => ({ ms: at - (answered[i] ?? at), from: answered[i] ?? at })).sort((a, b) => a.ms - b.ms);
        const longest = gaps.at(-1);
        const slowest = [...attempts].sort((a, b) => b[1] - a[1])[0];
        // The client's own stalls (a loaded machine): the longest time between two connections it began.
        const starts = attempts.map(([at]) => at);
        const stall = Math.max(0, ...starts.slice(1).map((at, i) => at - (starts[i] ?? at)));
        const when = (at: number | undefined): string => (at === undefined ? '?' : `${at - stoppedAt} ms after kube-proxy was told to stop`);
        process.stderr.write(`# from kube-proxy's ${from.mode} mode: ${attempts.length} connections, ${failed.length} failed; longest time without an answer `
          + `${longest?.ms} ms from ${when(longest?.from)} (median ${gaps[Math.floor(gaps.length / 2)]?.ms} ms); slowest connection ${slowest?.[1]} ms, begun ${when(slowest?.[0])}; `
          + `the client itself stalled up to ${stall} ms between two connections; kproxy started ${startedAt - stoppedAt} ms, kube-proxy's rules gone ${tookOver - stoppedAt} ms after; the held connection answered `
          + `${Object.values(heldSeen.answers).reduce((a, b) => a + b, 0)} times\n`);
        assert.deepEqual(failed, [], 'no connection failed');
        assert.deepEqual(heldSeen.errors, {}, 'the established connection lived through the switch');
        assert.match(kproxy.output(), /Took over from kube-proxy: removed/);
        // What was not kube-proxy's stays: the node's chain, and the kubelet's firewall chain kube-proxy also creates.
        const save = await exec('iptables-legacy-save', []);
        assert.match(save, /^-A OUTPUT -d 203\.0\.113\.1\/32 -j KUBE-NODE-LOCAL$/m);
        if (from.mode === 'iptables') assert.match(save, /^:KUBE-FIREWALL /m, 'kubelet\'s KUBE-FIREWALL (which kube-proxy duplicates) is not kube-proxy\'s to remove');
      } finally {
        for (const peer of peers) await peer.stop().catch(() => undefined);
        await plane.request('DELETE', `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices/${sliceName}`).catch(() => undefined);
        await cluster.destroy();
      }
    });
  }
});

/** What of kube-proxy's a node holds: its iptables chains and rules jumping to them, and its nftables tables. */
function kubeProxyLeftovers(save: string, nftTables: string): string[] {
  const left: string[] = [];
  for (const line of save.split('\n')) {
    const chain = /^:(\S+) /.exec(line)?.[1];
    if (chain !== undefined && isKubeProxyChain(chain)) left.push(line);
    const jump = / -j (\S+)/.exec(line)?.[1];
    if (line.startsWith('-A ') && jump !== undefined && isKubeProxyChain(jump)) left.push(line);
  }
  for (const line of nftTables.split('\n')) if (/^table \S+ kube-proxy$/.test(line.trim())) left.push(line.trim());
  return left;
}

async function eventually(check: () => Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`timed out waiting until ${what}`);
}
