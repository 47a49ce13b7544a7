// Metrics parity with the built kube-proxy as the oracle. Both proxies run side by side (test/kube/peers.ts), each
// in a node namespace of its own, against one test apiserver, from the same KubeProxyConfiguration; the same
// changes reach both (a UDP Service whose endpoints change, with EndpointSlice change-trigger times, so kube-proxy
// records network programming latency, partial syncs and a conntrack reconciliation; a /livez request). Then
// kproxy's /metrics must hold every kubeproxy_* family (and kubernetes_build_info) kube-proxy's holds, with the
// same type, the same label names and the same histogram buckets. Where they differ on purpose, the tables
// below say so and why; kube-proxy's client-go / component-base / Go runtime families (rest_client_*, go_*,
// workqueue_*, kubernetes_feature_enabled, …) are not compared: kproxy has Node's runtime and its own client.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ControlPlane, kubeTestsDisabled } from './apiserver.ts';
import { createNode, startPeer, type PeerKind, type PeerProcess } from './peers.ts';
import { createScaleNode, SCALE_CLUSTER_CIDR, SCALE_NODE_IP, type ScaleNode } from '../harness/scale-node.ts';
import { nsRun } from '../harness/netns.ts';
import { ProxyMetrics } from '../../src/metrics/proxy-metrics.ts';

const skip = kubeTestsDisabled ? 'KPROXY_NO_KUBE_TESTS=1' : process.env.KPROXY_NO_KERNEL_TESTS === '1' ? 'KPROXY_NO_KERNEL_TESTS=1' : false;
const NODE = 'metrics-node';
const NS = 'parity';
const COMPARED = (name: string): boolean => name.startsWith('kubeproxy_') || name === 'kubernetes_build_info';

/**
 * Families kproxy exports from the start that kube-proxy registers for the same mode but shows only after their
 * first event, which this scenario does not cause (it would take a failing iptables-restore).
 */
const SHOWN_BY_KUBE_PROXY_ONLY_AFTER_A_FAILURE: Readonly<Record<string, string>> = {
  kubeproxy_sync_proxy_rules_iptables_restore_failures_total: 'created at 0 per family by kproxy; kube-proxy shows it after a first failed restore',
  kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total: 'created at 0 per family by kproxy; kube-proxy shows it after a first failed partial restore',
};

interface Family {
  readonly type: string;
  readonly labels: ReadonlySet<string>;
  /** Histogram upper bounds ("le"), as written. */
  readonly buckets: readonly string[];
  readonly series: number;
}

/** The families of a Prometheus text exposition. */
function families(text: string): Map<string, Family> {
  const found = new Map<string, { type: string; labels: Set<string>; buckets: Set<string>; series: number }>();
  for (const [, name = '', type = ''] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) found.set(name, { type, labels: new Set(), buckets: new Set(), series: 0 });
  const familyOf = (sample: string): string | undefined => {
    if (found.has(sample)) return sample;
    const base = sample.replace(/_(bucket|sum|count)$/, '');
    return found.get(base)?.type === 'histogram' ? base : undefined;
  };
  for (const [, sample = '', labelText = ''] of text.matchAll(/^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? \S+$/gm)) {
    const name = familyOf(sample);
    const family = name === undefined ? undefined : found.get(name);
    if (family === undefined) continue;
    family.series++;
    for (const [, key = '', value = ''] of labelText.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      if (key === 'le') family.buckets.add(value);
      else family.labels.add(key);
    }
  }
  return new Map([...found].map(([name, f]) => [name, { type: f.type, labels: f.labels, buckets: [...f.buckets].sort((a, b) => Number(a) - Number(b)), series: f.series }]));
}

