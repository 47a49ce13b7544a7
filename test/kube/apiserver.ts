// A real control plane for tests: etcd + kube-apiserver from the binaries tools/kube/build.sh caches, on
// loopback, with free ports picked at run time and a private temporary data directory. Processes are stopped
// by PID on every exit path (stop(), process exit, signals).
//
// The binaries must exist (CI runs tools/kube/build.sh first). Developers without Go can set
// KPROXY_NO_KUBE_TESTS=1 to skip the real-apiserver tests; anywhere else a missing binary fails the test.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, closeSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, fetch } from 'undici';
import { ApiserverBridge, type SpawnInNamespace } from './bridge.ts';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Set when the developer opted out of real-apiserver tests (no Go on this machine). */
export const kubeTestsDisabled = process.env.KPROXY_NO_KUBE_TESTS === '1';

/** Where tools/kube/build.sh puts the binaries for the pinned version. */
export function kubeBinDir(): string {
  const run = spawnSync('bash', [join(repoRoot, 'tools/kube/build.sh'), '--print'], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`tools/kube/build.sh --print failed: ${run.stderr.trim()}`);
  return run.stdout.trim().split('\n').pop() ?? '';
}

/** The binaries, or an error telling how to get them. */
export function requireKubeBinaries(): { apiserver: string; etcd: string; kubeProxy: string } {
  const dir = kubeBinDir();
  const bins = { apiserver: join(dir, 'kube-apiserver'), etcd: join(dir, 'etcd'), kubeProxy: join(dir, 'kube-proxy') };
  const missing = Object.values(bins).filter((path) => !existsSync(path));
  if (missing.length > 0) {
    throw new Error(`kube binaries missing (${missing.join(', ')}): run tools/kube/build.sh first (needs Go), `
      + 'or set KPROXY_NO_KUBE_TESTS=1 to skip the real-apiserver tests');
  }
  return bins;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface ControlPlaneOptions {
  /** kube-apiserver --max-requests-inflight / --max-mutating-requests-inflight (benchmarks raise them). */
  readonly maxRequestsInflight?: number;
  /** Extra kube-apiserver flags. */
  readonly apiserverArgs?: readonly string[];
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  const killAll = (): void => {
    for (const child of live) if (child.pid !== undefined && child.exitCode === null) {
      try { process.kill(child.pid, 'SIGKILL'); } catch { /* already gone */ }
    }
  };
  process.on('exit', killAll);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => { killAll(); process.exit(130); });
  }
}

