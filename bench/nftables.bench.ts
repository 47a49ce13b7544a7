// nftables mode benchmark (`npm run bench nftables`, or `node --expose-gc bench/nftables.bench.ts [--quick]`).
// For N synthetic services × 10 endpoints (test/fixtures/synthetic.ts, seed 42), on a scale node of namespaces
// (test/harness/scale-node.ts: a sink answers for every pod IP; never the root namespace):
//   - full load: the first sync of a fresh agent (ingest + compute + compile + one netlink transaction), against the
//     same cluster in a layout shaped like upstream kube-proxy's (bench/upstream-nftables.ts) loaded with `nft -f`
//     into an empty namespace in the same run; and the agent's own table as nft text loaded by `nft -f`;
//   - one endpoint added / removed: the whole partial sync (store update + compute + diff + netlink), and its size;
//   - restart: a second agent on the filled namespace (reads the table back over netlink and writes the difference);
//   - data path: new connections per second from a pod to the first and to the last service (same run, rounds
//     alternating);
//   - peak RSS of the agent (after its first sync, after the partial syncs, and of the restarted agent), and of the
//     nft process that loads the table.
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KPROXY_NODE_ENV, KPROXY_NODE_FLAGS } from '../test/harness/kproxy.ts';

const SELF = fileURLToPath(import.meta.url);
const AGENT_NODE_FLAGS = (process.env.KPROXY_BENCH_NODE_FLAGS ?? KPROXY_NODE_FLAGS.join(' ')).split(' ').filter(Boolean);
for (const [name, value] of Object.entries(KPROXY_NODE_ENV)) process.env[name] ??= value;
const ENDPOINTS = 10;
const SEED = 42;
const partialRounds = (services: number): number => (services > 10000 ? 3 : 5);

interface Partial {
  readonly change: string;
  readonly ms: number;
  /** Time inside the kernel transaction (netlink). */
  readonly nftMs: number;
  readonly operations: number;
  readonly file: string;
}

interface InnerResult {
  readonly services: number;
  readonly computeMs: number;
  readonly featureCheckMs: number;
  readonly fullSyncMs: number;
  readonly fullNftMs: number;
  readonly fullOperations: number;
  /** Peak RSS by the end of the first (full) sync. */
  readonly fullPeakRssMiB: number;
  readonly partial: readonly Partial[];
  readonly peakRssMiB: number;
}

interface RestartResult {
  readonly fullSyncMs: number;
  readonly operations: number;
  readonly peakRssMiB: number;
}

const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
};

// ---------------------------------------------------------------------------------------------------------------
// Inner: the agent, inside the node namespace.
/** The partial sync's changes, in order: one endpoint added, one removed, … */
const CHANGES = ['add', 'remove'] as const;

/** The store filled with the synthetic cluster (after the first `changes` endpoint changes), and its snapshot. */
async function ingest(services: number, changes = 0) {
  const { ClusterStore } = await import('../src/store/cluster-store.ts');
  const { defaultComputeOptions } = await import('../src/compute/options.ts');
  const { mutateOneEndpoint, syntheticCluster } = await import('../test/fixtures/synthetic.ts');
  const { SCALE_CLUSTER_CIDR } = await import('../test/harness/scale-node.ts');
  const cluster = syntheticCluster({ services, endpointsPerService: ENDPOINTS, nodeName: 'node-0', seed: SEED });
  for (let i = 0; i < changes; i++) mutateOneEndpoint(cluster, { change: CHANGES[i % 2] ?? 'add' });
  const store = new ClusterStore({ compute: { ...defaultComputeOptions('node-0'), clusterCIDRs: [SCALE_CLUSTER_CIDR] } });
  store.replaceAll('Node', [cluster.node]);
  store.replaceAll('Service', cluster.services);
  store.replaceAll('EndpointSlice', cluster.slices);
  store.synced();
  return { cluster, store, state: store.snapshot() };
}

