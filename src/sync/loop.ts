// The sync loop: turns "something changed" notifications into calls of ProxyMode.sync, at a bounded rate,
// one at a time, with retry after failures, and tells observers (health, metrics) what happened.
import type { DesiredState } from '../model/types.ts';
import type { Logger, ProxyMode } from '../model/mode.ts';
import type { SyncObserver } from '../model/observe.ts';
import type { Clock, TimerHandle } from '../model/clock.ts';
import { backoffDelay, decideNextSync, type BackoffOptions } from './schedule.ts';

export interface SyncLoopOptions {
  readonly clock: Clock;
  readonly log: Logger;
  /** The proxier that programs the node (only `sync` is used). */
  readonly proxier: Pick<ProxyMode, 'sync'>;
  /** The current desired state (taken right before each sync, so bursts of changes collapse). */
  readonly snapshot: () => DesiredState;
  /** True once the source delivered its first complete state; nothing is programmed before. */
  readonly isReady: () => boolean;
  readonly minSyncPeriodMs: number;
  /** The mode's syncPeriod: caps the retry backoff, and is the default of the two periods below. */
  readonly syncPeriodMs: number;
  /** Longest time between syncs when nothing changes (default syncPeriod; an hour in iptables/nftables modes). */
  readonly resyncPeriodMs?: number;
  /** Longest time between full syncs (default syncPeriod; an hour in iptables/nftables modes). */
  readonly fullSyncPeriodMs?: number;
  /** Retry delays after failed syncs; default 1 s doubling up to min(syncPeriod, 60 s). */
  readonly backoff?: Partial<BackoffOptions>;
  readonly observers?: readonly SyncObserver[];
}

export interface SyncLoopStatus {
  readonly running: boolean;
  readonly changePending: boolean;
  /** When the oldest change not yet applied was queued. */
  readonly pendingSince?: number;
  readonly lastStartedAt?: number;
  readonly lastSucceededAt?: number;
  readonly consecutiveFailures: number;
  readonly syncs: number;
}

export class SyncLoop {
  private readonly options: SyncLoopOptions;
  private readonly backoff: BackoffOptions;
  private readonly observers: SyncObserver[];
  private started = false;
  private stopped = false;
  private timer: TimerHandle | undefined;
  private inFlight: Promise<void> | undefined;
  private pendingSince: number | undefined;
  private lastStartedAt: number | undefined;
  private lastSucceededAt: number | undefined;
  private lastFullAt: number | undefined;
  private retryAt: number | undefined;
  private needFull = true;
  private burstQueued = false;
  /** Why a full sync was asked for (requestFullSync), until one starts. */
  private fullRequested: string | undefined;
  private failures = 0;
  private syncs = 0;

  constructor(options: SyncLoopOptions) {
    this.options = options;
    this.observers = [...(options.observers ?? [])];
    this.backoff = {
      initialMs: options.backoff?.initialMs ?? 1000,
      maxMs: options.backoff?.maxMs ?? Math.max(1000, Math.min(options.syncPeriodMs, 60_000)),
      factor: options.backoff?.factor ?? 2,
    };
  }

  /** Observers attached after construction (health and metrics servers are created later). */
  addObserver(observer: SyncObserver): void {
    this.observers.push(observer);
  }

