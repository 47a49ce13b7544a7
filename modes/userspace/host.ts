// Where the relay runs: in the control thread itself (`workers: 0`), or in relay processes (default 2) that
// share every TCP listening port with SO_REUSEPORT. Processes, not threads: each has its own descriptor table
// (a relayed connection holds two descriptors and one process may hold only so many), its own heap, and keeps
// relaying while the control thread runs a long sync.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { BOOT_CODE, strippedModules } from './boot.ts';
import type { UserspaceConfig } from './config.ts';
import type { LogLevel, LogSink } from './rate-log.ts';
import { Relay } from './relay.ts';
import type { ApplyInput, ApplyResult, PruneResult } from './relay.ts';
import { mergeStats } from './stats.ts';
import type { RelayStats } from './stats.ts';
import type { Listener, ListenerTable } from './table.ts';

export interface RelayHost {
  /** Every relay has opened (or failed to open) every listener of the table it serves. */
  apply(input: ApplyInput): Promise<ApplyResult>;
  /** Every relay has closed the listeners that its last applied table no longer has. */
  prune(): Promise<PruneResult>;
  stats(): Promise<RelayStats>;
  close(): Promise<void>;
}

/**
 * Which relay process opens a listener. TCP listeners are opened by every process (the kernel spreads new
 * connections over them); endpoint choices are still made in one place, host 0 (decider.ts), so round robin is
 * exact and affinity global. UDP listeners only in host 0: a UDP flow's state must live in one process.
 */
export function servedBy(listener: Listener, index: number, count: number): boolean {
  return count <= 1 || listener.protocol === 'TCP' || index === 0;
}

export function shareOf(table: ListenerTable, index: number, count: number): ListenerTable {
  if (count <= 1) return table;
  return { ...table, listeners: table.listeners.filter((l) => servedBy(l, index, count)) };
}

export function inProcessHost(config: UserspaceConfig, log: LogSink): RelayHost {
  const relay = new Relay({ config, log, reusePort: false, maxConnections: config.maxConnections });
  return {
    apply: (input) => relay.apply(input),
    prune: () => relay.prune(),
    stats: async () => relay.stats(),
    close: () => relay.close(),
  };
}

// ---- relay processes ----

/** argv[2] of relay-host.ts, as JSON. */
export interface HostInit {
  readonly config: UserspaceConfig;
  readonly index: number;
  readonly count: number;
  /** Socket on which host 0 answers endpoint choices (Linux abstract namespace: nothing left on disk). */
  readonly deciderPath: string;
}

export type ToHost =
  | { readonly type: 'apply'; readonly id: number; readonly input: ApplyInput }
  | { readonly type: 'prune'; readonly id: number }
  | { readonly type: 'stats'; readonly id: number }
  | { readonly type: 'close'; readonly id: number };

export type FromHost =
  | { readonly type: 'boot' }
  | { readonly type: 'ready' }
  | { readonly type: 'reply'; readonly id: number; readonly value: unknown; readonly error?: string }
  | { readonly type: 'log'; readonly level: LogLevel; readonly obj: Record<string, unknown>; readonly msg: string };

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
}

const HOST_SCRIPT = new URL('./relay-host.ts', import.meta.url);
const EXIT_GRACE_MS = 3000;
/**
 * V8 flags of a relay process. A small young generation: a relay allocates a little per connection and keeps it,
 * and the default (up to 16 MiB per semi-space) costs ~20 MiB per process for nothing measurable in throughput.
 */
const RELAY_FLAGS = ['--max-semi-space-size=1'];
/** One malloc arena: a relay has one busy thread, and more arenas only fragment (~6 MiB per 5k connections). */
const RELAY_ENV = { ...process.env, MALLOC_ARENA_MAX: '1' };

class RelayProcess {
  readonly #init: HostInit;
  readonly #log: LogSink;
  #child: ChildProcess;
  #nextId = 1;
  readonly #pending = new Map<number, Pending>();
  #lastInput: ApplyInput | undefined;
  /** Resolves when the current child process listens for commands, or has exited. */
  #started!: Promise<void>;
  #closing = false;
  #closed: Promise<void> | undefined;

