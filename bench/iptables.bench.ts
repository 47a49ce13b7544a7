// iptables mode benchmark (`npm run bench`, or `node --expose-gc bench/iptables.bench.ts [--quick]`).
// For N synthetic services × 10 endpoints, in throwaway network namespaces (never the root namespace):
//   - full sync (compute + compile + render + apply, the first sync of a fresh agent) vs a raw
//     `iptables-restore --noflush` of the very same text into another empty namespace (the kernel's floor);
//   - one endpoint added / removed: lines written and time vs the raw restore of the same lines on top of the
//     same rules;
//   - peak RSS of the agent process;
//   - restart (iptables-legacy, up to 10k): a second, fresh agent process started in the namespace that already holds
//     the ruleset (as after `kill` + restart): its full sync (which reads the node's state with iptables-save first)
//     and its peak RSS.
// The agent side runs in a child process inside the first namespace (`--inner`), so RSS is its alone and its tools
// run without `ip netns exec`; the raw restores are run from here through `ip netns exec` (a few ms each).
// iptables-nft is measured at 1k only: its restores take minutes at 10k (see shared/recipes/netns-cluster).
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KPROXY_NODE_ENV, KPROXY_NODE_FLAGS } from '../test/harness/kproxy.ts';
import type { CommandInput } from '../kit/exec.ts';

const SELF = fileURLToPath(import.meta.url);
/**
 * V8 flags of the agent process. Node 24's young generation grows to 128 MiB committed under the allocation
 * bursts of a 10k-service ingest and keeps it (RSS ≈ 300 MiB before the mode even runs); the agent is meant to
 * run with a small semi-space (see docs/benchmarks.md). KPROXY_BENCH_NODE_FLAGS='' measures V8's defaults.
 */
const AGENT_NODE_FLAGS = (process.env.KPROXY_BENCH_NODE_FLAGS ?? KPROXY_NODE_FLAGS.join(' ')).split(' ').filter(Boolean);
// The agent's environment from the shebang too (read by the agent child processes at their start).
for (const [name, value] of Object.entries(KPROXY_NODE_ENV)) process.env[name] ??= value;
const ENDPOINTS = 10;
/** Rounds of (add one endpoint, remove one endpoint); fewer at 20k, where every legacy restore takes long. */
const partialRounds = (services: number): number => (services > 10000 ? 1 : 3);

interface InnerResult {
  readonly services: number;
  readonly variant: string;
  readonly computeMs: number;
  readonly fullSyncMs: number;
  /** Time spent inside iptables-save/-restore during the full sync. */
  readonly fullToolsMs: number;
  readonly fullLines: number;
  readonly partial: ReadonlyArray<{ readonly change: string; readonly ms: number; readonly lines: number; readonly file: string }>;
  readonly fullFile: string;
  readonly peakRssMiB: number;
}

/** The restart step: a fresh agent's first sync against a namespace that already holds the ruleset. */
interface RestartResult {
  readonly fullSyncMs: number;
  /** Time inside iptables-save (reading the node's state) and iptables-restore. */
  readonly saveMs: number;
  readonly restoreMs: number;
  readonly fullLines: number;
  /** RSS just before the sync (after store ingest) and the process's peak. */
  readonly rssBeforeSyncMiB: number;
  readonly peakRssMiB: number;
}

/** Whether a row also measures a restart: legacy only (nft restores take minutes at 10k), and not at 20k (time). */
const measuresRestart = (services: number, variant: string): boolean =>
  variant === 'legacy' && services <= 10000 && process.env.KPROXY_BENCH_RESTART !== '0';

const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
};

