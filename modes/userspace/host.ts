// Where the relay runs: in the control thread itself, or in worker threads that share every listening port
// (SO_REUSEPORT), so that the relay uses every core and a long sync in the control thread does not stall it.
import { Worker } from 'node:worker_threads';
import { COUNTER_SLOTS, counterSlot } from './balancer.ts';
import type { UserspaceConfig } from './config.ts';
import type { LogLevel, LogSink } from './rate-log.ts';
import { Relay } from './relay.ts';
import type { ApplyInput, ApplyResult } from './relay.ts';
import { mergeStats } from './stats.ts';
import type { RelayStats } from './stats.ts';
import type { Listener, ListenerTable } from './table.ts';

export interface RelayHost {
  apply(input: ApplyInput): Promise<ApplyResult>;
  stats(): Promise<RelayStats>;
  close(): Promise<void>;
}

/**
 * Which thread serves a listener. ClientIP affinity is remembered per thread, so a service with affinity is
 * served by one thread only (all of its listeners); the other listeners are opened by every thread.
 */
export function servedBy(listener: Listener, index: number, count: number): boolean {
  if (count <= 1 || listener.route.affinityTimeoutMs === undefined) return true;
  return counterSlot(listener.route.serviceKey) % count === index;
}

export function shareOf(table: ListenerTable, index: number, count: number): ListenerTable {
  if (count <= 1) return table;
  return { ...table, listeners: table.listeners.filter((l) => servedBy(l, index, count)) };
}

export function inProcessHost(config: UserspaceConfig, log: LogSink): RelayHost {
  const relay = new Relay({ config, log, reusePort: false, maxConnections: config.maxConnections });
  return {
    apply: (input) => relay.apply(input),
    stats: async () => relay.stats(),
    close: () => relay.close(),
  };
}

// ---- worker threads ----

export interface WorkerInit {
  readonly config: UserspaceConfig;
  readonly index: number;
  readonly count: number;
  /** Round-robin counters shared by all relay threads. */
  readonly counters: SharedArrayBuffer;
}

export type ToWorker =
  | { readonly type: 'apply'; readonly id: number; readonly input: ApplyInput }
  | { readonly type: 'stats'; readonly id: number }
  | { readonly type: 'close'; readonly id: number };

export type FromWorker =
  | { readonly type: 'reply'; readonly id: number; readonly value: unknown; readonly error?: string }
  | { readonly type: 'log'; readonly level: LogLevel; readonly obj: Record<string, unknown>; readonly msg: string };

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
}

class RelayThread {
  readonly #init: WorkerInit;
  readonly #log: LogSink;
  #worker: Worker;
  #nextId = 1;
  readonly #pending = new Map<number, Pending>();
  #lastInput: ApplyInput | undefined;
  #closing = false;
  #closed: Promise<void> | undefined;

  constructor(init: WorkerInit, log: LogSink) {
    this.#init = init;
    this.#log = log;
    this.#worker = this.#spawn();
  }

  #spawn(): Worker {
    const worker = new Worker(new URL('./relay-worker.ts', import.meta.url), { workerData: this.#init });
    worker.on('message', (m: FromWorker) => {
      if (m.type === 'log') return this.#log(m.level, { ...m.obj, thread: this.#init.index }, m.msg);
      const p = this.#pending.get(m.id);
      this.#pending.delete(m.id);
      if (m.error !== undefined) p?.reject(new Error(m.error));
      else p?.resolve(m.value);
    });
    worker.on('error', (err) => this.#log('error', { thread: this.#init.index, err: err.message }, 'relay thread failed'));
    worker.on('exit', (code) => {
      for (const p of this.#pending.values()) p.reject(new Error(`relay thread ${this.#init.index} exited (${code})`));
      this.#pending.clear();
      if (this.#closing) return;
      // A relay thread that dies is replaced and given the last table again.
      this.#log('error', { thread: this.#init.index, code }, 'relay thread exited; restarting it');
      this.#worker = this.#spawn();
      if (this.#lastInput) this.apply(this.#lastInput).catch(() => undefined);
    });
    return worker;
  }

  #call(message: { type: 'apply'; input: ApplyInput } | { type: 'stats' } | { type: 'close' }): Promise<unknown> {
    const id = this.#nextId++;
    if (this.#closing && message.type !== 'close') return Promise.reject(new Error('the relay is stopped'));
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ ...message, id } satisfies ToWorker);
    });
  }

  async apply(input: ApplyInput): Promise<ApplyResult> {
    this.#lastInput = input;
    const share = { ...input, table: shareOf(input.table, this.#init.index, this.#init.count) };
    return (await this.#call({ type: 'apply', input: share })) as ApplyResult;
  }

  async stats(): Promise<RelayStats> {
    return (await this.#call({ type: 'stats' })) as RelayStats;
  }

  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#closing = true;
      await this.#call({ type: 'close' }).catch(() => undefined);
      await this.#worker.terminate();
    })();
    return this.#closed;
  }
}

export function workerHost(config: UserspaceConfig, log: LogSink): RelayHost {
  const count = config.workers;
  const counters = new SharedArrayBuffer(COUNTER_SLOTS * Int32Array.BYTES_PER_ELEMENT);
  const threads = Array.from({ length: count }, (_, index) => new RelayThread({ config, index, count, counters }, log));
  return {
    async apply(input) {
      const results = await Promise.all(threads.map((t) => t.apply(input)));
      // Every thread opens the shared listeners: report each listener once, a failure in any thread counts.
      const failed = new Map<string, string>();
      for (const r of results) for (const f of r.failed) failed.set(f.key, f.error);
      const most = (k: 'opened' | 'closed' | 'updated'): number => results.reduce((n, r) => Math.max(n, r[k]), 0);
      return { opened: most('opened'), closed: most('closed'), updated: most('updated'),
        failed: [...failed].map(([key, error]) => ({ key, error })) };
    },
    async stats() {
      return mergeStats(await Promise.all(threads.map((t) => t.stats())));
    },
    async close() {
      await Promise.all(threads.map((t) => t.close()));
    },
  };
}
