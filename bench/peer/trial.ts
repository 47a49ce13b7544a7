// One proxy's run in the peer benchmark: a fresh node namespace against the loaded apiserver; start → all rules in
// the kernel, single changes → kernel, a burst → kernel, the data path to the first and last service, CPU and RSS,
// and CPU while idle. Every time comes from the kernel (the nat table's entry count, polled by getsockopt), never
// from logs; after each phase one listing of the table checks that it holds what it must.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TableSample, TableWatch } from '../../test/harness/table-watch.ts';
import { createScaleNode, SCALE_CLUSTER_CIDR, type ScaleNode } from '../../test/harness/scale-node.ts';
import type { ControlPlane } from '../../test/kube/apiserver.ts';
import { startPeer, type PeerKind, type PeerMode, type PeerProcess } from '../../test/kube/peers.ts';
import type { Admin } from '../apiserver-load.ts';
import { applyChange, revertAll, revertChange, type ChangePlan, type SliceChange } from './changes.ts';
import type { DispatchRule, KernelView, Listing } from './kernel-view.ts';

export interface TrialContext {
  readonly plane: ControlPlane;
  readonly admin: Admin;
  readonly mode: PeerMode;
  readonly view: KernelView;
  readonly nodeName: string;
  readonly plan: ChangePlan;
  /** Cluster IPs that must be in the dispatch chain once programmed (services with a serving endpoint). */
  readonly expectedClusterIPs: readonly string[];
  /** The first and last TCP service port of the cluster, for modes whose lookup has no order (nftables maps). */
  readonly firstAndLast: readonly DispatchRule[];
  readonly minSyncPeriodMs: number;
  readonly burstSeconds: number;
  readonly idleSeconds: number;
  /** New connections per measurement of the data path. */
  readonly connections: number;
  readonly workDir: string;
  readonly log: (line: string) => void;
}

