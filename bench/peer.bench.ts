// kproxy side by side with the upstream kube-proxy (`npm run bench peer`; root, the kube binaries of
// tools/kube/build.sh). For each size (synthetic services × 10 endpoints, test/fixtures/synthetic.ts, loaded once into
// one real kube-apiserver with the Node) and each mode both proxies have, the two run in turn, the order alternating
// over rounds, each in a fresh node namespace (test/harness/scale-node.ts) with the same KubeProxyConfiguration
// (min-sync-period equal), and bench/peer/trial.ts measures: start → all rules in the kernel; single EndpointSlice
// changes → kernel (p50/p99); a burst of changes → kernel matches; CPU and peak RSS over the run; CPU while idle
// (largest size, first round); new connections/s to the first and the last service of the dispatch chain.
// Every figure is printed as kproxy / kube-proxy, taken within each round. Hold the bench lock:
//   flock /tmp/kproxy-bench.lock npm run bench peer
// Knobs: BENCH_PEER_SIZES=1000,10000  BENCH_PEER_MODES=iptables,nftables  BENCH_PEER_ROUNDS=2  BENCH_PEER_CHANGES=100 (single changes, even)
//   BENCH_PEER_BURST=1000  BENCH_PEER_BURST_S=10  BENCH_PEER_IDLE_S=600  BENCH_PEER_IDLE_ROUNDS=1  BENCH_PEER_MIN_SYNC_MS=1000
//   BENCH_PEER_CONNECTIONS=2000  BENCH_PEER_KEEP=1 (keep the proxies' logs)  --quick: 1k, 1 round, fewer of all.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { syntheticCluster, type RawObject, type SyntheticCluster } from '../test/fixtures/synthetic.ts';
import { createScaleNode, SCALE_NODE_IP } from '../test/harness/scale-node.ts';
import { nsRun } from '../test/harness/netns.ts';
import { run } from '../test/harness/run.ts';
import { ControlPlane, kubeTestsDisabled } from '../test/kube/apiserver.ts';
import { createNode, type PeerKind, type PeerMode } from '../test/kube/peers.ts';
import { adminFromKubeconfig, populate } from './apiserver-load.ts';
import { planChanges } from './peer/changes.ts';
import { KERNEL_VIEWS, type DispatchRule } from './peer/kernel-view.ts';
import { median, ratioTable, type Round } from './peer/report.ts';
import { runTrial, type TrialContext, type TrialResult } from './peer/trial.ts';

const quick = process.argv.includes('--quick') || process.env.KPROXY_BENCH_QUICK === '1';
const env = (name: string, normal: string, quickValue: string): string => process.env[name] ?? (quick ? quickValue : normal);
const SIZES = env('BENCH_PEER_SIZES', '1000,10000', '1000').split(',').map(Number);
const ROUNDS = Number(env('BENCH_PEER_ROUNDS', '2', '1'));
const CHANGES = Number(env('BENCH_PEER_CHANGES', '100', '20'));
const BURST = Number(env('BENCH_PEER_BURST', '1000', '200'));
const BURST_S = Number(env('BENCH_PEER_BURST_S', '10', '2'));
const IDLE_S = Number(env('BENCH_PEER_IDLE_S', '600', '0'));
/** Rounds (from the first) whose trials also measure CPU while idle, at the largest size. */
const IDLE_ROUNDS = Number(env('BENCH_PEER_IDLE_ROUNDS', '1', '1'));
const MIN_SYNC_MS = Number(env('BENCH_PEER_MIN_SYNC_MS', '1000', '1000'));
const CONNECTIONS = Number(env('BENCH_PEER_CONNECTIONS', '2000', '500'));
const NODE = 'bench-node';

/** The modes of the comparison (BENCH_PEER_MODES, default both); ipvs says why it is not one. */
const MODES = env('BENCH_PEER_MODES', 'iptables,nftables', 'iptables,nftables').split(',') as PeerMode[];
const NOT_YET = [
  'ipvs: kube-proxy\'s ipvs mode needs IPVS, which this kernel lacks (only the test VM\'s stock kernel has it, and the apiserver is not reachable from the VM)',
];

const log = (line: string): void => console.log(line);

/** Cluster IPs of services with a serving endpoint: every proxy must have a dispatch rule for each. */
function servedClusterIPs(cluster: SyntheticCluster): string[] {
  const served = new Set<string>();
  for (const slice of cluster.slices) {
    if ((slice.endpoints as RawObject[]).some((e) => (e.conditions as { serving?: boolean }).serving === true)) {
      const metadata = slice.metadata as { namespace: string; labels: Record<string, string> };
      served.add(`${metadata.namespace}/${metadata.labels['kubernetes.io/service-name']}`);
    }
  }
  return cluster.services.filter((s) => {
    const metadata = s.metadata as { namespace: string; name: string };
    return served.has(`${metadata.namespace}/${metadata.name}`);
  }).map((s) => (s.spec as { clusterIP: string }).clusterIP);
}

/** The first and last TCP service port of the cluster (by creation), where a mode's lookup has no order. */
function firstAndLastTcp(cluster: SyntheticCluster): DispatchRule[] {
  const tcp = cluster.services.flatMap((s) => {
    const spec = s.spec as { clusterIP: string; ports: Array<{ port: number; protocol: string }> };
    const port = spec.ports.find((p) => p.protocol === 'TCP');
    return port ? [{ ip: spec.clusterIP, port: port.port }] : [];
  });
  return [tcp[0], tcp.at(-1)].filter((r): r is DispatchRule => r !== undefined);
}

/**
 * What the apiserver bridge costs: listing every Service and EndpointSlice (pages of 500) from the root namespace
 * directly and from a node namespace through the bridge, alternated three times; the medians in ms.
 */
