// A one-node "cluster" made of network namespaces, for real-kernel tests of every mode:
//
//   <p>-ext 192.168.100.1 ==veth== 192.168.100.2 (eth0) <p>-node (10.244.1.1 on every pod veth, routed /32s)
//                                                   |-- vp1 == eth0 <p>-pod1 10.244.1.2  (server answers "pod1 <peer>")
//                                                   |-- vp2 == eth0 <p>-pod2 10.244.1.3  ...
//                                                   |-- vpc == eth0 <p>-cli  10.244.1.200 (a pod that is no endpoint)
// IPv6 mirrors it: ext fd00:100::1, node fd00:100::2, pods fd00:244:1::<n+1>, cli fd00:244:1::200.
// Service ranges routed from outside to the node: 10.96.0.0/12, fd00:96::/64, and 192.168.200.0/24 (LB/external IPs).
// Nothing touches the root namespace except veth pairs created directly inside the new namespaces.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { addNamespace, deleteNamespace, nsRun, sweepStaleNamespaces, sysctl, trackPid, uniquePrefix, untrackPid } from './netns.ts';
import { run, type RunOptions, type RunResult } from './run.ts';

export const POD_SERVER = fileURLToPath(new URL('./scripts/pod-server.ts', import.meta.url));
export const PROBE = fileURLToPath(new URL('./scripts/probe.ts', import.meta.url));

export interface Pod {
  /** What the pod's server answers with, e.g. "pod1" (or "cli"). */
  readonly name: string;
  readonly ns: string;
  readonly ip: string;
  readonly ip6: string;
}

export interface ProbeSummary {
  /** Backend name → number of answers. */
  readonly answers: Readonly<Record<string, number>>;
  /** Source address the backend saw → number of answers. */
  readonly peers: Readonly<Record<string, number>>;
  /** "backend peer" → number of answers. */
  readonly pairs: Readonly<Record<string, number>>;
  /** Error code (ECONNREFUSED, TIMEOUT, …) → count. */
  readonly errors: Readonly<Record<string, number>>;
  /** The longest TCP request (connect, one line each way), ms. */
  readonly slowestMs: number;
  readonly ms: number;
}

export interface TcpProbe { readonly count?: number; readonly concurrency?: number; readonly timeoutMs?: number }
export interface UdpProbe { readonly count?: number; readonly srcPort?: number; readonly timeoutMs?: number }
/** What a burst waits for: nothing, /healthz answering 200, or the metrics saying a Service change is applied. */
export type BurstWait =
  | { readonly kind: 'none' }
  | { readonly kind: 'healthz'; readonly url: string }
  /**
   * The metrics at url: kubeproxy_sync_proxy_rules_service_changes_total went up after the probe's first reading
   * (the agent saw the change; make it after `ready`) and kubeproxy_sync_proxy_rules_service_changes_pending is 0
   * (a sync that began after every change it saw has succeeded).
   */
  | { readonly kind: 'applied'; readonly url: string };

export interface BurstProbe {
  readonly wait: BurstWait;
  /** Connections to every target, all opened at the same moment. */
  readonly count: number;
  /** "host:port" ("[v6]:port"). */
  readonly targets: readonly string[];
  /** Per connection (default 1000 ms). */
  readonly timeoutMs?: number;
  /** Longest wait for the signal (default 15 s). */
  readonly waitTimeoutMs?: number;
  /** "host:port" the probe connects to 20 times before it waits, so its own first-run slowness is not measured. */
  readonly warmup?: string;
  /**
   * "host:port"s (endpoints, straight): `count` more connections spread over them are opened at the same moment
   * as the others, under results.direct: what the clients and backends alone take at that moment.
   */
  readonly control?: readonly string[];
}

export interface RunningBurst {
  /** Resolves once the probe watches the signal (for `applied`: has its first reading). */
  readonly ready: Promise<void>;
  readonly result: Promise<BurstSummary>;
  /** Stop the probe now (result then rejects). */
  cancel(): void;
}

export interface BurstSummary {
  /** From the start of the wait to the signal. */
  readonly waitedMs: number;
  /** When the signal came (epoch ms); absent when it never did. */
  readonly signalledAt?: number;
  readonly polls: number;
  /** False: the signal never came within waitTimeoutMs (no connection was opened). */
  readonly signalled: boolean;
  /** Per target (and `direct`, the control); `slowestMs` is the longest request. */
  readonly results: Readonly<Record<string, ProbeSummary>>;
}

