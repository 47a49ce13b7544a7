// When should the next sync run? A pure function so the timing rules can be table-tested on their own.
//
// Rules (the bounded-frequency runner kube-proxy uses, plus retry):
// - nothing runs before the source delivered its first complete state;
// - a queued change runs at once, but never sooner than minSyncPeriod after the previous sync started
//   (a burst of changes inside that window is coalesced into one sync);
// - with no change, a full resync runs syncPeriod after the previous sync started;
// - after a failure the next sync is a full one at the backoff deadline; changes that arrive meanwhile wait
//   for it (hammering a failing kernel helps nobody) and are coalesced into it.

export interface ScheduleInput {
  readonly now: number;
  /** The source has delivered its first complete state. */
  readonly ready: boolean;
  /** A change was queued and not yet applied. */
  readonly changePending: boolean;
  /** Start time of the previous sync attempt (successful or not); undefined before the first. */
  readonly lastStartedAt?: number;
  /** Set while the last attempt failed: when the retry is due. */
  readonly retryAt?: number;
  /** The next sync must rewrite everything (first sync, after a failure). */
  readonly needFull: boolean;
  readonly minSyncPeriodMs: number;
  readonly syncPeriodMs: number;
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
  const periodicAt = last + input.syncPeriodMs;

  if (input.retryAt !== undefined) {
    const at = Math.max(input.retryAt, earliest);
    return input.now >= at ? { kind: 'run', full: true } : { kind: 'wait', at };
  }
  const dueAt = input.changePending ? Math.min(Math.max(input.now, earliest), periodicAt) : periodicAt;
  if (input.now < dueAt) return { kind: 'wait', at: dueAt };
  const periodic = input.now >= periodicAt;
  return { kind: 'run', full: input.needFull || periodic };
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