async function stopChild(child: ChildProcess | undefined, graceMs = 5000): Promise<void> {
  if (!child || child.pid === undefined) return;
  if (child.exitCode !== null || child.signalCode !== null) { live.delete(child); return; }
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  process.kill(child.pid, 'SIGTERM');
  const timer = setTimeout(() => { if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGKILL'); }, graceMs);
  await exited;
  clearTimeout(timer);
  live.delete(child);
}

/** A running etcd + kube-apiserver pair with admin and system:kube-proxy credentials. */
export class ControlPlane {
  readonly dir: string;
  readonly server: string;
  readonly adminToken = randomBytes(16).toString('hex');
  readonly proxyToken = randomBytes(16).toString('hex');
  /** kubeconfig files for the two identities. */
  readonly adminKubeconfig: string;
  readonly proxyKubeconfig: string;
  private readonly bins = requireKubeBinaries();
  private readonly options: ControlPlaneOptions;
  private readonly etcdPort: number;
  private readonly peerPort: number;
  private readonly securePort: number;
  private etcd: ChildProcess | undefined;
  private apiserver: ChildProcess | undefined;
  private agent: Agent | undefined;
  private bridge: Promise<ApiserverBridge> | undefined;

  private constructor(options: ControlPlaneOptions, ports: readonly number[]) {
    this.options = options;
    [this.etcdPort = 0, this.peerPort = 0, this.securePort = 0] = ports;
    this.dir = mkdtempSync(join(tmpdir(), 'kproxy-kube-'));
    this.server = `https://127.0.0.1:${this.securePort}`;
    this.adminKubeconfig = join(this.dir, 'admin.kubeconfig');
    this.proxyKubeconfig = join(this.dir, 'proxy.kubeconfig');
  }

  static async start(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
    const ports = [await freePort(), await freePort(), await freePort()];
    const plane = new ControlPlane(options, ports);
    installExitHook();
    try {
      plane.writeFiles();
      await plane.startEtcd();
      await plane.startApiserver();
    } catch (error) {
      await plane.stop();
      throw error;
    }
    return plane;
  }

  private writeFiles(): void {
    mkdirSync(join(this.dir, 'pki'));
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(join(this.dir, 'sa.key'), privateKey.export({ type: 'pkcs1', format: 'pem' }));
    writeFileSync(join(this.dir, 'sa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
    // token,user,uid[,"groups"]: the proxy user has no group; the built-in system:node-proxier binding names it.
    writeFileSync(join(this.dir, 'tokens.csv'), `${this.adminToken},admin,admin,"system:masters"\n${this.proxyToken},system:kube-proxy,kube-proxy\n`);
  }

  private logFile(name: string): number {
    return openSync(join(this.dir, `${name}.log`), 'a');
  }

  private spawnLogged(name: string, command: string, args: readonly string[]): ChildProcess {
    const log = this.logFile(name);
    const child = spawn(command, args, { stdio: ['ignore', log, log] });
    closeSync(log);
    live.add(child);
    child.once('exit', () => live.delete(child));
    return child;
  }

  private async startEtcd(): Promise<void> {
    const client = `http://127.0.0.1:${this.etcdPort}`;
    const peer = `http://127.0.0.1:${this.peerPort}`;
    this.etcd = this.spawnLogged('etcd', this.bins.etcd, [
      `--data-dir=${join(this.dir, 'etcd')}`, `--listen-client-urls=${client}`, `--advertise-client-urls=${client}`,
      `--listen-peer-urls=${peer}`, `--initial-advertise-peer-urls=${peer}`, `--initial-cluster=default=${peer}`,
      '--unsafe-no-fsync', '--log-level=warn', '--quota-backend-bytes=4294967296',
    ]);
    await this.waitFor('etcd', this.etcd, async () => (await fetch(`${client}/health`)).ok, 30_000);
  }

  /** Start (or restart after stopApiserver) kube-apiserver on the same port and data. */
  async startApiserver(): Promise<void> {
    const inflight = this.options.maxRequestsInflight;
    this.apiserver = this.spawnLogged('kube-apiserver', this.bins.apiserver, [
      `--etcd-servers=http://127.0.0.1:${this.etcdPort}`, '--bind-address=127.0.0.1', '--advertise-address=127.0.0.1',
      `--secure-port=${this.securePort}`, `--cert-dir=${join(this.dir, 'pki')}`,
      `--token-auth-file=${join(this.dir, 'tokens.csv')}`, '--authorization-mode=RBAC',
      `--service-account-issuer=${this.server}`, `--service-account-key-file=${join(this.dir, 'sa.pub')}`,
      `--service-account-signing-key-file=${join(this.dir, 'sa.key')}`, '--service-cluster-ip-range=10.96.0.0/16',
      ...(inflight ? [`--max-requests-inflight=${inflight}`, `--max-mutating-requests-inflight=${inflight}`] : []),
      ...(this.options.apiserverArgs ?? []),
    ]);
    await this.waitFor('kube-apiserver', this.apiserver, async () => {
      this.agent ??= existsSync(this.caFile()) ? new Agent({ connect: { ca: readFileSync(this.caFile()) } }) : undefined;
      if (!this.agent) return false;
      const response = await fetch(`${this.server}/readyz`, { dispatcher: this.agent, headers: { Authorization: `Bearer ${this.adminToken}` } });
      await response.body?.cancel();
      return response.ok;
    }, 90_000);
    this.writeKubeconfig(this.adminKubeconfig, 'admin', this.adminToken);
    this.writeKubeconfig(this.proxyKubeconfig, 'system:kube-proxy', this.proxyToken);
  }

  /** Stop kube-apiserver only (etcd and its data stay). */
  async stopApiserver(): Promise<void> {
    await stopChild(this.apiserver);
    this.apiserver = undefined;
  }

  caFile(): string {
    // kube-apiserver writes a self-signed certificate bundled with its CA when none is given.
    return join(this.dir, 'pki', 'apiserver.crt');
  }

  private writeKubeconfig(path: string, user: string, token: string): void {
    writeFileSync(path, JSON.stringify({
      apiVersion: 'v1', kind: 'Config', 'current-context': 'test',
      clusters: [{ name: 'test', cluster: { server: this.server, 'certificate-authority': this.caFile() } }],
      users: [{ name: user, user: { token } }],
      contexts: [{ name: 'test', context: { cluster: 'test', user } }],
    }));
  }

  private async waitFor(name: string, child: ChildProcess, ready: () => Promise<boolean>, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}; see ${join(this.dir, `${name}.log`)}:\n${this.tail(name)}`);
      try { if (await ready()) return; } catch { /* not up yet */ }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    throw new Error(`${name} not ready after ${timeoutMs} ms; see ${join(this.dir, `${name}.log`)}:\n${this.tail(name)}`);
  }

  private tail(name: string): string {
    try { return readFileSync(join(this.dir, `${name}.log`), 'utf8').split('\n').slice(-15).join('\n'); } catch { return ''; }
  }

  /** An admin REST call; returns the parsed body. Throws on an unexpected status. */
  async request(method: string, path: string, body?: unknown, okStatuses: readonly number[] = [200, 201]): Promise<Record<string, unknown>> {
    if (!this.agent) throw new Error('apiserver not started');
    const response = await fetch(`${this.server}${path}`, {
      method,
      dispatcher: this.agent,
      headers: {
        Authorization: `Bearer ${this.adminToken}`, Accept: 'application/json',
        'Content-Type': method === 'PATCH' ? 'application/merge-patch+json' : 'application/json',
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    if (!okStatuses.includes(response.status)) throw new Error(`${method} ${path}: HTTP ${response.status} ${text.slice(0, 300)}`);
    return text ? JSON.parse(text) as Record<string, unknown> : {};
  }

  /**
   * Make the apiserver reachable at the same 127.0.0.1:<port> (so through the same kubeconfigs) inside a network
   * namespace: `spawnInNs` starts the bridge's small namespace half there (see bridge.ts). Resolves once it listens.
   */
  async reachFrom(spawnInNs: SpawnInNamespace): Promise<ChildProcess> {
    this.bridge ??= ApiserverBridge.open(this.securePort, join(this.dir, 'api.sock'));
    return (await this.bridge).into(spawnInNs);
  }

  async stop(): Promise<void> {
    await (await this.bridge?.catch(() => undefined))?.close();
    this.bridge = undefined;
    await stopChild(this.apiserver);
    await stopChild(this.etcd);
    this.apiserver = undefined;
    this.etcd = undefined;
    await this.agent?.close();
    this.agent = undefined;
    if (process.env.KPROXY_KEEP_KUBE_DIR !== '1') rmSync(this.dir, { recursive: true, force: true });
  }

  /** etcd's client URL (for compaction in 410 tests). */
  get etcdUrl(): string {
    return `http://127.0.0.1:${this.etcdPort}`;
  }
}
