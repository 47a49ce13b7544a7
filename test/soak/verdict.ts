// Whether a soak run held its memory budget, from its samples (pure; see soak.ts for how they are taken).
//
// RSS saw-tooths with V8's collections (old-space garbage piles up between major GCs), so one sample is a random
// phase of that cycle. The warm-up value is therefore the PEAK of the window that ends the warm-up, and a run passes
// when no later sample exceeds that peak by more than the allowed factor: a process in steady state keeps swinging
// under it, a leak climbs through it. Descriptors and descendants (tools in flight, the churned service's sockets)
// fluctuate too: they "grow" when even the smallest count of the final window is above the largest of the warm-up
// window.

export interface SoakSample {
  /** Milliseconds since the churn started. */
  readonly atMs: number;
  /** RSS of every kproxy process (the agent and its relay processes). */
  readonly rssKiB: number;
  /** The agent's V8 heap (from its /metrics), when it answered. */
  readonly heapUsedBytes: number | undefined;
  readonly heapTotalBytes: number | undefined;
  /** Open descriptors of every kproxy process. */
  readonly fds: number;
  /** kproxy processes (the agent and relay processes). */
  readonly nodeProcesses: number;
  /** Every descendant of the agent (relay processes, tools while they run). */
  readonly descendants: number;
  /** Syncs done so far (from /metrics), when it answered. */
  readonly syncs: number | undefined;
  /** Churn operations applied so far. */
  readonly changes: number;
}

export interface SoakCriteria {
  readonly warmupMs: number;
  /** After the warm-up, RSS stays at or under this factor × the warm-up value. */
  readonly rssFactor: number;
  /** Length of the window that ends the warm-up (its peaks are the warm-up values) and of the run's final window. */
  readonly windowMs: number;
}

export interface SeriesSummary {
  readonly start: number;
  /** The peak of the window ending the warm-up. */
  readonly warmup: number;
  readonly end: number;
  readonly max: number;
}

export interface SoakVerdict {
  readonly pass: boolean;
  /** One line per failed check. */
  readonly failures: readonly string[];
  readonly rssMiB: SeriesSummary;
  /** Largest RSS after the warm-up / the warm-up value. */
  readonly rssRatio: number;
  readonly heapUsedMiB: SeriesSummary | undefined;
  readonly fds: SeriesSummary;
  readonly descendants: SeriesSummary;
}

const MIB = 1024;

function summarize(all: readonly SoakSample[], warmup: readonly SoakSample[], value: (s: SoakSample) => number): SeriesSummary {
  const values = all.map(value);
  return {
    start: values[0] ?? NaN,
    warmup: Math.max(...warmup.map(value)),
    end: values.at(-1) ?? NaN,
    max: Math.max(...values),
  };
}

/** `errorsLogged`: error lines the agent logged meanwhile (a failed sync, …); any fails the run. */
export function judgeSoak(samples: readonly SoakSample[], criteria: SoakCriteria, errorsLogged = 0): SoakVerdict {
  const last = samples.at(-1);
  const warmupWindow = samples.filter((s) => s.atMs <= criteria.warmupMs && s.atMs >= criteria.warmupMs - criteria.windowMs);
  const after = samples.filter((s) => s.atMs > criteria.warmupMs);
  const failures: string[] = [];
  if (last === undefined || warmupWindow.length === 0 || after.length === 0) {
    failures.push(`too few samples (${samples.length}) to compare after a ${criteria.warmupMs / 1000} s warm-up`);
  }
  const finalWindow = after.filter((s) => last !== undefined && s.atMs >= last.atMs - criteria.windowMs);
  const rssMiB = summarize(samples, warmupWindow, (s) => s.rssKiB / MIB);
  const rssAfter = Math.max(...after.map((s) => s.rssKiB / MIB));
  const rssRatio = rssAfter / rssMiB.warmup;
  if (rssRatio > criteria.rssFactor) {
    failures.push(`RSS grew to ${rssAfter.toFixed(0)} MiB after the warm-up, ${rssRatio.toFixed(2)}× its warm-up value ${rssMiB.warmup.toFixed(0)} MiB (allowed ${criteria.rssFactor}×)`);
  }
  const growth = (name: string, value: (s: SoakSample) => number): void => {
    if (finalWindow.length === 0 || warmupWindow.length === 0) return;
    const floor = Math.min(...finalWindow.map(value));
    const ceiling = Math.max(...warmupWindow.map(value));
    if (floor > ceiling) failures.push(`${name} grew: never below ${floor} in the final ${criteria.windowMs / 1000} s, at most ${ceiling} at the warm-up`);
  };
  growth('open descriptors', (s) => s.fds);
  growth('child processes', (s) => s.descendants);
  // A full sync at 10k services can take minutes on a loaded machine: the agent must sync at all after the warm-up.
  const syncsAtWarmup = warmupWindow.at(-1)?.syncs;
  const syncsAtEnd = last?.syncs;
  if (after.length > 0 && (syncsAtWarmup === undefined || syncsAtEnd === undefined || syncsAtEnd <= syncsAtWarmup)) {
    failures.push('no sync finished after the warm-up: the agent stopped following the churn');
  }
  if (errorsLogged > 0) failures.push(`the agent logged ${errorsLogged} error${errorsLogged === 1 ? '' : 's'}`);
  const heap = samples.filter((s) => s.heapUsedBytes !== undefined);
  const heapWarmup = warmupWindow.filter((s) => s.heapUsedBytes !== undefined);
  return {
    pass: failures.length === 0,
    failures,
    rssMiB,
    rssRatio,
    heapUsedMiB: heap.length > 0 && heapWarmup.length > 0 ? summarize(heap, heapWarmup, (s) => (s.heapUsedBytes ?? 0) / 2 ** 20) : undefined,
    fds: summarize(samples, warmupWindow, (s) => s.fds),
    descendants: summarize(samples, warmupWindow, (s) => s.descendants),
  };
}