export interface TrialResult {
  readonly kind: PeerKind;
  readonly startSeconds: number;
  /** Rules in the kernel once programmed (see Listing.rules). */
  readonly kernelRules: number;
  /** Milliseconds from each PATCH to the kernel, in the order made. */
  readonly changeMs: readonly number[];
  /** From the last PATCH of the burst (and from its first) until the kernel held every change. */
  readonly burstCatchUpSeconds: number;
  readonly burstTotalSeconds: number;
  readonly cpuSeconds: number;
  readonly peakRssMiB: number;
  readonly idleCpuSeconds: number | undefined;
  /** New connections per second to the first and the last service of the dispatch chain. */
  readonly connFirst: number;
  readonly connLast: number;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const inServiceRange = (ip: string): boolean => ip.startsWith('10.96.');

/**
 * Wait until the table is steady (no change for `quietMs`, grown past `floor`) and `holds` its listing, re-checking
 * after every further change; resolve with the first sample at or after `since` that had the final entry count.
 */
async function settle(context: TrialContext, watch: TableWatch, peer: PeerProcess, node: ScaleNode, options: {
  since: number; floor: number; quietMs: number; timeoutMs: number; holds: (nat: Listing) => string | undefined;
}): Promise<{ sample: TableSample; nat: Listing }> {
  const deadline = Date.now() + options.timeoutMs;
  let checkedAt = -1;
  let problem = 'nothing programmed yet';
  while (Date.now() < deadline) {
    if (peer.exited() !== undefined) throw new Error(`${peer.kind} exited (${peer.exited()}):\n${peer.output().slice(-3000)}`);
    const last = watch.current();
    if (last.entries > options.floor && Date.now() - last.at >= options.quietMs && last.at !== checkedAt) {
      checkedAt = last.at;
      const nat = await context.view.read(node.nodeNs, inServiceRange);
      const missing = options.holds(nat);
      if (missing === undefined && watch.current().at === last.at) {
        const first = watch.history.find((s) => s.at >= options.since && s.entries === last.entries) ?? last;
        return { sample: first, nat };
      }
      problem = missing ?? 'changed while listed';
    }
    await sleep(250);
  }
  throw new Error(`${peer.kind}: the kernel did not settle within ${options.timeoutMs / 1000} s (${problem})`);
}

const missingOf = (what: string, wanted: readonly string[], have: ReadonlySet<string>): string | undefined => {
  const missing = wanted.filter((ip) => !have.has(ip));
  return missing.length === 0 ? undefined : `${missing.length} ${what} missing, e.g. ${missing.slice(0, 3).join(' ')}`;
};

/** One change → the first kernel sample that differs from the count before it. */
async function timedChange(watch: TableWatch, peer: PeerProcess, apply: () => Promise<unknown>): Promise<number> {
  const before = watch.current().entries;
  const sent = Date.now();
  await apply();
  try {
    const seen = await watch.until((entries) => entries !== before, { since: sent, timeoutMs: 300_000 });
    return seen.at - sent;
  } catch (error) {
    throw new Error(`${peer.kind}: a change did not reach the kernel (${(error as Error).message})`);
  }
}

async function measureChanges(context: TrialContext, watch: TableWatch, peer: PeerProcess): Promise<number[]> {
  const latencies: number[] = [];
  const gapMs = context.minSyncPeriodMs + 100;
  for (const [i, change] of context.plan.pairs.entries()) {
    latencies.push(await timedChange(watch, peer, () => applyChange(context.admin, change)));
    await sleep(gapMs);
    latencies.push(await timedChange(watch, peer, () => revertChange(context.admin, change)));
    await sleep(gapMs);
    if ((i + 1) % 10 === 0) context.log(`  ${peer.kind}: ${latencies.length} changes, last ${latencies.at(-2)} / ${latencies.at(-1)} ms`);
  }
  return latencies;
}

/** Send the burst evenly over `seconds` (up to 32 PATCHes in flight); returns when the last was accepted. */
async function sendBurst(admin: Admin, changes: readonly SliceChange[], seconds: number): Promise<{ first: number; last: number }> {
  const first = Date.now();
  const intervalMs = (seconds * 1000) / changes.length;
  let next = 0;
  await Promise.all(Array.from({ length: 32 }, async () => {
    while (next < changes.length) {
      const k = next++;
      const due = first + k * intervalMs;
      if (due > Date.now()) await sleep(due - Date.now());
      await applyChange(admin, changes[k] as SliceChange);
    }
  }));
  return { first, last: Date.now() };
}

/** New connections per second from the client pod to ip:port, over `count` connections. */
async function connectionRate(node: ScaleNode, rule: DispatchRule, count: number): Promise<number> {
  const summary = await node.tcp(node.clientNs, rule.ip, rule.port, { count, concurrency: 8, timeoutMs: 3000 });
  const answered = Object.values(summary.answers).reduce((a, b) => a + b, 0);
  if (answered < count) throw new Error(`data path to ${rule.ip}:${rule.port}: ${answered}/${count} answered, errors ${JSON.stringify(summary.errors)}`);
  return (answered * 1000) / summary.ms;
}


async function measureDataPath(context: TrialContext, node: ScaleNode, nat: Listing): Promise<{ first: number; last: number }> {
  const order = nat.dispatch.length > 0 ? nat.dispatch : context.firstAndLast;
  const first = order[0];
  const last = order.at(-1);
  if (!first || !last) throw new Error('no TCP cluster-IP rule in the dispatch chain');
  await connectionRate(node, first, 200); // warm-up: ARP, the pod server's JIT
  const rates = { first: [] as number[], last: [] as number[] };
  for (let round = 0; round < 5; round++) {
    rates.first.push(await connectionRate(node, first, context.connections));
    rates.last.push(await connectionRate(node, last, context.connections));
  }
  // the best of five alternated runs: on a shared machine the others' load only ever slows a run down
  return { first: Math.max(...rates.first), last: Math.max(...rates.last) };
}

export async function runTrial(context: TrialContext, kind: PeerKind): Promise<TrialResult> {
  const node = await createScaleNode();
  let peer: PeerProcess | undefined;
  let watch: TableWatch | undefined;
  try {
    const spawnInNode = (cmd: string, args: readonly string[]): ReturnType<ScaleNode['spawn']> => node.spawn(node.nodeNs, cmd, args);
    await context.plane.reachFrom(spawnInNode);
    watch = await context.view.watch(spawnInNode);
    const empty = watch.current().entries;
    const started = Date.now();
    peer = startPeer(node, kind, {
      mode: context.mode, kubeconfig: context.plane.proxyKubeconfig, nodeName: context.nodeName, clusterCIDR: SCALE_CLUSTER_CIDR,
      minSyncPeriod: `${context.minSyncPeriodMs}ms`, syncPeriod: '30s', workDir: join(context.workDir, kind),
    });
    const programmed = await settle(context, watch, peer, node, {
      since: started, floor: context.view.programmedAbove(empty), quietMs: 10_000, timeoutMs: 900_000,
      holds: (nat) => missingOf('cluster IPs', context.expectedClusterIPs, nat.addresses),
    });
    const startSeconds = (programmed.sample.at - started) / 1000;
    context.log(`  ${kind}: programmed in ${startSeconds.toFixed(2)} s (${programmed.nat.rules} rules)`);
    // on the table as programmed at start: the changes below add endpoints no sink answers for
    const rates = await measureDataPath(context, node, programmed.nat);

    const changeMs = await measureChanges(context, watch, peer);
    const sorted = [...changeMs].sort((a, b) => a - b);
    context.log(`  ${kind}: ${changeMs.length} changes, p50 ${sorted[Math.floor(sorted.length / 2)]} ms, max ${sorted.at(-1)} ms`);

    const beforeBurst = watch.current().entries;
    const burst = await sendBurst(context.admin, context.plan.burst, context.burstSeconds);
    const caughtUp = await settle(context, watch, peer, node, {
      since: burst.first, floor: beforeBurst, quietMs: Math.max(10_000, 1.5 * (sorted.at(-1) ?? 0)), timeoutMs: 900_000,
      holds: (nat) => missingOf('burst endpoints', context.plan.burst.map((c) => c.added), nat.addresses),
    });
    const burstCatchUpSeconds = Math.max(0, caughtUp.sample.at - burst.last) / 1000;
    const burstTotalSeconds = (caughtUp.sample.at - burst.first) / 1000;
    context.log(`  ${kind}: burst sent in ${((burst.last - burst.first) / 1000).toFixed(1)} s, kernel matched ${burstCatchUpSeconds.toFixed(2)} s after the last change`);

    const usage = peer.usage();
    let idleCpuSeconds: number | undefined;
    if (context.idleSeconds > 0) {
      context.log(`  ${kind}: idle for ${context.idleSeconds} s`);
      await sleep(context.idleSeconds * 1000);
      idleCpuSeconds = peer.usage().cpuSeconds - usage.cpuSeconds;
    }
    return {
      kind, startSeconds, kernelRules: programmed.nat.rules, changeMs,
      burstCatchUpSeconds, burstTotalSeconds, cpuSeconds: usage.cpuSeconds, peakRssMiB: usage.peakRssKiB / 1024, idleCpuSeconds,
      connFirst: rates.first, connLast: rates.last,
    };
  } finally {
    watch?.stop();
    if (peer) {
      await peer.stop();
      writeFileSync(join(context.workDir, `${kind}.log`), peer.output());
    }
    await node.destroy();
    // the next proxy starts from the cluster as loaded
    await revertAll(context.admin, [...context.plan.pairs, ...context.plan.burst]);
  }
}