// ---------------------------------------------------------------------------------------------------------------
// Inner: the agent, inside the namespace.
async function inner(services: number, variant: 'legacy' | 'nft', outDir: string): Promise<void> {
  const { silentLogger } = await import('../src/log.ts');
  const { defaultModeSettings } = await import('../src/config/index.ts');
  const { createIptablesProxy } = await import('../modes/iptables/apply.ts');
  const { compileFamilies } = await import('../modes/iptables/compile.ts');
  const { runCommand } = await import('../kit/exec.ts');
  const { mutateOneEndpoint, syntheticCluster } = await import('../test/fixtures/synthetic.ts');

  const nodeName = 'node-0';
  const cluster = syntheticCluster({ services, endpointsPerService: ENDPOINTS, nodeName, seed: 42 });
  // Record every restore input (to replay it raw) and the time spent in the tools.
  // Restore inputs go straight to a file (keeping them in memory would inflate the agent's RSS).
  let restoreFile = join(outDir, `full-${services}-${variant}.txt`);
  writeFileSync(restoreFile, '');
  let toolsMs = 0;
  const verbose = process.env.KPROXY_BENCH_VERBOSE === '1';
  // A streamed input is copied to the file piece by piece as the tool pulls it (never held whole).
  const recorded = (input: CommandInput): CommandInput => {
    const fd = openSync(restoreFile, 'a');
    if (typeof input === 'string') {
      writeSync(fd, input);
      closeSync(fd);
      return input;
    }
    if (!(Symbol.iterator in input)) throw new Error('the benchmark records synchronous restore input only');
    return (function* () {
      try {
        for (const piece of input) {
          writeSync(fd, piece);
          yield piece;
        }
      } finally {
        closeSync(fd);
      }
    })();
  };
  const run: typeof runCommand = async (cmd, args, input, options) => {
    const started = performance.now();
    const result = await runCommand(cmd, args, cmd.includes('restore') && input !== undefined ? recorded(input) : input, options);
    toolsMs += performance.now() - started;
    if (verbose) console.error(`${cmd} ${args.join(' ')}: ${(performance.now() - started).toFixed(0)} ms, rss ${(process.memoryUsage().rss / 1048576).toFixed(0)} MiB`);
    return result;
  };

  const fullStart = performance.now();
  const { store, state } = await ingest(cluster, nodeName);
  const computeMs = performance.now() - fullStart;
  const proxy = await createIptablesProxy({ log: silentLogger(), settings: defaultModeSettings(), config: { variant }, run });
  toolsMs = 0; // variant and family probes are start-up costs, not part of a sync
  const report = await proxy.sync(compileFamilies(state), { full: true });
  const fullSyncMs = performance.now() - fullStart;
  const fullToolsMs = toolsMs;
  const fullFile = restoreFile;

  const partial: Array<{ change: string; ms: number; lines: number; file: string }> = [];
  for (let round = 0; round < partialRounds(services); round++) {
    for (const change of ['add', 'remove'] as const) {
      const slice = mutateOneEndpoint(cluster, { change });
      const file = join(outDir, `partial-${services}-${variant}-${round}-${change}.txt`);
      writeFileSync(file, '');
      restoreFile = file;
      const started = performance.now();
      store.upsert('EndpointSlice', slice);
      const result = await proxy.sync(compileFamilies(store.snapshot()), { full: false });
      const ms = performance.now() - started;
      partial.push({ change, ms, lines: result.stats?.['linesWritten'] ?? -1, file });
    }
  }
  const result: InnerResult = {
    services, variant, computeMs, fullSyncMs, fullToolsMs, fullLines: report.stats?.['linesWritten'] ?? -1,
    partial, fullFile, peakRssMiB: process.resourceUsage().maxRSS / 1024,
  };
  process.stdout.write(JSON.stringify(result) + '\n');
}

/** The store filled with the synthetic cluster, and its first snapshot (what a starting agent computes). */
async function ingest(cluster: import('../test/fixtures/synthetic.ts').SyntheticCluster, nodeName: string) {
  const { ClusterStore } = await import('../src/store/cluster-store.ts');
  const { defaultComputeOptions } = await import('../src/compute/options.ts');
  const store = new ClusterStore({ compute: { ...defaultComputeOptions(nodeName), clusterCIDRs: ['10.244.0.0/16'] } });
  store.replaceAll('Node', [cluster.node]);
  store.replaceAll('Service', cluster.services);
  store.replaceAll('EndpointSlice', cluster.slices);
  store.synced();
  return { store, state: store.snapshot() };
}

