// Time as the sync loop and the sources see it, injected so tests control it (src/util/clock.ts: the system's,
// src/sync/fake-clock.ts: the tests').

export interface TimerHandle {
  cancel(): void;
}

export interface Clock {
  /** Epoch milliseconds. */
  now(): number;
  /** Run `fn` once after `ms`. Timers never keep the process alive on their own. */
  setTimer(fn: () => void, ms: number): TimerHandle;
}
