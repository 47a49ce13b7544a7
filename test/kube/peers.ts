// kproxy and the upstream kube-proxy (built by tools/kube/build.sh), each run as a process in a node namespace
// against the test control plane (apiserver.ts, reached through plane.reachFrom), from the same
// KubeProxyConfiguration file: the side-by-side harness of the peer benchmark, the behavioural oracle test, and
// tests that hand a node from one proxy to the other.
//
// What keeps two proxies (or a proxy and the machine) apart:
// - each runs in its own node namespace; nothing it programs leaves it;
// - each gets its own XTABLES_LOCKFILE, so neither waits on the other's (or a test's) iptables lock;
// - conntrack settings are all zero in the config, so kube-proxy leaves nf_conntrack_max and the
//   /sys/module/nf_conntrack hash size (machine-wide) alone;
// - kube-proxy runs the iptables backend asked for (a PATH of its own whose iptables* point at -legacy or -nft);
// - both are stopped by PID, and the harness kills them with their namespaces if a test dies.
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { KPROXY_BIN, KPROXY_NODE_ENV, KPROXY_NODE_FLAGS } from '../harness/kproxy.ts';
import { stopChildProcess } from '../harness/run.ts';
import { requireKubeBinaries, type ControlPlane } from './apiserver.ts';

export type PeerKind = 'kproxy' | 'kube-proxy';
/** Modes both proxies implement here ('ipvs' needs a kernel with IPVS: only the test VM has one). */
export type PeerMode = 'iptables' | 'nftables';
export type IptablesVariant = 'legacy' | 'nft';

/** What a proxy needs of the node it runs on (a harness Cluster, or the benchmark's node). */
export interface ProxyHost {
  readonly nodeNs: string;
  spawn(ns: string, cmd: string, args: readonly string[], env?: NodeJS.ProcessEnv): ChildProcess;
  /** GET a URL from a namespace; the HTTP status, or undefined when nothing answered. */
  httpStatus(fromNs: string, url: string): Promise<number | undefined>;
}

export interface PeerSettings {
  readonly mode: PeerMode;
  readonly kubeconfig: string;
  /** --hostname-override: the Node object (with an InternalIP: kube-proxy waits for one) must exist. */
  readonly nodeName: string;
  /** clusterCIDR (comma-separated, one per family). */
  readonly clusterCIDR: string;
  /** Go durations; defaults are kube-proxy's (1s / 30s). */
  readonly minSyncPeriod?: string;
  readonly syncPeriod?: string;
  readonly iptablesVariant?: IptablesVariant;
  /** IP:port inside the node namespace; defaults 127.0.0.1:10256 and 127.0.0.1:10249. */
  readonly healthzBindAddress?: string;
  readonly metricsBindAddress?: string;
  /** More KubeProxyConfiguration fields (merged over the rest). */
  readonly config?: Readonly<Record<string, unknown>>;
  /** Where the config file (and kube-proxy's PATH) go; created if missing. */
  readonly workDir: string;
  /** -v for both (default 0). */
  readonly verbosity?: number;
}

export interface ProcessUsage {
  /** user + system CPU of the process and of the children it has waited for (iptables-restore, …). */
  readonly cpuSeconds: number;
  readonly rssKiB: number;
  /** VmHWM: the process's peak resident set (its children not included). */
  readonly peakRssKiB: number;
}