  /** Begin scheduling. Changes queued before start() are kept. */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    this.schedule();
  }

  /** Something changed: sync soon (coalesced with other changes, bounded by minSyncPeriod). */
  requestSync(): void {
    if (this.stopped) return;
    const now = this.options.clock.now();
    this.pendingSince ??= now;
    this.notify((o) => o.changeQueued?.(now));
    this.scheduleAfterBurst();
  }

  /**
   * A sync never starts inside the call that reported a change: a source may report several at once (a manifest
   * reload replaces the Services, then the EndpointSlices), and a snapshot taken between them would program new
   * services without their endpoints (refusing their clients) until the next sync. After the caller's turn, the
   * snapshot has the whole burst.
   */
  private scheduleAfterBurst(): void {
    if (this.burstQueued) return;
    this.burstQueued = true;
    queueMicrotask(() => {
      this.burstQueued = false;
      this.schedule();
    });
  }

  /**
   * Rewrite everything soon (bounded by minSyncPeriod): the mode saw its rules changed by someone else (a firewall
   * reload, an admin's flush). Not a change of the cluster: health and latency metrics do not count it.
   */
  requestFullSync(reason: string): void {
    if (this.stopped) return;
    if (this.fullRequested === undefined) this.options.log.info({ reason }, 'Full resync requested');
    this.fullRequested ??= reason;
    this.schedule();
  }

  /** Stop scheduling and wait for a sync in progress (programmed state stays as it is). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = undefined;
    await this.inFlight;
  }

  status(): SyncLoopStatus {
    return {
      running: this.inFlight !== undefined,
      changePending: this.pendingSince !== undefined,
      ...(this.pendingSince !== undefined && { pendingSince: this.pendingSince }),
      ...(this.lastStartedAt !== undefined && { lastStartedAt: this.lastStartedAt }),
      ...(this.lastSucceededAt !== undefined && { lastSucceededAt: this.lastSucceededAt }),
      consecutiveFailures: this.failures,
      syncs: this.syncs,
    };
  }

  private schedule(): void {
    if (!this.started || this.stopped || this.inFlight) return; // a running sync reschedules when it ends
    this.timer?.cancel();
    this.timer = undefined;
    const now = this.options.clock.now();
    const decision = decideNextSync({
      now,
      ready: this.options.isReady(),
      changePending: this.pendingSince !== undefined,
      fullRequested: this.fullRequested !== undefined,
      ...(this.lastStartedAt !== undefined && { lastStartedAt: this.lastStartedAt }),
      ...(this.lastFullAt !== undefined && { lastFullAt: this.lastFullAt }),
      ...(this.retryAt !== undefined && { retryAt: this.retryAt }),
      needFull: this.needFull,
      minSyncPeriodMs: this.options.minSyncPeriodMs,
      resyncPeriodMs: this.options.resyncPeriodMs ?? this.options.syncPeriodMs,
      fullSyncPeriodMs: this.options.fullSyncPeriodMs ?? this.options.syncPeriodMs,
    });
    if (decision.kind === 'run') {
      this.inFlight = this.runOnce(decision.full).finally(() => {
        this.inFlight = undefined;
        this.schedule();
      });
    } else if (decision.kind === 'wait') {
      this.timer = this.options.clock.setTimer(() => {
        this.timer = undefined;
        this.schedule();
      }, decision.at - now);
    }
  }

  private async runOnce(full: boolean): Promise<void> {
    const { clock, log } = this.options;
    const startedAt = clock.now();
    const queuedAt = this.pendingSince;
    this.pendingSince = undefined;
    // A full sync serves the request; one asked for while it runs gets a sync of its own.
    if (full) this.fullRequested = undefined;
    this.lastStartedAt = startedAt;
    this.syncs++;
    try {
      const state = this.options.snapshot();
      const report = await this.options.proxier.sync(state, { full });
      const finishedAt = clock.now();
      this.failures = 0;
      this.retryAt = undefined;
      this.needFull = false;
      if (full) this.lastFullAt = startedAt;
      this.lastSucceededAt = finishedAt;
      log.debug({ full, durationMs: finishedAt - startedAt, ...report.stats }, 'Sync done');
      this.notify((o) => o.syncSucceeded?.({
        full, startedAt, finishedAt, ...(queuedAt !== undefined && { queuedAt }),
        ...(this.pendingSince !== undefined && { pendingSince: this.pendingSince }), state, report,
      }));
    } catch (thrown) {
      const error = thrown instanceof Error ? thrown : new Error(String(thrown));
      const finishedAt = clock.now();
      this.failures++;
      this.needFull = true;
      // The changes this sync carried are still not applied: keep their queue time for the latency metric.
      if (queuedAt !== undefined) this.pendingSince = Math.min(queuedAt, this.pendingSince ?? queuedAt);
      const retryInMs = backoffDelay(this.backoff, this.failures);
      this.retryAt = finishedAt + retryInMs;
      log.error({ err: error, full, attempt: this.failures, retryInMs }, 'Sync failed; will retry');
      this.notify((o) => o.syncFailed?.({ full, startedAt, finishedAt, error, attempt: this.failures, retryInMs }));
    }
  }

  /** An observer that throws must not break the loop. */
  private notify(call: (observer: SyncObserver) => void): void {
    for (const observer of this.observers) {
      try {
        call(observer);
      } catch (err) {
        this.options.log.warn({ err }, 'Sync observer failed');
      }
    }
  }
}
