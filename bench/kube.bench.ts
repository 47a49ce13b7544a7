// List+watch at scale against a real kube-apiserver: 10k Services and 10k EndpointSlices (100k endpoints).
// Measures, in a fresh process so the figures are kproxy's alone: time from start to the first applied
// state, RSS then, and EndpointSlice update → applied latency (p50/p99) with min-sync-period 0.
// Targets (issue #5): first state ≤ 10 s, RSS ≤ 250 MiB, p99 ≤ 200 ms. Needs tools/kube/build.sh binaries.
//   npm run bench kube        (BENCH_KUBE_SERVICES=2000 for a quicker, smaller run)
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { syntheticCluster } from '../test/fixtures/synthetic.ts';
import { adminFromKubeconfig, populate } from './apiserver-load.ts';
import { ControlPlane, kubeTestsDisabled } from '../test/kube/apiserver.ts';
import { KPROXY_NODE_ENV, KPROXY_NODE_FLAGS } from '../test/harness/kproxy.ts';

const SERVICES = Number(process.env.BENCH_KUBE_SERVICES ?? 10_000);
const ENDPOINTS_PER_SERVICE = 10;
const UPDATES = 200;
const NODE = 'bench-node';
const TARGETS = { firstStateMs: 10_000, rssMiB: 250, p99Ms: 200 };

async function load(plane: ControlPlane): Promise<void> {
  const cluster = syntheticCluster({ services: SERVICES, endpointsPerService: ENDPOINTS_PER_SERVICE, nodeName: NODE, seed: 7 });
  const admin = adminFromKubeconfig(plane.adminKubeconfig);
  await admin.request('POST', '/api/v1/nodes', { metadata: { name: NODE } });
  const seconds = await populate(admin, cluster, 'clusterIP');
  await admin.close();
  console.log(`created ${cluster.services.length} Services and ${cluster.slices.length} EndpointSlices (${cluster.slices.length * ENDPOINTS_PER_SERVICE} endpoints) in ${seconds.toFixed(1)} s`);
}

const percentile = (sorted: readonly number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;

/** The measuring child: a kproxy pipeline as system:kube-proxy, plus an admin client for the updates. */
async function measure(proxyKubeconfig: string, adminKubeconfig: string): Promise<void> {
  const { startPipeline } = await import('../test/kube/harness.ts');
  const started = performance.now();
  const proxy = await startPipeline({ kubeconfig: proxyKubeconfig, nodeName: NODE, watchNode: true });
  let resolveFirst: () => void = () => {};
  const first = new Promise<void>((resolve) => { resolveFirst = resolve; });
  let target: { key: string; ip: string; seen: () => void } | undefined;
  proxy.loop.addObserver({
    syncSucceeded: (event) => {
      resolveFirst();
      if (!target) return;
      const want = target;
      const plan = event.state.families.IPv4.services.find((s) => s.key === want.key);
      if (plan?.allEndpoints.some((e) => e.ip === want.ip)) want.seen();
    },
  });
  if (proxy.applied()) resolveFirst(); // the first sync may have run before the observer was added
  await first;
  const firstStateMs = performance.now() - started;
  globalThis.gc?.();
  const usage = process.memoryUsage();
  const rssMiB = usage.rss / 2 ** 20;
  if (process.env.BENCH_KUBE_SPACES === '1') {
    const { getHeapSpaceStatistics } = await import('node:v8');
    for (const space of getHeapSpaceStatistics()) console.error(`  ${space.space_name}: size ${(space.space_size / 2 ** 20).toFixed(1)} MiB, used ${(space.space_used_size / 2 ** 20).toFixed(1)} MiB`);
  }
  const memory = { heapUsedMiB: usage.heapUsed / 2 ** 20, heapTotalMiB: usage.heapTotal / 2 ** 20, externalMiB: usage.external / 2 ** 20, arrayBuffersMiB: usage.arrayBuffers / 2 ** 20 };
  if (process.env.BENCH_KUBE_HEAP_SNAPSHOT) {
    const { writeHeapSnapshot } = await import('node:v8');
    console.error(`heap snapshot: ${writeHeapSnapshot(process.env.BENCH_KUBE_HEAP_SNAPSHOT)}`);
  }
  // BENCH_KUBE_SETTLE_MS: also the RSS after that long at rest (V8's memory reducer runs after idle seconds;
  // measured: it does not shrink the young generation, so 0 by default).
  const settleMs = Number(process.env.BENCH_KUBE_SETTLE_MS ?? 0);
  await new Promise((resolve) => setTimeout(resolve, settleMs));
  const settled = process.memoryUsage();
  const settledRssMiB = settled.rss / 2 ** 20;
  if (process.env.BENCH_KUBE_SPACES === '1') {
    const { getHeapSpaceStatistics } = await import('node:v8');
    for (const space of getHeapSpaceStatistics()) if (space.space_size > 0) console.error(`  settled ${space.space_name}: size ${(space.space_size / 2 ** 20).toFixed(1)} MiB, used ${(space.space_used_size / 2 ** 20).toFixed(1)} MiB`);
  }
  const state = proxy.applied();
  const portPlans = state?.families.IPv4.services.length ?? 0;

  const admin = adminFromKubeconfig(adminKubeconfig);
  const latencies: number[] = [];
  for (let i = 0; i < UPDATES; i++) {
    const index = (i * 7919) % SERVICES;
    const ns = `ns-${index % 50}`;
    const plans = state?.families.IPv4.services.filter((s) => s.namespace === ns && s.name === `svc-${index}`) ?? [];
    const key = plans[0]?.key;
    if (!key) throw new Error(`svc-${index} not in the applied state`);
    // An address the slice does not have yet (earlier runs on the same apiserver patched it), so that each
    // PATCH is a real change.
    const current = new Set(plans.flatMap((plan) => plan.allEndpoints.map((e) => e.ip)));
    const candidates = Array.from({ length: 10 }, (_, salt) => `10.${245 + salt}.${Math.floor(i / 250)}.${(i % 250) + 1}`);
    const ip = candidates.find((candidate) => !current.has(candidate)) ?? '10.255.255.254';
    const seen = new Promise<void>((resolve) => { target = { key, ip, seen: resolve }; });
    const t0 = performance.now();
    await admin.request('PATCH', `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices/svc-${index}-0`,
      { endpoints: [{ addresses: [ip], conditions: { ready: true, serving: true, terminating: false }, nodeName: NODE }] });
    await seen;
    latencies.push(performance.now() - t0);
  }
  await admin.close();
  await proxy.stop();
  latencies.sort((a, b) => a - b);
  console.log(JSON.stringify({ firstStateMs, rssMiB, memory, settleMs, settledRssMiB, settledHeapTotalMiB: settled.heapTotal / 2 ** 20, portPlans, p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99), updates: latencies.length }));
}

