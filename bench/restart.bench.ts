// What a client sees while kproxy is replaced on a node, per mode, in a namespace cluster (root; test/harness):
// a pod opens a new connection to a ClusterIP every INTERVAL_MS throughout, and
//   restart: SIGTERM to the running agent, then a new one started once it exited (a DaemonSet with maxSurge 0:
//            the old pod goes, then the new one comes). Measured: stop (SIGTERM → exit), start (spawn → /healthz
//            200), the connections refused or failed and the window they span (first to last failure);
//   surge:   a new agent started while the old one still runs (maxSurge 1: its relay processes join the old ones'
//            SO_REUSEPORT groups; its health server takes another port here), the old one stopped once the new one
//            has applied its first sync. Measured: failed connections during the hand-over.
// Run: npm run bench restart (BENCH_ROUNDS, default 5; BENCH_MODES, default "iptables,nftables,userspace").
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createCluster, healthzUrl, NODE_IP, startKproxy, writeManifests,
  type Cluster, type KproxyProcess, type TimelineAttempt,
} from '../test/harness/index.ts';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const MODES = (process.env.BENCH_MODES ?? 'iptables,nftables,userspace').split(',');
const INTERVAL_MS = 5;
const PORT = 8080;
const VIP = '10.96.0.10';
/** The surge agent's health server (the first one holds the standard port, as on a node). */
const SURGE_HEALTH = `${NODE_IP}:10257`;

const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
};

interface Failures {
  readonly failed: number;
  /** From the first failed connection's start to the last one's (0: none failed). */
  readonly windowMs: number;
  readonly errors: string;
}

function failuresOf(attempts: readonly TimelineAttempt[]): Failures {
  const failed = attempts.filter(([, , error]) => error !== null);
  const first = failed[0]?.[0];
  const last = failed.at(-1)?.[0];
  const counts = new Map<string, number>();
  for (const [, , error] of failed) counts.set(error ?? '', (counts.get(error ?? '') ?? 0) + 1);
  return {
    failed: failed.length,
    windowMs: first === undefined || last === undefined ? 0 : last - first + INTERVAL_MS,
    errors: [...counts].map(([e, n]) => `${e} ${n}`).join(', '),
  };
}

function agent(cluster: Cluster, mode: string, manifests: string, health?: string): KproxyProcess {
  return startKproxy(cluster, {
    mode, manifests,
    args: ['--metrics-bind-address', '', ...(mode === 'iptables' ? ['--iptables-variant', 'legacy'] : []),
      ...(health ? ['--healthz-bind-address', health] : [])],
  });
}

/** When /healthz at `url` first answers 200, seen from the client pod (polled every 20 ms by one process). */
async function healthyAt(cluster: Cluster, url: string): Promise<{ ready: Promise<void>; at: Promise<number> }> {
  const burst = cluster.burst(cluster.client.ns, { wait: { kind: 'healthz', url }, count: 0, targets: [], waitTimeoutMs: 30_000 });
  await burst.ready;
  return { ready: burst.ready, at: burst.result.then((r) => r.signalledAt ?? NaN) };
}

async function measure(mode: string): Promise<void> {
  const cluster = await createCluster({ pods: 3, podPorts: [PORT], ipv6: false });
  const dir = mkdtempSync(join(tmpdir(), 'kproxy-restart-bench-'));
  const manifests = join(dir, 'cluster.yaml');
  let running: KproxyProcess | undefined;
  try {
    writeManifests(manifests, [{ name: 'web', clusterIP: VIP, ports: [{ port: 80, targetPort: PORT }], endpoints: cluster.pods.map((pod) => ({ pod })) }],
      [{ name: 'node1', ip: NODE_IP }]);
    running = agent(cluster, mode, manifests);
    await running.waitHealthy(30_000);
    const restarts: { stop: number; start: number; f: Failures }[] = [];
    const surges: Failures[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      // restart
      const timeline = cluster.timeline(cluster.client.ns, VIP, 80, { durationMs: 10_000, intervalMs: INTERVAL_MS, timeoutMs: 1000 });
      await new Promise((r) => setTimeout(r, 1000));
      const t0 = Date.now();
      await running.stop('SIGTERM');
      const stopped = Date.now();
      const healthy = await healthyAt(cluster, healthzUrl());
      const spawned = Date.now();
      running = agent(cluster, mode, manifests);
      const start = (await healthy.at) - spawned;
      const f = failuresOf(await timeline);
      restarts.push({ stop: stopped - t0, start, f });
      console.log(`${mode} restart ${round + 1}: stop ${stopped - t0} ms, start → /healthz 200 ${start} ms; failed ${f.failed} over ${f.windowMs} ms (${f.errors || 'none'})`);

      // surge: the new agent first, then the old one goes
      const handover = cluster.timeline(cluster.client.ns, VIP, 80, { durationMs: 10_000, intervalMs: INTERVAL_MS, timeoutMs: 1000 });
      await new Promise((r) => setTimeout(r, 500));
      const surgeHealthy = await healthyAt(cluster, `http://${SURGE_HEALTH}/healthz`);
      const next = agent(cluster, mode, manifests, SURGE_HEALTH);
      await surgeHealthy.at;
      await running.stop('SIGTERM');
      running = next;
      const s = failuresOf(await handover);
      surges.push(s);
      console.log(`${mode} surge ${round + 1}: failed ${s.failed} over ${s.windowMs} ms (${s.errors || 'none'})`);
      // Back to one agent on the standard health port for the next round.
      await running.stop('SIGTERM');
      running = agent(cluster, mode, manifests);
      await running.waitHealthy(30_000);
    }
    console.log(`${mode}: medians of ${ROUNDS} — stop ${median(restarts.map((r) => r.stop))} ms, start → serving ${median(restarts.map((r) => r.start))} ms, ` +
      `restart refused window ${median(restarts.map((r) => r.f.windowMs))} ms (${median(restarts.map((r) => r.f.failed))} failed of one attempt per ${INTERVAL_MS} ms); ` +
      `surge hand-over failed ${median(surges.map((s) => s.failed))} (max ${Math.max(...surges.map((s) => s.failed))})`);
  } finally {
    await running?.stop('SIGKILL');
    await cluster.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

for (const mode of MODES) await measure(mode);