export interface TimelineProbe { readonly durationMs: number; readonly intervalMs: number; readonly timeoutMs?: number }

/** One connection of a timeline: when it began (epoch ms), how long it took, its error (null: answered). */
export type TimelineAttempt = readonly [at: number, ms: number, error: string | null];

export interface HoldProbe { readonly durationMs: number; readonly intervalMs?: number }

export interface HeldConnection {
  /** Resolves once the first answer came back over the connection. */
  readonly ready: Promise<void>;
  readonly result: Promise<ProbeSummary>;
}

export interface ClusterOptions {
  /** Number of endpoint pods (pod1..podN). Default 3. */
  readonly pods?: number;
  /** Ports every pod server listens on, TCP and UDP. Default [8080]. */
  readonly podPorts?: readonly number[];
  /** Also wire IPv6. Default true. */
  readonly ipv6?: boolean;
}

export const NODE_IP = '192.168.100.2';
export const EXT_IP = '192.168.100.1';
export const NODE_IP6 = 'fd00:100::2';
export const EXT_IP6 = 'fd00:100::1';
export const POD_GATEWAY = '10.244.1.1';
export const POD_GATEWAY6 = 'fd00:244:1::1';
export const CLUSTER_CIDR = '10.244.0.0/16';
export const CLUSTER_CIDR6 = 'fd00:244::/32';
/** LoadBalancer and external IPs of test services; the outside namespace routes them to the node. */
export const LB_RANGE = '192.168.200.0/24';

export interface Cluster {
  readonly prefix: string;
  readonly nodeNs: string;
  readonly extNs: string;
  readonly pods: readonly Pod[];
  /** A pod that is not an endpoint, for traffic "from a pod". */
  readonly client: Pod;
  readonly ipv6: boolean;
  exec(ns: string, cmd: string, args: readonly string[], options?: RunOptions): Promise<RunResult>;
  /** Start a long-running process in a namespace; it is killed by destroy() and on process exit. */
  spawn(ns: string, cmd: string, args: readonly string[], env?: NodeJS.ProcessEnv): ChildProcess;
  tcp(fromNs: string, host: string, port: number, probe?: TcpProbe): Promise<ProbeSummary>;
  udp(fromNs: string, host: string, port: number, probe?: UdpProbe): Promise<ProbeSummary>;
  hold(fromNs: string, host: string, port: number, probe: HoldProbe): HeldConnection;
  /** GET a URL from a namespace; resolves with the HTTP status, or undefined when nothing answered. */
  httpStatus(fromNs: string, url: string): Promise<number | undefined>;
  /** A probe process that stays in `ns` and takes requests (see NamespaceTools.prober). */
  prober(ns: string): Promise<Prober>;
  /** Waits in `fromNs` for a signal, then opens many connections at once. */
  burst(fromNs: string, probe: BurstProbe): RunningBurst;
  /** A new connection every interval for a while, each one's outcome: what a client sees of a restart. */
  timeline(fromNs: string, host: string, port: number, probe: TimelineProbe): Promise<TimelineAttempt[]>;
  /** Forget every conntrack entry of the node namespace (between test cases). */
  flushConntrack(): Promise<void>;
  destroy(): Promise<void>;
}