async function main(): Promise<void> {
  if (kubeTestsDisabled) {
    console.log('kube.bench: skipped (KPROXY_NO_KUBE_TESTS=1)');
    return;
  }
  const plane = await ControlPlane.start({ maxRequestsInflight: 3000, apiserverArgs: ['--enable-priority-and-fairness=false'] });
  try {
    await load(plane);
    // V8 flags of the measuring process: by default the agent's own (bin/kproxy.js's shebang). BENCH_KUBE_NODE_FLAGS
    // compares variants on the same populated apiserver, separated by ';', e.g. ';--max-semi-space-size=2'.
    const variants = (process.env.BENCH_KUBE_NODE_FLAGS ?? KPROXY_NODE_FLAGS.join(' ')).split(';').map((v) => v.split(' ').filter((f) => f !== ''));
    for (const nodeFlags of variants) await measureOnce(plane, nodeFlags);
    if (process.env.BENCH_KUBE_HOLD === '1') {
      // Keep the populated apiserver for more measurements by hand; SIGUSR2 stops it cleanly.
      console.log(`holding the apiserver: node --expose-gc ${fileURLToPath(import.meta.url)} --measure ${plane.proxyKubeconfig} ${plane.adminKubeconfig}`);
      const keepAlive = setInterval(() => undefined, 1 << 30);
      await new Promise<void>((resolve) => { process.once('SIGUSR2', () => resolve()); });
      clearInterval(keepAlive);
    }
  } finally {
    await plane.stop();
  }
}

async function measureOnce(plane: ControlPlane, nodeFlags: readonly string[]): Promise<void> {
  {
    console.log(`measuring process flags: ${nodeFlags.join(' ') || '(none)'}`);
    const child = spawn(process.execPath, ['--expose-gc', ...nodeFlags, fileURLToPath(import.meta.url), '--measure', plane.proxyKubeconfig, plane.adminKubeconfig],
      { stdio: ['ignore', 'pipe', 'inherit'], env: { ...KPROXY_NODE_ENV, ...process.env } });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString(); });
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    if (code !== 0) throw new Error(`measuring process failed (${code}): ${output}`);
    const result = JSON.parse(output.trim().split('\n').pop() ?? '{}') as { firstStateMs: number; rssMiB: number; settleMs: number; settledRssMiB: number; memory: Record<string, number>; portPlans: number; p50Ms: number; p99Ms: number; updates: number };
    const verdict = (ok: boolean): string => (ok ? 'ok' : 'OVER TARGET');
    console.log(`services ${SERVICES}, slices ${SERVICES}, endpoints ${SERVICES * ENDPOINTS_PER_SERVICE}, service ports applied ${result.portPlans}`);
    console.log(`first complete state applied: ${(result.firstStateMs / 1000).toFixed(2)} s (target ≤ ${TARGETS.firstStateMs / 1000} s) ${verdict(result.firstStateMs <= TARGETS.firstStateMs)}`);
    console.log(`RSS after first state: ${result.rssMiB.toFixed(0)} MiB (target ≤ ${TARGETS.rssMiB} MiB) ${verdict(result.rssMiB <= TARGETS.rssMiB)}`);
    if (result.settleMs > 0) console.log(`RSS after ${result.settleMs / 1000} s at rest: ${result.settledRssMiB.toFixed(0)} MiB`);
    console.log(`  of which V8 heap used ${result.memory.heapUsedMiB?.toFixed(0)} / total ${result.memory.heapTotalMiB?.toFixed(0)} MiB, external ${result.memory.externalMiB?.toFixed(0)} MiB (array buffers ${result.memory.arrayBuffersMiB?.toFixed(0)} MiB)`);
    console.log(`EndpointSlice update → applied, ${result.updates} updates: p50 ${result.p50Ms.toFixed(1)} ms, p99 ${result.p99Ms.toFixed(1)} ms (target p99 ≤ ${TARGETS.p99Ms} ms) ${verdict(result.p99Ms <= TARGETS.p99Ms)}`);
  }
}

if (process.argv[2] === '--measure') await measure(process.argv[3] ?? '', process.argv[4] ?? '');
else await main();