  constructor(init: HostInit, log: LogSink) {
    this.#init = init;
    this.#log = log;
    this.#child = this.#spawn();
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  #spawn(): ChildProcess {
    // The project's Node, without the parent's flags (a test runner's --test must not reach the relay) and
    // without the TypeScript stripper (boot.ts).
    const child = spawn(process.execPath, [...RELAY_FLAGS, '--input-type=module', '-e', BOOT_CODE, HOST_SCRIPT.href,
      JSON.stringify(this.#init)], { env: RELAY_ENV, serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let ready = (): void => undefined;
    this.#started = new Promise<void>((resolve) => {
      ready = resolve;
      child.once('exit', () => resolve());
    });
    child.on('message', (m: FromHost) => {
      if (m.type === 'boot') return void child.send(strippedModules(HOST_SCRIPT));
      if (m.type === 'ready') return ready();
      if (m.type === 'log') return this.#log(m.level, { ...m.obj, relay: this.#init.index }, m.msg);
      const p = this.#pending.get(m.id);
      this.#pending.delete(m.id);
      if (m.error !== undefined) p?.reject(new Error(m.error));
      else p?.resolve(m.value);
    });
    child.on('error', (err) => this.#log('error', { relay: this.#init.index, err: err.message }, 'relay process failed'));
    child.once('exit', (code, signal) => {
      for (const p of this.#pending.values()) p.reject(new Error(`relay process ${this.#init.index} exited (${code ?? signal})`));
      this.#pending.clear();
      if (this.#closing) return;
      // A relay process that dies is replaced and given the last table again.
      this.#log('error', { relay: this.#init.index, code, signal }, 'relay process exited; restarting it');
      this.#child = this.#spawn();
      if (this.#lastInput) this.apply(this.#lastInput).catch(() => undefined);
    });
    return child;
  }

  async #call(message: { type: 'apply'; input: ApplyInput } | { type: 'prune' } | { type: 'stats' } | { type: 'close' }): Promise<unknown> {
    const id = this.#nextId++;
    if (this.#closing && message.type !== 'close') throw new Error('the relay is stopped');
    const child = this.#child;
    await this.#started;
    if (!child.connected) return Promise.reject(new Error(`relay process ${this.#init.index} is not running`));
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      child.send({ ...message, id } satisfies ToHost, (err) => {
        if (!err) return;
        this.#pending.delete(id);
        reject(err);
      });
    });
  }

  async apply(input: ApplyInput): Promise<ApplyResult> {
    this.#lastInput = input;
    const share = { ...input, table: shareOf(input.table, this.#init.index, this.#init.count) };
    return (await this.#call({ type: 'apply', input: share })) as ApplyResult;
  }

  async prune(): Promise<PruneResult> {
    return (await this.#call({ type: 'prune' })) as PruneResult;
  }

  async stats(): Promise<RelayStats> {
    return (await this.#call({ type: 'stats' })) as RelayStats;
  }

  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#closing = true;
      const child = this.#child;
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      await this.#call({ type: 'close' }).catch(() => undefined);
      const timer = setTimeout(() => child.kill('SIGKILL'), EXIT_GRACE_MS);
      await exited;
      clearTimeout(timer);
    })();
    return this.#closed;
  }
}

export interface ProcessHost extends RelayHost {
  /** Process ids of the relay processes (tests and the bench add up their memory). */
  pids(): number[];
}

export function processHost(config: UserspaceConfig, log: LogSink): ProcessHost {
  const count = config.workers;
  const deciderPath = `\0kproxy-relay-${process.pid}-${randomBytes(8).toString('hex')}`;
  const hosts = Array.from({ length: count }, (_, index) => new RelayProcess({ config, index, count, deciderPath }, log));
  return {
    async apply(input) {
      const results = await Promise.all(hosts.map((h) => h.apply(input)));
      // Every process opens the shared listeners: report each listener once, a failure in any process counts.
      const failed = new Map<string, string>();
      for (const r of results) for (const f of r.failed) failed.set(f.key, f.error);
      const most = (k: 'opened' | 'updated' | 'stale'): number => results.reduce((n, r) => Math.max(n, r[k]), 0);
      return { opened: most('opened'), updated: most('updated'), stale: most('stale'),
        failed: [...failed].map(([key, error]) => ({ key, error })) };
    },
    async prune() {
      const results = await Promise.all(hosts.map((h) => h.prune()));
      return { closed: results.reduce((n, r) => Math.max(n, r.closed), 0) };
    },
    async stats() {
      return mergeStats(await Promise.all(hosts.map((h) => h.stats())));
    },
    async close() {
      await Promise.all(hosts.map((h) => h.close()));
    },
    pids: () => hosts.map((h) => h.pid).filter((p): p is number => p !== undefined),
  };
}