async function wirePod(node: string, pod: Pod, veth: string, ipv6: boolean): Promise<void> {
  await addNamespace(pod.ns);
  await run('ip', ['link', 'add', veth, 'netns', node, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', pod.ns]);
  if (ipv6) await sysctl(pod.ns, 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0');
  await run('ip', ['-n', node, 'addr', 'add', `${POD_GATEWAY}/32`, 'dev', veth]);
  await run('ip', ['-n', node, 'link', 'set', veth, 'up']);
  await run('ip', ['-n', node, 'route', 'add', `${pod.ip}/32`, 'dev', veth]);
  await run('ip', ['-n', pod.ns, 'addr', 'add', `${pod.ip}/32`, 'dev', 'eth0']);
  await run('ip', ['-n', pod.ns, 'link', 'set', 'eth0', 'up']);
  await run('ip', ['-n', pod.ns, 'route', 'add', `${POD_GATEWAY}/32`, 'dev', 'eth0', 'scope', 'link']);
  await run('ip', ['-n', pod.ns, 'route', 'add', 'default', 'via', POD_GATEWAY, 'dev', 'eth0']);
  if (ipv6) {
    await run('ip', ['-n', node, 'addr', 'add', `${POD_GATEWAY6}/128`, 'dev', veth, 'nodad']);
    await run('ip', ['-n', node, '-6', 'route', 'add', `${pod.ip6}/128`, 'dev', veth]);
    await run('ip', ['-n', pod.ns, 'addr', 'add', `${pod.ip6}/128`, 'dev', 'eth0', 'nodad']);
    await run('ip', ['-n', pod.ns, '-6', 'route', 'add', `${POD_GATEWAY6}/128`, 'dev', 'eth0']);
    await run('ip', ['-n', pod.ns, '-6', 'route', 'add', 'default', 'via', POD_GATEWAY6, 'dev', 'eth0']);
  }
  // short-lived test connections: TIME_WAIT sockets must not collide with reused source ports
  await sysctl(pod.ns, 'net.ipv4.tcp_max_tw_buckets=0', 'net.ipv4.tcp_tw_reuse=1');
}

export function waitForLine(child: ChildProcess, line: string, what: string, timeoutMs = 5000): Promise<void> {
  return new Promise((resolve, reject) => {
    if (!child.stdout) return reject(new Error(`${what}: no stdout`));
    const lines = createInterface({ input: child.stdout });
    const timer = setTimeout(() => reject(new Error(`${what}: no "${line}" within ${timeoutMs} ms`)), timeoutMs);
    lines.on('line', (text) => {
      if (text.trim() !== line) return;
      clearTimeout(timer);
      lines.removeAllListeners('line');
      resolve();
    });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`${what} exited (${code}) before "${line}"`)); });
  });
}

function parseSummary(stdout: string): ProbeSummary {
  const last = stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(last) as ProbeSummary;
}

/** Processes and probes in namespaces, shared by the harness's topologies. */
export interface NamespaceTools {
  /** Start a long-running process in a namespace; tracked so that the harness kills it on exit. */
  spawn(ns: string, cmd: string, args: readonly string[], env?: NodeJS.ProcessEnv): ChildProcess;
  tcp(fromNs: string, host: string, port: number, probe?: TcpProbe): Promise<ProbeSummary>;
  udp(fromNs: string, host: string, port: number, probe?: UdpProbe): Promise<ProbeSummary>;
  httpStatus(fromNs: string, url: string): Promise<number | undefined>;
  /** A probe process that stays in `ns` and takes requests (no process start per probe, for thousands of them). */
  prober(ns: string): Promise<Prober>;
  /** Waits in `fromNs` for a signal, then opens many connections at once. */
  burst(fromNs: string, probe: BurstProbe): RunningBurst;
  /** A new connection every interval for a while, each one's outcome: what a client sees of a restart. */
  timeline(fromNs: string, host: string, port: number, probe: TimelineProbe): Promise<TimelineAttempt[]>;
  /** The live children spawned here (destroy() kills them). */
  readonly children: Set<ChildProcess>;
}

/** tcp()/udp() of one source namespace, served by one long-lived probe process (scripts/probe.ts serve). */
export interface Prober {
  tcp(host: string, port: number, probe?: TcpProbe): Promise<ProbeSummary>;
  udp(host: string, port: number, probe?: UdpProbe): Promise<ProbeSummary>;
  close(): void;
}

function startProber(child: ChildProcess): Promise<Prober> {
  const pending = new Map<number, (summary: ProbeSummary) => void>();
  let nextId = 0;
  const lines = createInterface({ input: child.stdout ?? process.stdin });
  const ready = new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`prober exited (${code})`)));
    lines.on('line', (line) => {
      if (line === 'ready') return resolve();
      const { id, summary } = JSON.parse(line) as { id: number; summary: ProbeSummary };
      pending.get(id)?.(summary);
      pending.delete(id);
    });
  });
  const ask = (request: Record<string, unknown>): Promise<ProbeSummary> => new Promise((resolve) => {
    const id = nextId++;
    pending.set(id, resolve);
    child.stdin?.write(`${JSON.stringify({ ...request, id })}\n`);
  });
  return ready.then(() => ({
    tcp: (host, port, p = {}) => ask({ mode: 'tcp', host, port, count: p.count ?? 1, concurrency: p.concurrency ?? 1, timeoutMs: p.timeoutMs ?? 1000 }),
    udp: (host, port, p = {}) => ask({ mode: 'udp', host, port, count: p.count ?? 1, srcPort: p.srcPort ?? 0, timeoutMs: p.timeoutMs ?? 1000 }),
    close: () => { child.stdin?.end(); },
  }));
}

