// The system's clock, for the sync loop and the sources (it lives in src/util so the kit can use it too).
export { systemClock } from '../util/clock.ts';
