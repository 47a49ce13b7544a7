// Watches the number of entries of an iptables-legacy table in a namespace as the kernel holds it (scripts/xt-count.ts:
// one getsockopt per poll, no listing), for benchmarks that must see when rules land without loading the machine.
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const XT_COUNT = fileURLToPath(new URL('./scripts/xt-count.ts', import.meta.url));
export const NFT_GEN = fileURLToPath(new URL('./scripts/nft-gen.ts', import.meta.url));

export interface TableSample {
  /** Epoch milliseconds of the poll that saw it. */
  readonly at: number;
  readonly entries: number;
}

export interface TableWatch {
  /** The latest sample. */
  current(): TableSample;
  /** Every change seen, oldest first (the first sample included). */
  readonly history: readonly TableSample[];
  /** The first sample at or after `since` (epoch ms) that satisfies `test`; rejects after `timeoutMs`. */
  until(test: (entries: number) => boolean, options?: { since?: number; timeoutMs?: number }): Promise<TableSample>;
  stop(): void;
}

export interface TableWatchOptions {
  readonly family?: 'ipv4' | 'ipv6';
  readonly table?: string;
  /** Poll interval of the watcher (default 10 ms; a poll costs microseconds). */
  readonly intervalMs?: number;
}

type SpawnInNamespace = (cmd: string, args: readonly string[]) => ChildProcess;

/** Watch an iptables-legacy table's entry count in a namespace; `spawnInNs` starts the watcher there (and owns its PID). */
export function watchTable(spawnInNs: SpawnInNamespace, options: TableWatchOptions = {}): Promise<TableWatch> {
  return follow(spawnInNs(process.execPath, [XT_COUNT, options.family ?? 'ipv4', options.table ?? 'nat', String(options.intervalMs ?? 10)]));
}

/**
 * Watch the nf_tables generation of a namespace (it changes with every committed transaction): the samples' `entries`
 * are generation numbers, so a change of rules shows as a new value, as with watchTable.
 */
export function watchNftGeneration(spawnInNs: SpawnInNamespace, intervalMs = 10): Promise<TableWatch> {
  return follow(spawnInNs(process.execPath, [NFT_GEN, String(intervalMs)]));
}

/** Follow a watcher process that prints "<epoch ms> <value> …" lines. */
async function follow(child: ChildProcess): Promise<TableWatch> {
  const history: TableSample[] = [];
  const waiters = new Set<() => void>();
  let exited = false;
  child.once('exit', () => { exited = true; for (const wake of waiters) wake(); });
  const lines = createInterface({ input: child.stdout ?? process.stdin });
  lines.on('line', (line) => {
    const [at = '', entries = ''] = line.split(' ');
    history.push({ at: Number(at), entries: Number(entries) });
    for (const wake of waiters) wake();
  });
  const find = (test: (entries: number) => boolean, since: number): TableSample | undefined => {
    // the sample in effect at `since` counts too: it is the state the kernel had then
    let start = history.length - 1;
    while (start > 0 && (history[start]?.at ?? 0) > since) start--;
    for (let i = Math.max(0, start); i < history.length; i++) {
      const sample = history[i];
      if (sample && test(sample.entries)) return sample.at < since ? { at: since, entries: sample.entries } : sample;
    }
    return undefined;
  };
  const until = (test: (entries: number) => boolean, opts: { since?: number; timeoutMs?: number } = {}): Promise<TableSample> =>
    new Promise((resolve, reject) => {
      const since = opts.since ?? 0;
      const check = (): void => {
        const hit = find(test, since);
        if (hit) { done(); resolve(hit); } else if (exited) { done(); reject(new Error('the table watcher exited')); }
      };
      const timer = setTimeout(() => { done(); reject(new Error(`table watch: no match within ${opts.timeoutMs} ms (entries ${history.at(-1)?.entries})`)); },
        opts.timeoutMs ?? 60_000);
      const done = (): void => { clearTimeout(timer); waiters.delete(check); };
      waiters.add(check);
      check();
    });
  await until(() => true, { timeoutMs: 10_000 });
  return {
    current: () => history.at(-1) ?? { at: 0, entries: 0 },
    history,
    until,
    stop: () => { if (child.pid !== undefined && child.exitCode === null) child.kill('SIGKILL'); },
  };
}
