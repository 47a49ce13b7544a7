export { SyncLoop, type SyncLoopOptions, type SyncLoopStatus } from './loop.ts';
export { systemClock } from './clock.ts';
export { decideNextSync, backoffDelay, FULL_SYNC_PERIOD_MS, type ScheduleInput, type ScheduleDecision, type BackoffOptions } from './schedule.ts';
