// One soak run: the real agent (bin/kproxy.js, as deployed) in a node namespace of its own, fed by a manifest file
// or by the test apiserver, under steady churn (churn.ts) for a while, sampled every 10 s: RSS and descriptors of
// every kproxy process, the agent's V8 heap and sync count (its /metrics), its descendants. judgeSoak (verdict.ts)
// decides. Used by `npm run bench soak` (the full matrix, 10 minutes a row) and by the CI guard (soak.test.ts).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { syntheticCluster, type SyntheticCluster } from '../fixtures/synthetic.ts';
import { namespaceTools } from '../harness/cluster.ts';
import { KPROXY_BIN, KPROXY_NODE_ENV, KPROXY_NODE_FLAGS } from '../harness/kproxy.ts';
import { addNamespace, deleteNamespace, nsRun, sweepStaleNamespaces, uniquePrefix } from '../harness/netns.ts';
import { processTreeUsage } from '../harness/process-tree.ts';
import { stopChildProcess } from '../harness/run.ts';
import { ControlPlane } from '../kube/apiserver.ts';
import { createNode } from '../kube/peers.ts';
import { adminFromKubeconfig, populate, type Admin } from '../../bench/apiserver-load.ts';
import { ApiserverTarget, Churn, DEFAULT_CHURN, ManifestFileTarget, type ChurnSchedule } from './churn.ts';
import { judgeSoak, type SoakSample, type SoakVerdict } from './verdict.ts';

export type SoakSource = 'manifests' | 'kube';

/** Flags each mode runs with in a soak; a new mode is one more entry. */
export const SOAK_MODES: Readonly<Record<string, readonly string[]>> = {
  // legacy: iptables-nft restores take minutes at 10k services (docs/benchmarks.md)
  iptables: ['--iptables-variant', 'legacy'],
  userspace: [],
  nftables: [],
};

export interface SoakOptions {
  readonly mode: string;
  readonly source: SoakSource;
  readonly services: number;
  readonly endpointsPerService?: number;
  /** Churn time, warm-up included. */
  readonly durationMs: number;
  readonly warmupMs: number;
  readonly rssFactor: number;
  readonly windowMs?: number;
  readonly sampleEveryMs?: number;
  readonly schedule?: ChurnSchedule;
  /** How the manifest file is rewritten (default: by rename). */
  readonly manifestEdit?: 'rename' | 'in-place';
  /** Progress lines (setup steps, one per sample). */
  readonly log?: (line: string) => void;
}

export interface SoakResult {
  readonly samples: readonly SoakSample[];
  readonly verdict: SoakVerdict;
  /** From start to the agent's first sync. */
  readonly setupMs: number;
  /** Warnings and errors the agent logged, by message: "count× message (first detail)". */
  readonly agentComplaints: readonly string[];
}

const NODE_NAME = 'soak-node';
const NODE_IP = '192.168.0.10';
const METRICS_URL = 'http://127.0.0.1:10249/metrics';
const OUTPUT_LIMIT = 256 * 1024;
let lockCounter = 0;

interface SourceSetup {
  readonly args: readonly string[];
  readonly churn: Churn;
  stop(): Promise<void>;
}

async function manifestSource(cluster: SyntheticCluster, options: SoakOptions, schedule: ChurnSchedule): Promise<SourceSetup> {
  const dir = mkdtempSync(join(tmpdir(), 'kproxy-soak-'));
  const file = join(dir, 'cluster.yaml');
  const target = new ManifestFileTarget(file, cluster, { inPlace: options.manifestEdit === 'in-place' });
  target.write();
  return {
    args: ['--manifests', file],
    churn: new Churn(cluster, target, NODE_NAME, schedule),
    stop: async () => rmSync(dir, { recursive: true, force: true }),
  };
}