// ---------------------------------------------------------------------------------------------------------------
// Restart: a second agent, inside the namespace the first one filled (the same synthetic cluster).
async function restart(services: number, variant: 'legacy' | 'nft'): Promise<void> {
  const { silentLogger } = await import('../src/log.ts');
  const { defaultModeSettings } = await import('../src/config/index.ts');
  const { createIptablesProxy } = await import('../modes/iptables/apply.ts');
  const { compileFamilies } = await import('../modes/iptables/compile.ts');
  const { runCommand } = await import('../kit/exec.ts');
  const { syntheticCluster } = await import('../test/fixtures/synthetic.ts');
  const nodeName = 'node-0';
  const cluster = syntheticCluster({ services, endpointsPerService: ENDPOINTS, nodeName, seed: 42 });
  let saveMs = 0;
  let restoreMs = 0;
  const run: typeof runCommand = async (cmd, args, input, options) => {
    const started = performance.now();
    const result = await runCommand(cmd, args, input, options);
    if (cmd.endsWith('-save')) saveMs += performance.now() - started;
    else if (cmd.endsWith('-restore')) restoreMs += performance.now() - started;
    if (process.env.KPROXY_BENCH_VERBOSE === '1') {
      const m = process.memoryUsage();
      console.error(`${cmd} ${args.join(' ')}: ${(performance.now() - started).toFixed(0)} ms, rss ${mib(m.rss / 1048576)} (peak ${mib(process.resourceUsage().maxRSS / 1024)}), `
        + `heap ${mib(m.heapUsed / 1048576)}/${mib(m.heapTotal / 1048576)}, external ${mib(m.external / 1048576)}`);
    }
    return result;
  };
  const fullStart = performance.now();
  const { state } = await ingest(cluster, nodeName);
  const proxy = await createIptablesProxy({ log: silentLogger(), settings: defaultModeSettings(), config: { variant }, run });
  const rssBeforeSyncMiB = process.memoryUsage().rss / 1048576;
  saveMs = 0;
  restoreMs = 0;
  const report = await proxy.sync(compileFamilies(state), { full: true });
  const result: RestartResult = {
    fullSyncMs: performance.now() - fullStart, saveMs, restoreMs, fullLines: report.stats?.['linesWritten'] ?? -1,
    rssBeforeSyncMiB, peakRssMiB: process.resourceUsage().maxRSS / 1024,
  };
  process.stdout.write(JSON.stringify(result) + '\n');
}

// ---------------------------------------------------------------------------------------------------------------
// Outer: namespaces, raw restores, the table.
function sh(cmd: string, args: readonly string[], input?: Buffer): { ms: number; status: number; stdout: string; stderr: string } {
  const started = performance.now();
  const result = spawnSync(cmd, args, { input, maxBuffer: 1 << 30, encoding: 'buffer' });
  const ms = performance.now() - started;
  return { ms, status: result.status ?? -1, stdout: result.stdout?.toString() ?? '', stderr: result.stderr?.toString() ?? '' };
}

function rawRestore(ns: string, variant: string, file: string): number {
  const text = readFileSync(file);
  if (text.length === 0) return 0;
  const result = sh('ip', ['netns', 'exec', ns, `iptables-${variant}-restore`, '--noflush', '-w', '5'], text);
  if (result.status !== 0) throw new Error(`raw restore of ${file} failed: ${result.stderr.trim()}`);
  return result.ms;
}

interface Row {
  readonly services: number;
  readonly variant: string;
  readonly inner: InnerResult;
  readonly rawFullMs: number;
  readonly rawPartialMs: readonly number[];
  readonly restart?: RestartResult;
}

async function outer(quick: boolean): Promise<void> {
  const { addNamespace, deleteNamespace, sweepStaleNamespaces, uniquePrefix } = await import('../test/harness/netns.ts');
  if (process.getuid?.() !== 0) throw new Error('the iptables benchmark needs root (it creates network namespaces)');
  sweepStaleNamespaces();
  // KPROXY_BENCH_ONLY=10000:legacy (comma-separated) runs only those rows.
  const only = process.env.KPROXY_BENCH_ONLY?.split(',').filter(Boolean);
  const plan: Array<[number, 'legacy' | 'nft']> = (quick
    ? [[1000, 'legacy'], [2000, 'legacy']] as Array<[number, 'legacy' | 'nft']>
    : [[1000, 'legacy'], [1000, 'nft'], [10000, 'legacy'], [20000, 'legacy']] as Array<[number, 'legacy' | 'nft']>)
    .filter(([services, variant]) => !only || only.includes(`${services}:${variant}`));
  const outDir = mkdtempSync(join(tmpdir(), 'kproxy-bench-'));
  const rows: Row[] = [];
  try {
    for (const [services, variant] of plan) {
      const prefix = uniquePrefix();
      const agentNs = `${prefix}-agent`;
      const rawNs = `${prefix}-raw`;
      await addNamespace(agentNs);
      await addNamespace(rawNs);
      try {
        const agent = (...args: string[]): string => {
          const child = sh('ip', ['netns', 'exec', agentNs, process.execPath, '--expose-gc', ...AGENT_NODE_FLAGS, SELF, ...args]);
          if (child.status !== 0) throw new Error(`agent run failed (${args.join(' ')}): ${child.stderr.trim().split('\n').slice(-5).join(' | ')}`);
          if (process.env.KPROXY_BENCH_VERBOSE === '1') process.stderr.write(child.stderr);
          return child.stdout.trim().split('\n').pop() ?? '{}';
        };
        const result = JSON.parse(agent('--inner', String(services), variant, outDir)) as InnerResult;
        // The first agent exited (as after `kill`): its rules stay in agentNs for the restarted one.
        const restarted = measuresRestart(services, variant) ? JSON.parse(agent('--restart', String(services), variant)) as RestartResult : undefined;
        const rawFullMs = rawRestore(rawNs, variant, result.fullFile);
        const rawPartialMs = result.partial.map((p) => rawRestore(rawNs, variant, p.file));
        rows.push({ services, variant, inner: result, rawFullMs, rawPartialMs, ...(restarted ? { restart: restarted } : {}) });
        printRow(rows[rows.length - 1]!);
      } finally {
        await deleteNamespace(agentNs);
        await deleteNamespace(rawNs);
      }
    }
  } finally {
    rmSync(outDir, { recursive: true, force: true });
  }
  printTable(rows);
}