describe('metrics parity with the built kube-proxy (iptables mode, side by side)', { skip }, () => {
  let plane: ControlPlane;
  const nodes: ScaleNode[] = [];
  const peers = new Map<PeerKind, { peer: PeerProcess; node: ScaleNode }>();

  const get = async (kind: PeerKind, path: string): Promise<string> => {
    const entry = peers.get(kind);
    assert.ok(entry);
    const url = entry.peer.metricsUrl.replace('/metrics', path);
    const script = 'fetch(process.argv[1]).then(async (r) => process.stdout.write(await r.text()), () => process.exit(1))';
    return (await nsRun(entry.node.nodeNs, process.execPath, ['-e', script, url], { timeoutMs: 10_000 })).stdout;
  };
  const health = async (kind: PeerKind, path: string): Promise<number | undefined> => {
    const entry = peers.get(kind);
    return entry?.node.httpStatus(entry.node.nodeNs, entry.peer.healthzUrl.replace('/healthz', path));
  };

  before(async () => {
    plane = await ControlPlane.start();
    await createNode(plane, NODE, [SCALE_NODE_IP]);
    await plane.request('POST', '/api/v1/namespaces', { metadata: { name: NS } });
    for (const kind of ['kube-proxy', 'kproxy'] as const) {
      const node = await createScaleNode();
      nodes.push(node);
      await plane.reachFrom((cmd, args) => node.spawn(node.nodeNs, cmd, args));
      const peer = startPeer(node, kind, {
        mode: 'iptables', kubeconfig: plane.proxyKubeconfig, nodeName: NODE, clusterCIDR: SCALE_CLUSTER_CIDR, workDir: join(plane.dir, kind),
      });
      peers.set(kind, { peer, node });
    }
    for (const { peer } of peers.values()) await peer.waitListening();
    await eventually('both healthy after their first sync', async () => (await health('kube-proxy', '/healthz')) === 200 && (await health('kproxy', '/healthz')) === 200);

    // The same changes reach both proxies.
    await plane.request('POST', `/api/v1/namespaces/${NS}/services`, { metadata: { name: 'dns' }, spec: { ports: [{ name: 'dns', port: 53, protocol: 'UDP', targetPort: 5353 }] } });
    const slice = (ips: readonly string[]): Record<string, unknown> => ({
      metadata: { name: 'dns-1', labels: { 'kubernetes.io/service-name': 'dns' }, annotations: { 'endpoints.kubernetes.io/last-change-trigger-time': new Date().toISOString() } },
      addressType: 'IPv4', ports: [{ name: 'dns', port: 5353, protocol: 'UDP' }],
      endpoints: ips.map((ip) => ({ addresses: [ip], conditions: { ready: true }, nodeName: 'elsewhere' })),
    });
    await plane.request('POST', `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices`, slice(['10.244.7.1', '10.244.7.2']));
    await eventually('kube-proxy recorded the network programming latency', async () => /^kubeproxy_network_programming_duration_seconds_count\{ip_family="IPv4"\} [1-9]/m.test(await get('kube-proxy', '/metrics')));
    // An endpoint of a UDP service goes away: kube-proxy reconciles conntrack.
    await plane.request('PUT', `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices/dns-1`, slice(['10.244.7.1']));
    await eventually('kube-proxy reconciled conntrack', async () => /^kubeproxy_conntrack_reconciler_sync_duration_seconds_count\{ip_family="IPv4"\} [1-9]/m.test(await get('kube-proxy', '/metrics')));
    for (const kind of ['kube-proxy', 'kproxy'] as const) assert.ok(await health(kind, '/livez') !== undefined, `${kind} /livez`);
  });

  after(async () => {
    for (const { peer } of peers.values()) await peer.stop().catch(() => undefined);
    for (const node of nodes) await node.destroy();
    await plane?.stop();
  });

  test('every kubeproxy_* family of kube-proxy\'s, with its type, label names and buckets; none of kproxy\'s more', async () => {
    const upstream = families(await get('kube-proxy', '/metrics'));
    const ours = families(await get('kproxy', '/metrics'));
    const compared = [...upstream.keys()].filter(COMPARED).sort();
    // The scenario made kube-proxy show what it shows only after an event.
    for (const name of ['kubeproxy_network_programming_duration_seconds', 'kubeproxy_sync_partial_proxy_rules_duration_seconds',
      'kubeproxy_conntrack_reconciler_sync_duration_seconds', 'kubeproxy_proxy_livez_total', 'kubeproxy_sync_proxy_rules_iptables_total']) {
      assert.ok(compared.includes(name), `the scenario did not make kube-proxy show ${name}`);
    }
    const same = (a: ReadonlySet<string>, b: ReadonlySet<string>): boolean => a.size === b.size && [...a].every((l) => b.has(l));
    const problems: string[] = [];
    for (const name of compared) {
      const theirs = upstream.get(name);
      const mine = ours.get(name);
      if (theirs === undefined) continue;
      if (mine === undefined) { problems.push(`${name}: missing`); continue; }
      if (mine.type !== theirs.type) problems.push(`${name}: type ${mine.type}, kube-proxy's ${theirs.type}`);
      const labels = mine.labels;
      if (!same(labels, theirs.labels)) problems.push(`${name}: labels {${[...labels].sort().join(',')}}, kube-proxy's {${[...theirs.labels].sort().join(',')}}`);
      if (theirs.type === 'histogram' && mine.buckets.join(',') !== theirs.buckets.join(',')) {
        problems.push(`${name}: buckets ${mine.buckets.join(',')}, kube-proxy's ${theirs.buckets.join(',')}`);
      }
    }
    for (const name of [...ours.keys()].filter(COMPARED)) {
      if (!upstream.has(name) && SHOWN_BY_KUBE_PROXY_ONLY_AFTER_A_FAILURE[name] === undefined) problems.push(`${name}: kproxy exports it, kube-proxy does not`);
    }
    assert.deepEqual(problems, []);
  });

  test('kproxy\'s rule counts are those of its chains in the kernel', async () => {
    const entry = peers.get('kproxy');
    assert.ok(entry);
    const saved = (await nsRun(entry.node.nodeNs, 'iptables-legacy-save', [])).stdout;
    const text = await get('kproxy', '/metrics');
    for (const table of ['nat', 'filter']) {
      const section = saved.slice(saved.indexOf(`*${table}\n`)).split('COMMIT')[0] ?? '';
      const inKernel = section.split('\n').filter((line) => line.startsWith('-A KPROXY-')).length;
      const reported = new RegExp(`^kubeproxy_sync_proxy_rules_iptables_total\\{table="${table}",ip_family="IPv4"\\} (\\d+)$`, 'm').exec(text)?.[1];
      assert.equal(Number(reported), inKernel, `${table}: reported ${reported}, ${inKernel} in the kernel`);
    }
  });

  test('kproxy has series for both IP families before any change, where kube-proxy waits for events', async () => {
    // A fresh registry of the mode's set is what the agent serves at start.
    const ours = families(await new ProxyMetrics({ mode: 'iptables', processMetrics: false }).registry.metrics());
    for (const name of ['kubeproxy_network_programming_duration_seconds', 'kubeproxy_sync_partial_proxy_rules_duration_seconds',
      'kubeproxy_conntrack_reconciler_sync_duration_seconds', 'kubeproxy_conntrack_reconciler_deleted_entries_total']) {
      assert.ok((ours.get(name)?.series ?? 0) > 0, `${name} has no series at start`);
    }
  });
});

async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (error) {
      last = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`timed out waiting until ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
}
