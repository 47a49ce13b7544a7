// What the sync loop and the cluster store tell observers (health, metrics, events).
import type { DesiredState } from './types.ts';
import type { SyncReport } from './mode.ts';
import type { ObjectKind } from './source.ts';

export interface SyncSucceeded {
  readonly full: boolean;
  /** Epoch milliseconds (from the injected clock). */
  readonly startedAt: number;
  readonly finishedAt: number;
  /** When the oldest change applied by this sync was queued; undefined for a periodic resync with no change. */
  readonly queuedAt?: number;
  /** When the oldest change that arrived while this sync ran (so is not applied by it) was queued. */
  readonly pendingSince?: number;
  readonly state: DesiredState;
  readonly report: SyncReport;
}

export interface SyncFailed {
  readonly full: boolean;
  readonly startedAt: number;
  readonly finishedAt: number;
  readonly error: Error;
  /** Consecutive failures so far, 1 for the first. */
  readonly attempt: number;
  readonly retryInMs: number;
}

export interface SyncObserver {
  changeQueued?(at: number): void;
  syncSucceeded?(event: SyncSucceeded): void;
  syncFailed?(event: SyncFailed): void;
}

/** An object that was skipped because it is invalid. */
export interface InvalidObject {
  readonly kind: ObjectKind;
  /** "namespace/name" (or "name" for Nodes, "<unnamed>" when the object has no usable name). */
  readonly ref: string;
  readonly reason: string;
}

/** An object that is used as it is, but read from a legacy form (e.g. an address with leading zeros). */
export interface ObjectNotice {
  readonly kind: ObjectKind;
  readonly ref: string;
  /** One line each: the field, what it says and how it is read. */
  readonly notes: readonly string[];
}