const fmt = (ms: number): string => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`);

function printRow(row: Row): void {
  console.log(`  ${row.services} services (${row.variant}): full sync ${fmt(row.inner.fullSyncMs)}, raw ${fmt(row.rawFullMs)}`);
}

const mib = (value: number): string => `${value.toFixed(0)} MiB`;

function printTable(rows: readonly Row[]): void {
  console.log('\n| services × 10 eps | variant | rules lines (full) | compute | full sync | raw restore | ratio | full sync / own restore | partial lines (add/remove) | partial sync (median) | raw partial (median) | ratio | peak RSS |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const row of rows) {
    const adds = row.inner.partial.filter((p) => p.change === 'add');
    const removes = row.inner.partial.filter((p) => p.change === 'remove');
    const partialMs = median(row.inner.partial.map((p) => p.ms));
    const rawPartial = median(row.rawPartialMs);
    console.log(`| ${row.services.toLocaleString('en')} | ${row.variant} | ${row.inner.fullLines.toLocaleString('en')} | ${fmt(row.inner.computeMs)} | `
      + `${fmt(row.inner.fullSyncMs)} | ${fmt(row.rawFullMs)} | ${(row.inner.fullSyncMs / row.rawFullMs).toFixed(2)}× | `
      + `${(row.inner.fullSyncMs / row.inner.fullToolsMs).toFixed(2)}× | `
      + `${median(adds.map((p) => p.lines))} / ${median(removes.map((p) => p.lines))} | ${fmt(partialMs)} | ${fmt(rawPartial)} | `
      + `${(partialMs / rawPartial).toFixed(2)}× | ${row.inner.peakRssMiB.toFixed(0)} MiB |`);
  }
  console.log('\nfull sync = compute + compile + render + iptables-save + iptables-restore in a fresh namespace (first sync of an agent);');
  console.log('raw restore = iptables-restore --noflush of the same text into an empty namespace; "own restore" = time the agent spent in');
  console.log('iptables-save/-restore during its full sync (same run, immune to load changes between runs). Partial: one endpoint added or removed,');
  console.log('3 rounds each (1 at 20k), store update + compute + compile + diff + restore, vs the raw restore of the same lines.');
  const restarts = rows.filter((row) => row.restart !== undefined);
  if (restarts.length === 0) return;
  console.log('\n| restart: services × 10 eps | variant | full sync | of which iptables-save | iptables-restore | lines | RSS before sync | peak RSS | first agent peak RSS |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const row of restarts) {
    const r = row.restart!;
    console.log(`| ${row.services.toLocaleString('en')} | ${row.variant} | ${fmt(r.fullSyncMs)} | ${fmt(r.saveMs)} | ${fmt(r.restoreMs)} | ${r.fullLines.toLocaleString('en')} | `
      + `${mib(r.rssBeforeSyncMiB)} | ${mib(r.peakRssMiB)} | ${mib(row.inner.peakRssMiB)} |`);
  }
  console.log('\nrestart = a second, fresh agent process in the namespace the first one filled (as after kill + restart): store ingest +');
  console.log('compute + iptables-save of the node\'s state + the streamed full restore; RSS before sync = after store ingest.');
}

const args = process.argv.slice(2);
if (args[0] === '--inner') {
  await inner(Number(args[1]), args[2] === 'nft' ? 'nft' : 'legacy', args[3] ?? tmpdir());
} else if (args[0] === '--restart') {
  await restart(Number(args[1]), args[2] === 'nft' ? 'nft' : 'legacy');
} else {
  await outer(args.includes('--quick') || process.env.KPROXY_BENCH_QUICK === '1');
}