export function namespaceTools(): NamespaceTools {
  const children = new Set<ChildProcess>();
  const spawn_ = (ns: string, cmd: string, args: readonly string[], env?: NodeJS.ProcessEnv): ChildProcess => {
    const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    trackPid(child.pid);
    children.add(child);
    child.once('exit', () => { untrackPid(child.pid); children.delete(child); });
    child.stderr?.resume();
    return child;
  };
  const probe = async (ns: string, args: readonly string[], timeoutMs: number): Promise<ProbeSummary> =>
    parseSummary((await nsRun(ns, process.execPath, [PROBE, ...args], { timeoutMs })).stdout);
  return {
    children,
    spawn: spawn_,
    prober: (ns) => startProber(spawn_(ns, process.execPath, [PROBE, 'serve'])),
    timeline: async (ns, host, port, p) => {
      const args = ['timeline', host, String(port), String(p.durationMs), String(p.intervalMs), String(p.timeoutMs ?? 1000)];
      const { stdout } = await nsRun(ns, process.execPath, [PROBE, ...args], { timeoutMs: 30_000 + p.durationMs });
      return (JSON.parse(stdout.trim().split('\n').pop() ?? '') as { attempts: TimelineAttempt[] }).attempts;
    },
    burst: (ns, p) => {
      const spec = { timeoutMs: 1000, waitTimeoutMs: 15_000, ...p };
      const child = spawn_(ns, process.execPath, [PROBE, 'burst', JSON.stringify(spec)]);
      let stdout = '';
      child.stdout?.on('data', (d: Buffer) => { stdout += d.toString(); });
      const ready = waitForLine(child, 'ready', 'burst probe', 10_000 + spec.waitTimeoutMs);
      ready.catch(() => {}); // the caller may only await result
      const result = new Promise<BurstSummary>((resolve, reject) => {
        child.once('exit', () => {
          try { resolve(JSON.parse(stdout.trim().split('\n').pop() ?? '') as BurstSummary); } catch { reject(new Error(`burst probe printed no summary: ${stdout}`)); }
        });
      });
      return { ready, result, cancel: () => void child.kill('SIGKILL') };
    },
    tcp: (ns, host, port, p = {}) => {
      const count = p.count ?? 1;
      const timeoutMs = p.timeoutMs ?? 1000;
      return probe(ns, ['tcp', host, String(port), String(count), String(p.concurrency ?? 1), String(timeoutMs)],
        30_000 + count * timeoutMs);
    },
    udp: (ns, host, port, p = {}) => {
      const count = p.count ?? 1;
      const timeoutMs = p.timeoutMs ?? 1000;
      return probe(ns, ['udp', host, String(port), String(count), String(p.srcPort ?? 0), String(timeoutMs)],
        30_000 + count * timeoutMs);
    },
    httpStatus: async (ns, url) => {
      const summary = await probe(ns, ['http', url], 5000);
      const status = Object.keys(summary.answers)[0];
      return status === undefined ? undefined : Number(status);
    },
  };
}

