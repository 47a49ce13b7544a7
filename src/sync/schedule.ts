// When should the next sync run, and is it full? A pure function so the timing rules can be table-tested on their own.
//
// Rules (kube-proxy's bounded-frequency runner, plus retry):
// - nothing runs before the source delivered its first complete state;
// - a queued change, or a full sync asked for (drift: something else rewrote the node's rules), runs at once, but
//   never sooner than minSyncPeriod after the previous sync started (a burst inside that window is coalesced);
// - with nothing to do, a sync runs `resyncPeriodMs` after the previous one started (the mode's cadence: an hour in
//   iptables and nftables modes, as kube-proxy's FullSyncPeriod; syncPeriod in the others);
// - a sync is full when it must be (the first, after a failure, when asked) or when `fullSyncPeriodMs` passed since
//   the last full one; otherwise it is partial (only what changed);
// - after a failure the next sync is a full one at the backoff deadline; changes that arrive meanwhile wait
//   for it (hammering a failing kernel helps nobody) and are coalesced into it.

/** kube-proxy's proxyutil.FullSyncPeriod: the iptables and nftables proxiers rewrite everything once an hour. */
export const FULL_SYNC_PERIOD_MS = 3_600_000;

export interface ScheduleInput {
  readonly now: number;
  /** The source has delivered its first complete state. */
  readonly ready: boolean;
  /** A change was queued and not yet applied. */
  readonly changePending: boolean;
  /** A full sync was asked for (the mode saw its rules tampered with). */
  readonly fullRequested: boolean;
  /** Start time of the previous sync attempt (successful or not); undefined before the first. */
  readonly lastStartedAt?: number;
  /** Start time of the last successful full sync; undefined before the first. */
  readonly lastFullAt?: number;
  /** Set while the last attempt failed: when the retry is due. */
  readonly retryAt?: number;
  /** The next sync must rewrite everything (first sync, after a failure). */
  readonly needFull: boolean;
  readonly minSyncPeriodMs: number;
  /** Longest time between syncs when nothing happens. */
  readonly resyncPeriodMs: number;
  /** Longest time between full syncs. */
  readonly fullSyncPeriodMs: number;
}

export type ScheduleDecision =
  | { readonly kind: 'idle' }
  | { readonly kind: 'wait'; readonly at: number }
  | { readonly kind: 'run'; readonly full: boolean };

export function decideNextSync(input: ScheduleInput): ScheduleDecision {
  if (!input.ready) return { kind: 'idle' };
  const last = input.lastStartedAt;
  if (last === undefined) return { kind: 'run', full: true };
  const earliest = last + input.minSyncPeriodMs;
  const periodicAt = last + input.resyncPeriodMs;

  if (input.retryAt !== undefined) {
    const at = Math.max(input.retryAt, earliest);
    return input.now >= at ? { kind: 'run', full: true } : { kind: 'wait', at };
  }
  const wanted = input.changePending || input.fullRequested;
  const dueAt = wanted ? Math.min(Math.max(input.now, earliest), periodicAt) : periodicAt;
  if (input.now < dueAt) return { kind: 'wait', at: dueAt };
  const fullDue = input.lastFullAt === undefined || input.now >= input.lastFullAt + input.fullSyncPeriodMs;
  return { kind: 'run', full: input.needFull || input.fullRequested || fullDue };
}

export interface BackoffOptions {
  /** Delay after the first failure. */
  readonly initialMs: number;
  readonly maxMs: number;
  readonly factor: number;
}

/** Delay before retry number `attempt` (1 for the first failure): initial × factor^(attempt-1), capped. */
export function backoffDelay(options: BackoffOptions, attempt: number): number {
  const delay = options.initialMs * options.factor ** Math.max(0, attempt - 1);
  return Math.min(options.maxMs, Math.round(delay));
}