async function inner(services: number, outDir: string): Promise<void> {
  const { silentLogger } = await import('../src/log.ts');
  const { defaultModeSettings } = await import('../src/config/index.ts');
  const { createNftablesProxy } = await import('../modes/nftables/apply.ts');
  const { compileFamilies } = await import('../modes/nftables/diff.ts');
  const { NetlinkKernel } = await import('../modes/nftables/kernel.ts');
  const { renderTransaction } = await import('../modes/nftables/render.ts');
  const { mutateOneEndpoint } = await import('../test/fixtures/synthetic.ts');
  type Kernel = import('../modes/nftables/kernel.ts').Kernel;
  type Transaction = import('../modes/nftables/transaction.ts').Transaction;
  // Transactions are timed, and kept to be written out as nft text after each partial sync (outside the timing), so
  // the outer process can replay them with `nft -f` for comparison. The first sync's table is created streamed, as
  // a whole: the outer process writes its text (the plan's) from the same cluster, so this process's RSS is the
  // agent's alone.
  const netlink = new NetlinkKernel();
  let kernelMs = 0;
  let pending: Transaction[] = [];
  const timed = async <T>(work: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    try {
      return await work();
    } finally {
      kernelMs += performance.now() - t0;
    }
  };
  const kernel: Kernel = {
    transact: (tx, sets) => { pending.push(tx); return timed(() => netlink.transact(tx, sets)); },
    stream: (family, table, bytes, write) => timed(() => netlink.stream(family, table, bytes, write)),
    generation: () => netlink.generation(),
    exists: (family, table) => netlink.exists(family, table),
    rules: (family, table, chains) => netlink.rules(family, table, chains),
    read: (family, table) => netlink.read(family, table),
    chains: (family, table) => netlink.chains(family, table),
    close: () => netlink.close(),
  };
  const record = (file: string): void => {
    const fd = openSync(file, 'w');
    try {
      for (const tx of pending) for (const piece of renderTransaction(tx)) writeSync(fd, piece);
    } finally {
      closeSync(fd);
    }
    pending = [];
  };
  const started = performance.now();
  const { cluster, store, state } = await ingest(services);
  const computeMs = performance.now() - started;
  const checkStart = performance.now();
  const proxy = await createNftablesProxy({ log: silentLogger(), settings: defaultModeSettings(), config: {}, kernel });
  const featureCheckMs = performance.now() - checkStart;
  pending = [];
  kernelMs = 0;
  const report = await proxy.sync(compileFamilies(state), { full: true });
  const fullSyncMs = performance.now() - started - featureCheckMs;
  const fullNftMs = kernelMs;
  pending = [];
  const fullPeakRssMiB = process.resourceUsage().maxRSS / 1024;
  const partial: Partial[] = [];
  for (let round = 0; round < partialRounds(services); round++) {
    for (const change of CHANGES) {
      const slice = mutateOneEndpoint(cluster, { change });
      const file = join(outDir, `partial-${services}-${round}-${change}.nft`);
      kernelMs = 0;
      const t0 = performance.now();
      store.upsert('EndpointSlice', slice);
      const result = await proxy.sync(compileFamilies(store.snapshot()), { full: false });
      partial.push({ change, ms: performance.now() - t0, nftMs: kernelMs, operations: result.stats?.['linesWritten'] ?? -1, file });
      record(file);
    }
  }
  await proxy.stop();
  const result: InnerResult = {
    services, computeMs, featureCheckMs, fullSyncMs, fullNftMs, fullOperations: report.stats?.['linesWritten'] ?? -1,
    partial, fullPeakRssMiB, peakRssMiB: process.resourceUsage().maxRSS / 1024,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

async function restart(services: number): Promise<void> {
  const { silentLogger } = await import('../src/log.ts');
  const { defaultModeSettings } = await import('../src/config/index.ts');
  const { createNftablesProxy } = await import('../modes/nftables/apply.ts');
  const { compileFamilies } = await import('../modes/nftables/diff.ts');
  const started = performance.now();
  // The cluster as the first agent left it: the same endpoint changes applied.
  const { state } = await ingest(services, partialRounds(services) * CHANGES.length);
  const proxy = await createNftablesProxy({ log: silentLogger(), settings: defaultModeSettings(), config: {} });
  const syncStart = performance.now();
  const report = await proxy.sync(compileFamilies(state), { full: true });
  const fullSyncMs = performance.now() - syncStart + (syncStart - started);
  await proxy.stop();
  const result: RestartResult = {
    fullSyncMs, operations: report.stats?.['linesWritten'] ?? -1,
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

// ---------------------------------------------------------------------------------------------------------------
// Outer: namespaces, raw loads, the upstream-shaped baseline, the data path, the table.
function sh(cmd: string, args: readonly string[], input?: Buffer): { ms: number; status: number; stdout: string; stderr: string } {
  const started = performance.now();
  const result = spawnSync(cmd, args, { input, maxBuffer: 1 << 30, encoding: 'buffer' });
  return { ms: performance.now() - started, status: result.status ?? -1, stdout: result.stdout?.toString() ?? '', stderr: result.stderr?.toString() ?? '' };
}

/** `nft -f FILE` in namespace `ns`: wall time and nft's peak RSS (GNU time). */
function nftLoad(ns: string, path: string): { ms: number; rssMiB: number } {
  const result = sh('ip', ['netns', 'exec', ns, '/usr/bin/time', '-f', 'maxrss=%M', 'nft', '-f', path]);
  if (result.status !== 0) throw new Error(`nft -f ${path} failed: ${result.stderr.trim().split('\n').slice(0, 4).join(' | ')}`);
  const kb = Number(/maxrss=(\d+)/.exec(result.stderr)?.[1] ?? NaN);
  return { ms: result.ms, rssMiB: kb / 1024 };
}

interface Row {
  readonly services: number;
  readonly inner: InnerResult;
  readonly restart: RestartResult;
  readonly raw: { ms: number; rssMiB: number };
  readonly upstream?: { ms: number; rssMiB: number; lines: number };
  readonly rawPartialMs: readonly number[];
  readonly rates: { first: number[]; last: number[]; firstIP: string; lastIP: string };
}

async function outer(quick: boolean): Promise<void> {
  const { addNamespace, deleteNamespace, sweepStaleNamespaces, uniquePrefix } = await import('../test/harness/netns.ts');
  const { createScaleNode } = await import('../test/harness/scale-node.ts');
  const { PROBE } = await import('../test/harness/cluster.ts');
  const { upstreamTransaction } = await import('./upstream-nftables.ts');
  if (process.getuid?.() !== 0) throw new Error('the nftables benchmark needs root (it creates network namespaces)');
  sweepStaleNamespaces();
  const only = process.env.KPROXY_BENCH_ONLY?.split(',').filter(Boolean).map(Number);
  const sizes = (quick ? [1000, 2000] : [1000, 10000, 20000]).filter((n) => !only || only.includes(n));
  const upstreamUpTo = Number(process.env.KPROXY_BENCH_UPSTREAM_MAX ?? 20000);
  const outDir = mkdtempSync(join(tmpdir(), 'kproxy-bench-nft-'));
  const rows: Row[] = [];
  try {
    for (const services of sizes) {
      const node = await createScaleNode();
      const rawNs = `${uniquePrefix()}-raw`;
      const scratch = async <T>(work: () => T): Promise<T> => {
        await addNamespace(rawNs);
        try {
          return work();
        } finally {
          await deleteNamespace(rawNs);
        }
      };
      try {
        const agent = (...args: string[]): string => {
          const child = sh('ip', ['netns', 'exec', node.nodeNs, process.execPath, '--expose-gc', ...AGENT_NODE_FLAGS, SELF, ...args]);
          if (child.status !== 0) throw new Error(`agent run failed (${args.join(' ')}): ${child.stderr.trim().split('\n').slice(-5).join(' | ')}`);
          return child.stdout.trim().split('\n').pop() ?? '{}';
        };
        const result = JSON.parse(agent('--inner', String(services), outDir)) as InnerResult;
        console.log(`  ${services} services: full sync ${fmt(result.fullSyncMs)} (nft ${fmt(result.fullNftMs)}), partial median ${fmt(median(result.partial.map((p) => p.ms)))}`);
        const restarted = JSON.parse(agent('--restart', String(services))) as RestartResult;
        const rates = await dataPath(services, node, PROBE);
        console.log(`  data path: first ${rates.firstIP} ${median(rates.first).toFixed(0)}/s, last ${rates.lastIP} ${median(rates.last).toFixed(0)}/s`);
        // The first sync's table as nft text (the plan of the same cluster), for nft -f to load the same.
        const fullFile = join(outDir, `full-${services}.nft`);
        {
          const { mode } = await import('../modes/nftables/index.ts');
          writeFileSync(fullFile, mode.render(mode.compile((await ingest(services)).state)).replace(/^#.*\n/gm, ''));
        }
        const { raw, rawPartialMs } = await scratch(() => ({ raw: nftLoad(rawNs, fullFile), rawPartialMs: result.partial.map((p) => nftLoad(rawNs, p.file).ms) }));
        let upstream: Row['upstream'];
        if (services <= upstreamUpTo) {
          const { state } = await ingest(services);
          const upstreamFile = join(outDir, `upstream-${services}.nft`);
          const text = upstreamTransaction(state, 'IPv4');
          writeFileSync(upstreamFile, text);
          console.log(`  loading the upstream-shaped layout (${services} services)…`);
          upstream = { ...await scratch(() => nftLoad(rawNs, upstreamFile)), lines: text.split('\n').length - 1 };
          rmSync(upstreamFile, { force: true });
        }
        rows.push({ services, inner: result, restart: restarted, raw, rawPartialMs, rates, ...(upstream ? { upstream } : {}) });
      } finally {
        await node.destroy();
      }
    }
  } finally {
    rmSync(outDir, { recursive: true, force: true });
  }
  printTable(rows);
}

/**
 * New TCP connections per second from the client pod to the first and the last service of the cluster (the first
 * and last TCP port 80 ClusterIP services with endpoints, in creation order), 5 rounds each, alternating.
 */
async function dataPath(services: number, node: Awaited<ReturnType<typeof import('../test/harness/scale-node.ts').createScaleNode>>, probe: string): Promise<Row['rates']> {
  const { state } = await ingest(services);
  const index = (name: string): number => Number(name.replace('svc-', ''));
  const candidates = state.families.IPv4.services
    .filter((s) => s.protocol === 'TCP' && s.port === 80 && s.routes.clusterIP.endpoints.length > 0 && !s.routes.clusterIP.affinity)
    .sort((a, b) => index(a.name) - index(b.name));
  const ipOf = (s: (typeof candidates)[number] | undefined): string => {
    const f = s?.frontends.find((x) => x.kind === 'ClusterIP');
    return f && f.kind === 'ClusterIP' ? f.ip : '';
  };
  const firstIP = ipOf(candidates[0]);
  const lastIP = ipOf(candidates.at(-1));
  const count = 4000;
  const rate = (ip: string): number => {
    const result = sh('ip', ['netns', 'exec', node.clientNs, process.execPath, probe, 'tcp', ip, '80', String(count), '8', '2000']);
    const summary = JSON.parse(result.stdout.trim().split('\n').pop() ?? '{}') as { answers: Record<string, number>; ms: number; errors: Record<string, number> };
    const answered = Object.values(summary.answers ?? {}).reduce((a, b) => a + b, 0);
    if (answered < count * 0.99) throw new Error(`data path to ${ip}: only ${answered} of ${count} answered (${JSON.stringify(summary.errors)})`);
    return answered / (summary.ms / 1000);
  };
  const first: number[] = [];
  const last: number[] = [];
  rate(firstIP); // warm up
  for (let round = 0; round < 5; round++) {
    first.push(rate(firstIP));
    last.push(rate(lastIP));
  }
  return { first, last, firstIP, lastIP };
}

const fmt = (ms: number): string => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`);
const mib = (value: number): string => `${value.toFixed(0)} MiB`;

function printTable(rows: readonly Row[]): void {
  console.log('\n| services × 10 eps | operations (full) | compute | full sync | of which the transaction | the same transaction by nft -f | upstream-shaped nft -f | upstream / full sync | agent peak RSS: first sync / after partials / restarted | nft peak RSS (kproxy text / upstream) |');
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const row of rows) {
    const i = row.inner;
    const up = row.upstream;
    console.log(`| ${row.services.toLocaleString('en')} | ${i.fullOperations.toLocaleString('en')} | ${fmt(i.computeMs)} | ${fmt(i.fullSyncMs)} | ${fmt(i.fullNftMs)} | `
      + `${fmt(row.raw.ms)} | ${up ? `${fmt(up.ms)} (${up.lines.toLocaleString('en')} lines)` : '—'} | ${up ? `**${(up.ms / i.fullSyncMs).toFixed(1)}×**` : '—'} | `
      + `${mib(i.fullPeakRssMiB)} / ${mib(i.peakRssMiB)} / ${mib(row.restart.peakRssMiB)} | ${mib(row.raw.rssMiB)} / ${up ? mib(up.rssMiB) : '—'} |`);
  }
  console.log('\n| services × 10 eps | one endpoint: operations (add / remove) | partial sync median (max) | of which the transaction | the same by nft -f | restart: full sync, operations | new connections/s: first / last service | last / first |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const row of rows) {
    const p = row.inner.partial;
    const ops = (change: string): string => [...new Set(p.filter((x) => x.change === change).map((x) => x.operations))].join(',');
    const firstRate = median(row.rates.first);
    const lastRate = median(row.rates.last);
    console.log(`| ${row.services.toLocaleString('en')} | ${ops('add')} / ${ops('remove')} | ${fmt(median(p.map((x) => x.ms)))} (${fmt(Math.max(...p.map((x) => x.ms)))}) | `
      + `${fmt(median(p.map((x) => x.nftMs)))} | ${fmt(median(row.rawPartialMs))} | ${fmt(row.restart.fullSyncMs)}, ${row.restart.operations} | `
      + `${firstRate.toFixed(0)} / ${lastRate.toFixed(0)} | **${(lastRate / firstRate).toFixed(2)}** |`);
  }
  console.log('\nfull sync = ingest + compute + compile + one netlink transaction in the node namespace of a fresh scale node (the first');
  console.log('sync of an agent; the start-up feature check is not included). nft -f = the same transaction as nft text into an empty namespace;');
  console.log('upstream-shaped = bench/upstream-nftables.ts for the same cluster, into an empty namespace, same run. Partial = one');
  console.log('endpoint added or removed (store update + compute + diff + netlink). Restart = a second agent on the filled namespace');
  console.log('(netlink read-back + diff + write). Connections: 4000 per round, 8 at a time, 5 rounds alternating, median.');
}

const args = process.argv.slice(2);
if (args[0] === '--inner') await inner(Number(args[1]), args[2] ?? tmpdir());
else if (args[0] === '--restart') await restart(Number(args[1]));
else await outer(args.includes('--quick') || process.env.KPROXY_BENCH_QUICK === '1');