async function bridgeCost(plane: ControlPlane): Promise<{ direct: number; bridged: number; items: number }> {
  const script = `const [server, token] = process.argv.slice(1); const t0 = performance.now(); let items = 0;
    for (const path of ['/api/v1/services', '/apis/discovery.k8s.io/v1/endpointslices']) { let next = '';
      do { const r = await fetch(server + path + '?limit=500' + (next ? '&continue=' + encodeURIComponent(next) : ''),
        { headers: { Authorization: 'Bearer ' + token, Accept: 'application/json' } });
        const body = await r.json(); items += body.items.length; next = body.metadata.continue ?? ''; } while (next); }
    console.log(JSON.stringify({ ms: performance.now() - t0, items }));`;
  const args = ['--input-type=module', '-e', script, plane.server, plane.adminToken];
  const options = { env: { ...process.env, NODE_EXTRA_CA_CERTS: plane.caFile() }, timeoutMs: 120_000 };
  const node = await createScaleNode();
  try {
    await plane.reachFrom((cmd, a) => node.spawn(node.nodeNs, cmd, a));
    const direct: number[] = [];
    const bridged: number[] = [];
    let items = 0;
    for (let i = 0; i < 3; i++) {
      const a = JSON.parse((await run(process.execPath, args, options)).stdout) as { ms: number; items: number };
      const b = JSON.parse((await nsRun(node.nodeNs, process.execPath, args, options)).stdout) as { ms: number; items: number };
      direct.push(a.ms);
      bridged.push(b.ms);
      items = b.items;
    }
    return { direct: median(direct), bridged: median(bridged), items };
  } finally {
    await node.destroy();
  }
}

async function measureSize(services: number, workDir: string): Promise<void> {
  log(`\n### ${services.toLocaleString('en')} services × 10 endpoints`);
  const plane = await ControlPlane.start({
    maxRequestsInflight: 3000,
    apiserverArgs: ['--enable-priority-and-fairness=false', '--service-node-port-range=30000-39999'],
  });
  const admin = adminFromKubeconfig(plane.adminKubeconfig);
  try {
    const cluster = syntheticCluster({ services, endpointsPerService: 10, nodeName: NODE, seed: 7 });
    const labels = (cluster.node.metadata as { labels: Record<string, string> }).labels;
    await createNode(plane, NODE, [SCALE_NODE_IP], labels);
    const seconds = await populate(admin, cluster, 'typed');
    log(`loaded ${cluster.services.length} Services, ${cluster.slices.length} EndpointSlices and the Node in ${seconds.toFixed(1)} s`);
    const bridge = await bridgeCost(plane);
    log(`apiserver bridge: listing ${bridge.items} objects takes ${bridge.direct.toFixed(0)} ms directly, ${bridge.bridged.toFixed(0)} ms through the bridge`);
    const plan = planChanges(cluster, CHANGES / 2, BURST);
    for (const mode of MODES) {
      log(`\n#### ${mode === 'iptables' ? 'iptables (legacy)' : mode}; min-sync-period ${MIN_SYNC_MS} ms for both; ${CHANGES} single changes, a burst of ${BURST} in ${BURST_S} s`);
      const rounds: Round[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        const order: PeerKind[] = round % 2 === 0 ? ['kproxy', 'kube-proxy'] : ['kube-proxy', 'kproxy'];
        const results = new Map<PeerKind, TrialResult>();
        for (const kind of order) {
          log(`round ${round + 1}/${ROUNDS}: ${kind}`);
          const context: TrialContext = {
            plane, admin, mode, view: KERNEL_VIEWS[mode], nodeName: NODE, plan, expectedClusterIPs: servedClusterIPs(cluster),
            firstAndLast: firstAndLastTcp(cluster),
            minSyncPeriodMs: MIN_SYNC_MS, burstSeconds: BURST_S, connections: CONNECTIONS,
            idleSeconds: round < IDLE_ROUNDS && services === Math.max(...SIZES) ? IDLE_S : 0,
            workDir: join(workDir, `${services}-${mode}-${round}`), log,
          };
          results.set(kind, await runTrial(context, kind));
        }
        const kproxy = results.get('kproxy');
        const kubeProxy = results.get('kube-proxy');
        if (kproxy && kubeProxy) rounds.push({ kproxy, kubeProxy });
      }
      log(`\n${ratioTable(rounds, services)}`);
      if (IDLE_S > 0 && services === Math.max(...SIZES)) log(`(CPU while idle: ${IDLE_S} s, in the first ${Math.min(IDLE_ROUNDS, ROUNDS)} round(s))`);
      if (mode === 'nftables') {
        log('(nftables: a change is in the kernel at the first nf_tables transaction after it; start and burst at the transaction after which the ruleset holds everything; new connections go to the first and last service created)');
      }
    }
  } finally {
    await admin.close();
    await plane.stop();
  }
}

async function main(): Promise<void> {
  if (kubeTestsDisabled) {
    log('peer.bench: skipped (KPROXY_NO_KUBE_TESTS=1)');
    return;
  }
  const load = (await run('cat', ['/proc/loadavg'])).stdout.trim();
  log(`peer benchmark: sizes ${SIZES.join(', ')}, ${ROUNDS} round(s), load average at start ${load}`);
  for (const line of NOT_YET) log(`not compared: ${line}`);
  const workDir = mkdtempSync(join(tmpdir(), 'kproxy-peer-bench-'));
  try {
    for (const services of SIZES) await measureSize(services, workDir);
  } finally {
    if (process.env.BENCH_PEER_KEEP === '1') log(`proxy logs kept in ${workDir}`);
    else rmSync(workDir, { recursive: true, force: true });
  }
}

await main();