export interface PeerProcess {
  readonly kind: PeerKind;
  readonly pid: number;
  readonly child: ChildProcess;
  readonly configFile: string;
  readonly healthzUrl: string;
  readonly metricsUrl: string;
  /** The last 256 KiB of what it printed (stdout and stderr). */
  output(): string;
  /** Exit code or signal once it exited. */
  exited(): number | string | undefined;
  /** CPU and memory from /proc now (throws once it exited). */
  usage(): ProcessUsage;
  /** Resolves once /healthz answers at all (the process is up; kube-proxy reports healthy while it starts). */
  waitListening(timeoutMs?: number): Promise<void>;
  /** SIGTERM (or `signal`), SIGKILL after 10 s; resolves with the exit code or signal. */
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

export const PEER_KINDS: readonly PeerKind[] = ['kproxy', 'kube-proxy'];

/** The KubeProxyConfiguration both proxies read. */
export function peerConfiguration(settings: PeerSettings): Record<string, unknown> {
  const sync = { minSyncPeriod: settings.minSyncPeriod ?? '1s', syncPeriod: settings.syncPeriod ?? '30s' };
  return {
    apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
    kind: 'KubeProxyConfiguration',
    mode: settings.mode,
    hostnameOverride: settings.nodeName,
    clientConnection: { kubeconfig: settings.kubeconfig },
    clusterCIDR: settings.clusterCIDR,
    healthzBindAddress: settings.healthzBindAddress ?? '127.0.0.1:10256',
    metricsBindAddress: settings.metricsBindAddress ?? '127.0.0.1:10249',
    iptables: { ...sync, masqueradeBit: 14, localhostNodePorts: true },
    nftables: { ...sync, masqueradeBit: 14 },
    // all zero: kube-proxy must not touch the machine-wide conntrack table size or hash size
    conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s', udpTimeout: '0s', udpStreamTimeout: '0s' },
    logging: { verbosity: settings.verbosity ?? 0 },
    ...settings.config,
  };
}

const IPTABLES_TOOLS = ['iptables', 'iptables-save', 'iptables-restore', 'ip6tables', 'ip6tables-save', 'ip6tables-restore'];

/** A directory whose iptables* run the chosen variant, for kube-proxy's PATH (it calls plain `iptables`). */
function iptablesPath(workDir: string, variant: IptablesVariant): string {
  const dir = join(workDir, `iptables-${variant}`);
  mkdirSync(dir, { recursive: true });
  const multi = `/usr/sbin/xtables-${variant}-multi`;
  for (const tool of IPTABLES_TOOLS) {
    rmSync(join(dir, tool), { force: true });
    // the multi binary picks the tool by the name it was called as
    symlinkSync(multi, join(dir, tool));
  }
  return dir;
}

function commandFor(kind: PeerKind, settings: PeerSettings, configFile: string): { cmd: string; args: string[]; env: NodeJS.ProcessEnv } {
  const variant = settings.iptablesVariant ?? 'legacy';
  if (kind === 'kproxy') {
    return {
      cmd: process.execPath,
      args: [...KPROXY_NODE_FLAGS, KPROXY_BIN, '--config', configFile, '--iptables-variant', variant],
      env: { ...KPROXY_NODE_ENV },
    };
  }
  const path = `${iptablesPath(settings.workDir, variant)}:${process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`;
  return { cmd: requireKubeBinaries().kubeProxy, args: ['--config', configFile], env: { PATH: path } };
}

/** /proc's clock ticks per second (USER_HZ): 100 on every Linux architecture Node runs on. */
const USER_HZ = 100;

/** CPU and memory of a live process from /proc. */
export function processUsage(pid: number): ProcessUsage {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15, cutime 16, cstime 17
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i] ?? 0), 0);
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
  return { cpuSeconds: ticks / USER_HZ, rssKiB: kib('VmRSS'), peakRssKiB: kib('VmHWM') };
}

let lockCounter = 0;
const OUTPUT_LIMIT = 256 * 1024;

/** Start `kind` in the host's node namespace with `settings`; the caller stops it (stop()) or destroys the host. */
export function startPeer(host: ProxyHost, kind: PeerKind, settings: PeerSettings): PeerProcess {
  mkdirSync(settings.workDir, { recursive: true });
  const configFile = join(settings.workDir, `${kind}.config.yaml`);
  const configuration = peerConfiguration(settings);
  writeFileSync(configFile, stringify(configuration));
  const lockFile = `/run/kproxy-xtables-${process.pid}-peer${lockCounter++}.lock`;
  const { cmd, args, env } = commandFor(kind, settings, configFile);
  const child = host.spawn(host.nodeNs, cmd, args, { ...env, XTABLES_LOCKFILE: lockFile });
  let output = '';
  const keep = (data: Buffer): void => {
    output += data.toString();
    if (output.length > 2 * OUTPUT_LIMIT) output = output.slice(-OUTPUT_LIMIT);
  };
  child.stdout?.on('data', keep);
  child.stderr?.removeAllListeners('data');
  child.stderr?.on('data', keep);
  let exitedWith: number | string | undefined;
  const exit = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => {
      exitedWith = code ?? signal ?? 'unknown';
      rmSync(lockFile, { force: true });
      resolve(exitedWith);
    });
  });
  const healthzUrl = `http://${configuration.healthzBindAddress as string}/healthz`;
  const metricsUrl = `http://${configuration.metricsBindAddress as string}/metrics`;
  const tail = (): string => output.trim().split('\n').slice(-10).join('\n');
  return {
    kind, child, configFile, healthzUrl, metricsUrl,
    pid: child.pid ?? -1,
    output: () => output.slice(-OUTPUT_LIMIT),
    exited: () => exitedWith,
    usage: () => processUsage(child.pid ?? -1),
    waitListening: async (timeoutMs = 30_000) => {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        if (exitedWith !== undefined) throw new Error(`${kind} exited (${exitedWith}) before /healthz answered:\n${tail()}`);
        if (await host.httpStatus(host.nodeNs, healthzUrl) !== undefined) return;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      throw new Error(`${kind}: /healthz did not answer within ${timeoutMs} ms:\n${tail()}`);
    },
    stop: async (signal = 'SIGTERM') => {
      if (exitedWith !== undefined) return exitedWith;
      return stopChildProcess(child, exit, signal, 10_000);
    },
  };
}

/** Create the Node the proxies run as, with its InternalIP(s) (kube-proxy waits up to 30 s for one) and labels. */
export async function createNode(
  plane: Pick<ControlPlane, 'request'>, name: string, internalIPs: readonly string[], labels: Readonly<Record<string, string>> = {},
): Promise<void> {
  await plane.request('POST', '/api/v1/nodes', { metadata: { name, labels: { 'kubernetes.io/hostname': name, ...labels } } });
  // status is not taken from a create: set it through the status subresource
  const addresses = [...internalIPs.map((address) => ({ type: 'InternalIP', address })), { type: 'Hostname', address: name }];
  await plane.request('PATCH', `/api/v1/nodes/${name}/status`, { status: { addresses } });
}