export async function createCluster(options: ClusterOptions = {}): Promise<Cluster> {
  sweepStaleNamespaces();
  const podCount = options.pods ?? 3;
  const ports = options.podPorts ?? [8080];
  const ipv6 = options.ipv6 ?? true;
  const prefix = uniquePrefix();
  const nodeNs = `${prefix}-node`;
  const extNs = `${prefix}-ext`;
  const pods: Pod[] = Array.from({ length: podCount }, (_, i) => ({
    name: `pod${i + 1}`, ns: `${prefix}-pod${i + 1}`, ip: `10.244.1.${i + 2}`, ip6: `fd00:244:1::${(i + 2).toString(16)}`,
  }));
  const client: Pod = { name: 'cli', ns: `${prefix}-cli`, ip: '10.244.1.200', ip6: 'fd00:244:1::200' };

  const { spawn: spawnIn, tcp, udp, httpStatus, prober, burst, timeline, children } = namespaceTools();

  const cluster: Cluster = {
    prefix, nodeNs, extNs, pods, client, ipv6,
    exec: (ns, cmd, args, runOptions) => nsRun(ns, cmd, args, runOptions),
    spawn: spawnIn,
    tcp,
    udp,
    prober,
    burst,
    timeline,
    hold: (ns, host, port, p) => {
      const child = spawnIn(ns, process.execPath, [PROBE, 'hold', host, String(port), String(p.durationMs), String(p.intervalMs ?? 100)]);
      let stdout = '';
      child.stdout?.on('data', (d: Buffer) => { stdout += d.toString(); });
      const ready = waitForLine(child, 'ready', 'held connection');
      const result = new Promise<ProbeSummary>((resolve, reject) => {
        child.once('exit', () => {
          try { resolve(parseSummary(stdout)); } catch { reject(new Error(`held connection printed no summary: ${stdout}`)); }
        });
      });
      ready.catch(() => {}); // the caller may only await result
      return { ready, result };
    },
    httpStatus,
    flushConntrack: async () => {
      await nsRun(nodeNs, 'conntrack', ['-F'], { allowFailure: true });
      if (ipv6) await nsRun(nodeNs, 'conntrack', ['-F', '-f', 'ipv6'], { allowFailure: true });
    },
    destroy: async () => {
      for (const child of children) child.kill('SIGKILL');
      for (const ns of [...pods.map((p) => p.ns), client.ns, extNs, nodeNs]) await deleteNamespace(ns);
    },
  };

  try {
    await addNamespace(nodeNs);
    await addNamespace(extNs);
    await sysctl(nodeNs, 'net.ipv4.ip_forward=1');
    await run('ip', ['link', 'add', 'ext0', 'netns', extNs, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', nodeNs]);
    if (ipv6) {
      for (const ns of [nodeNs, extNs]) await sysctl(ns, 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0');
      await sysctl(nodeNs, 'net.ipv6.conf.all.forwarding=1');
    }
    await run('ip', ['-n', extNs, 'addr', 'add', `${EXT_IP}/24`, 'dev', 'ext0']);
    await run('ip', ['-n', extNs, 'link', 'set', 'ext0', 'up']);
    await run('ip', ['-n', nodeNs, 'addr', 'add', `${NODE_IP}/24`, 'dev', 'eth0']);
    await run('ip', ['-n', nodeNs, 'link', 'set', 'eth0', 'up']);
    // the node needs a route covering service IPs, or connect() fails before OUTPUT DNAT sees the packet
    await run('ip', ['-n', nodeNs, 'route', 'add', 'default', 'via', EXT_IP]);
    await run('ip', ['-n', extNs, 'route', 'add', '10.96.0.0/12', 'via', NODE_IP]);
    await run('ip', ['-n', extNs, 'route', 'add', CLUSTER_CIDR, 'via', NODE_IP]);
    await run('ip', ['-n', extNs, 'route', 'add', LB_RANGE, 'via', NODE_IP]);
    await sysctl(extNs, 'net.ipv4.tcp_max_tw_buckets=0', 'net.ipv4.tcp_tw_reuse=1');
    if (ipv6) {
      await run('ip', ['-n', extNs, 'addr', 'add', `${EXT_IP6}/64`, 'dev', 'ext0', 'nodad']);
      await run('ip', ['-n', nodeNs, 'addr', 'add', `${NODE_IP6}/64`, 'dev', 'eth0', 'nodad']);
      await run('ip', ['-n', nodeNs, '-6', 'route', 'add', 'default', 'via', EXT_IP6]);
      await run('ip', ['-n', extNs, '-6', 'route', 'add', 'fd00:96::/64', 'via', NODE_IP6]);
      await run('ip', ['-n', extNs, '-6', 'route', 'add', CLUSTER_CIDR6, 'via', NODE_IP6]);
    }
    await sysctl(nodeNs, 'net.ipv4.tcp_max_tw_buckets=0', 'net.ipv4.tcp_tw_reuse=1');
    for (const [i, pod] of pods.entries()) await wirePod(nodeNs, pod, `vp${i + 1}`, ipv6);
    await wirePod(nodeNs, client, 'vpc', ipv6);
    const servers = [...pods, client].map((pod) => {
      const child = spawnIn(pod.ns, process.execPath, [POD_SERVER, pod.name, ports.join(',')]);
      return waitForLine(child, 'ready', `server of ${pod.name}`);
    });
    await Promise.all(servers);
  } catch (error) {
    await cluster.destroy();
    throw error;
  }
  return cluster;
}