async function kubeSource(cluster: SyntheticCluster, spawnInNs: (cmd: string, args: readonly string[]) => ChildProcess, schedule: ChurnSchedule, log: (line: string) => void): Promise<SourceSetup> {
  // 'typed' services (node ports, load balancers, health-check node ports) need the wider node-port range.
  const plane = await ControlPlane.start({ maxRequestsInflight: 3000, apiserverArgs: ['--enable-priority-and-fairness=false', '--service-node-port-range=30000-39999'] });
  let admin: Admin | undefined;
  try {
    admin = adminFromKubeconfig(plane.adminKubeconfig);
    const started = Date.now();
    await createNode(plane, NODE_NAME, [NODE_IP]);
    await populate(admin, cluster, 'typed');
    log(`apiserver holds ${cluster.services.length} services (${((Date.now() - started) / 1000).toFixed(0)} s)`);
    await plane.reachFrom(spawnInNs);
  } catch (error) {
    await admin?.close();
    await plane.stop();
    throw error;
  }
  const client = admin;
  return {
    args: ['--kubeconfig', plane.proxyKubeconfig],
    churn: new Churn(cluster, new ApiserverTarget(client), NODE_NAME, schedule),
    stop: async () => {
      await client.close();
      await plane.stop();
    },
  };
}

/** The numbers of the agent's /metrics a soak follows, read from inside its namespace. */
async function agentMetrics(ns: string): Promise<{ heapUsed?: number; heapTotal?: number; syncs?: number }> {
  const script = 'fetch(process.argv[1]).then((r) => r.text()).then((t) => process.stdout.write(t), () => {})';
  const result = await nsRun(ns, process.execPath, ['-e', script, METRICS_URL], { timeoutMs: 10_000, allowFailure: true });
  const value = (pattern: RegExp): number[] => [...result.stdout.matchAll(pattern)].map((m) => Number(m[1]));
  const [heapUsed] = value(/^nodejs_heap_size_used_bytes (\S+)$/gm);
  const [heapTotal] = value(/^nodejs_heap_size_total_bytes (\S+)$/gm);
  const counts = value(/^kubeproxy_sync_proxy_rules_duration_seconds_count\{[^}]*\} (\S+)$/gm);
  return {
    ...(heapUsed !== undefined && { heapUsed }),
    ...(heapTotal !== undefined && { heapTotal }),
    ...(counts.length > 0 && { syncs: Math.max(...counts) }), // one observation per family and sync
  };
}

