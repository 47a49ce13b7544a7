// Running the real kproxy agent (bin/kproxy.js) inside a cluster's node namespace.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { CLUSTER_CIDR, CLUSTER_CIDR6, NODE_IP, type Cluster } from './cluster.ts';
import { run, stopChildProcess } from './run.ts';

export const KPROXY_BIN = fileURLToPath(new URL('../../bin/kproxy.js', import.meta.url));

// bin/kproxy.js's shebang (`#!/usr/bin/env -S NAME=VALUE… node FLAGS…`) sets the agent's environment and V8 flags;
// tests and benchmarks read them from there, so they run the agent as deployed.
const SHEBANG_WORDS = (readFileSync(KPROXY_BIN, 'utf8').split('\n', 1)[0] ?? '').split(/\s+/);
/** The V8 flags bin/kproxy.js's shebang gives Node. */
export const KPROXY_NODE_FLAGS: readonly string[] = SHEBANG_WORDS.filter((word) => word.startsWith('--'));
/** The environment bin/kproxy.js's shebang sets (e.g. MALLOC_ARENA_MAX). */
export const KPROXY_NODE_ENV: Readonly<Record<string, string>> = Object.fromEntries(
  SHEBANG_WORDS.filter((word) => /^[A-Z_][A-Z0-9_]*=/.test(word)).map((word) => [word.slice(0, word.indexOf('=')), word.slice(word.indexOf('=') + 1)]),
);
export const HEALTHZ_PORT = 10256;

export interface KproxyOptions {
  readonly mode: string;
  readonly manifests: string;
  /** Extra flags after the standard ones. */
  readonly args?: readonly string[];
  readonly hostname?: string;
  /** --cluster-cidr; default both harness pod ranges (10.244.0.0/16,fd00:244::/32). */
  readonly clusterCidr?: string;
  /** Extra environment (e.g. KPROXY_IPTABLES_VARIANT). */
  readonly env?: NodeJS.ProcessEnv;
}

export interface KproxyProcess {
  readonly pid: number;
  readonly child: ChildProcess;
  /** Everything it printed so far (stdout and stderr). */
  output(): string;
  /** Resolves once /healthz answers 200 (the first sync succeeded); rejects after timeoutMs or on exit. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  /** Send a signal and wait for the exit; resolves with the exit code (or signal name). */
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

export function healthzUrl(): string {
  return `http://${NODE_IP}:${HEALTHZ_PORT}/healthz`;
}

export function kproxyArgs(options: KproxyOptions): string[] {
  return [
    ...KPROXY_NODE_FLAGS, KPROXY_BIN,
    '--proxy-mode', options.mode,
    '--manifests', options.manifests,
    '--hostname-override', options.hostname ?? 'node1',
    '--cluster-cidr', options.clusterCidr ?? `${CLUSTER_CIDR},${CLUSTER_CIDR6}`,
    '--healthz-bind-address', `${NODE_IP}:${HEALTHZ_PORT}`,
    ...(options.args ?? []),
  ];
}

export function startKproxy(cluster: Cluster, options: KproxyOptions): KproxyProcess {
  const child = cluster.spawn(cluster.nodeNs, process.execPath, kproxyArgs(options), { ...KPROXY_NODE_ENV, ...options.env });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => { output += d.toString(); });
  child.stderr?.removeAllListeners('data');
  child.stderr?.on('data', (d: Buffer) => { output += d.toString(); });
  let exited: number | string | undefined;
  const exit = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => { exited = code ?? signal ?? 'unknown'; resolve(exited); });
  });
  const tail = (): string => output.trim().split('\n').slice(-8).join('\n');
  return {
    pid: child.pid ?? -1,
    child,
    output: () => output,
    waitHealthy: async (timeoutMs = 8000) => {
      // One probe in the node's namespace polls every 20 ms (a probe per poll would cost a process start each).
      const poll = cluster.burst(cluster.nodeNs, { wait: { kind: 'healthz', url: healthzUrl() }, count: 0, targets: [], waitTimeoutMs: timeoutMs });
      const died = exit.then((how) => { throw new Error(`kproxy exited (${how}) before becoming healthy:\n${tail()}`); });
      died.catch(() => undefined); // it may exit later, after this wait is over
      try {
        const summary = await Promise.race([poll.result, died]);
        if (!summary.signalled) throw new Error(`kproxy not healthy within ${timeoutMs} ms:\n${tail()}`);
      } finally {
        poll.cancel();
      }
    },
    stop: async (signal = 'SIGTERM') => {
      if (exited !== undefined) return exited;
      return stopChildProcess(child, exit, signal, 5000);
    },
  };
}

/** `kproxy --cleanup` (one-shot) inside the node namespace. */
export async function runKproxyCleanup(cluster: Cluster, mode: string, extraArgs: readonly string[] = []): Promise<{ code: number; output: string }> {
  const result = await run('ip', ['netns', 'exec', cluster.nodeNs, process.execPath, ...KPROXY_NODE_FLAGS, KPROXY_BIN, '--cleanup', '--proxy-mode', mode,
    '--hostname-override', 'node1', ...extraArgs], { allowFailure: true, timeoutMs: 30_000 });
  return { code: result.code, output: result.stdout + result.stderr };
}
