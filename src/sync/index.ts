export { SyncLoop, type SyncLoopOptions, type SyncLoopStatus } from './loop.ts';
export { systemClock, type Clock, type TimerHandle } from './clock.ts';
export { decideNextSync, backoffDelay, type ScheduleInput, type ScheduleDecision, type BackoffOptions } from './schedule.ts';