/** Counts a JSON log line of level warn (40) or above by its message, keeping the first one whole. */
function noteComplaint(complaints: Map<string, { count: number; first: string; error: boolean }>, line: string): void {
  const level = /"level":(\d+)/.exec(line)?.[1];
  if (level === undefined || Number(level) < 40) return;
  const message = /"msg":"([^"]*)"/.exec(line)?.[1] ?? line.slice(0, 80);
  const seen = complaints.get(message);
  if (seen) seen.count++;
  else complaints.set(message, { count: 1, first: line, error: Number(level) >= 50 });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export async function runSoak(options: SoakOptions): Promise<SoakResult> {
  const modeArgs = SOAK_MODES[options.mode];
  if (modeArgs === undefined) throw new Error(`no soak settings for mode ${options.mode} (known: ${Object.keys(SOAK_MODES).join(', ')})`);
  const log = options.log ?? (() => undefined);
  const schedule = options.schedule ?? DEFAULT_CHURN;
  const sampleEveryMs = options.sampleEveryMs ?? 10_000;
  const started = Date.now();
  sweepStaleNamespaces();
  const ns = `${uniquePrefix()}-soak`;
  const tools = namespaceTools();
  const cluster = syntheticCluster({ services: options.services, endpointsPerService: options.endpointsPerService ?? 10, nodeName: NODE_NAME, seed: 16 });
  const lockFile = `/run/kproxy-xtables-${process.pid}-soak${lockCounter++}.lock`;
  let source: SourceSetup | undefined;
  let agent: ChildProcess | undefined;
  let output = '';
  const complaints = new Map<string, { count: number; first: string; error: boolean }>();
  const tail = (): string => output.trim().split('\n').slice(-10).join('\n');
  try {
    await addNamespace(ns);
    source = options.source === 'manifests'
      ? await manifestSource(cluster, options, schedule)
      : await kubeSource(cluster, (cmd, args) => tools.spawn(ns, cmd, args), schedule, log);
    agent = tools.spawn(ns, process.execPath, [
      ...KPROXY_NODE_FLAGS, KPROXY_BIN, '--proxy-mode', options.mode, ...modeArgs, ...source.args,
      '--hostname-override', NODE_NAME, '--cluster-cidr', '10.244.0.0/16', '--min-sync-period', '0s',
      '--healthz-bind-address', '127.0.0.1:10256', '--metrics-bind-address', '127.0.0.1:10249',
    ], { ...KPROXY_NODE_ENV, XTABLES_LOCKFILE: lockFile });
    let partial = '';
    const keep = (data: Buffer): void => {
      output += data.toString();
      if (output.length > 2 * OUTPUT_LIMIT) output = output.slice(-OUTPUT_LIMIT);
      const lines = (partial + data.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) noteComplaint(complaints, line);
    };
    agent.stdout?.on('data', keep);
    agent.stderr?.removeAllListeners('data');
    agent.stderr?.on('data', keep);
    const running = agent;
    const alive = (): void => {
      if (running.exitCode !== null || running.signalCode !== null) throw new Error(`kproxy exited (${running.exitCode ?? running.signalCode}):\n${tail()}`);
    };

    // The first sync: everything loaded and programmed (minutes at 10k services in some modes).
    for (const deadline = Date.now() + 15 * 60_000; ((await agentMetrics(ns)).syncs ?? 0) < 1; await sleep(1000)) {
      alive();
      if (Date.now() > deadline) throw new Error(`kproxy did not sync within 15 minutes:\n${tail()}`);
    }
    const setupMs = Date.now() - started;
    log(`${options.mode}/${options.source}/${options.services}: first sync after ${(setupMs / 1000).toFixed(0)} s; churn for ${options.durationMs / 1000} s`);

    const samples: SoakSample[] = [];
    const churn = source.churn;
    const churnStarted = Date.now();
    const sample = async (): Promise<void> => {
      alive();
      const usage = processTreeUsage(running.pid ?? -1);
      const metrics = await agentMetrics(ns);
      const taken: SoakSample = {
        atMs: Date.now() - churnStarted, rssKiB: usage.rssKiB, heapUsedBytes: metrics.heapUsed, heapTotalBytes: metrics.heapTotal,
        fds: usage.fds, nodeProcesses: usage.nodeProcesses, descendants: usage.descendants, syncs: metrics.syncs, changes: churn.changes(),
      };
      samples.push(taken);
      log(`  ${String(Math.round(taken.atMs / 1000)).padStart(4)} s  RSS ${(taken.rssKiB / 1024).toFixed(0)} MiB (${taken.nodeProcesses} processes)`
        + `  heap ${((taken.heapUsedBytes ?? NaN) / 2 ** 20).toFixed(0)}/${((taken.heapTotalBytes ?? NaN) / 2 ** 20).toFixed(0)} MiB`
        + `  fds ${taken.fds}  children ${taken.descendants}  syncs ${taken.syncs ?? '?'}  changes ${taken.changes}`);
    };
    churn.start();
    try {
      await sample();
      while (Date.now() - churnStarted < options.durationMs) {
        await sleep(Math.max(0, sampleEveryMs * (samples.length) - (Date.now() - churnStarted)));
        const failed = churn.failure();
        if (failed) throw new Error(`churn failed: ${failed.message}`);
        await sample();
      }
    } finally {
      await churn.stop();
    }
    const errors = [...complaints.values()].filter((c) => c.error).reduce((sum, c) => sum + c.count, 0);
    const verdict = judgeSoak(samples, { warmupMs: options.warmupMs, rssFactor: options.rssFactor, windowMs: options.windowMs ?? 60_000 }, errors);
    const agentComplaints = [...complaints].map(([message, { count, first }]) => `${count}× ${message} (${first.slice(0, 300)})`);
    return { samples, verdict, setupMs, agentComplaints };
  } finally {
    if (agent && agent.exitCode === null && agent.signalCode === null) {
      const child = agent;
      await stopChildProcess(child, new Promise((resolve) => child.once('exit', resolve)), 'SIGTERM', 10_000);
    }
    await deleteNamespace(ns);
    await source?.stop();
    rmSync(lockFile, { force: true });
  }
}
