// Jittered exponential backoff for informer restarts: each failure waits longer (up to a cap), with random
// jitter so that many proxies restarting after one apiserver outage do not reconnect in lockstep.

export interface BackoffOptions {
  /** First delay. Default 800 ms (client-go's reflector uses 800 ms). */
  readonly initialMs?: number;
  /** Largest delay. Default 30 s. */
  readonly maxMs?: number;
  /** Growth per failure. Default 2. */
  readonly factor?: number;
  /** Extra random share added to each delay, 0..1. Default 0.5 (delay × [1, 1.5)). */
  readonly jitter?: number;
  /** Random source in [0, 1), injectable for tests. */
  readonly random?: () => number;
}

export class Backoff {
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly factor: number;
  private readonly jitter: number;
  private readonly random: () => number;
  private failures = 0;

  constructor(options: BackoffOptions = {}) {
    this.initialMs = options.initialMs ?? 800;
    this.maxMs = options.maxMs ?? 30_000;
    this.factor = options.factor ?? 2;
    this.jitter = options.jitter ?? 0.5;
    this.random = options.random ?? Math.random;
  }

  /** The delay before the next attempt; each call counts one more failure. */
  next(): number {
    const base = Math.min(this.maxMs, this.initialMs * this.factor ** this.failures);
    this.failures++;
    return Math.round(Math.min(this.maxMs, base * (1 + this.jitter * this.random())));
  }

  reset(): void {
    this.failures = 0;
  }
}
