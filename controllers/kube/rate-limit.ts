// Client-side request throttling, like client-go's token bucket (clientConnection.qps / burst).
import type { Clock } from '../../src/model/clock.ts';

export interface RateLimitOptions {
  /** Sustained requests per second; 0 or less disables throttling. */
  readonly qps: number;
  /** Requests allowed at once before throttling starts (at least 1). */
  readonly burst: number;
  readonly clock: Clock;
}

export class TokenBucket {
  private readonly qps: number;
  private readonly burst: number;
  private readonly clock: Clock;
  private tokens: number;
  private updatedAt: number;
  /** Requests waiting, served in order. */
  private tail: Promise<void> = Promise.resolve();

  constructor(options: RateLimitOptions) {
    this.qps = options.qps;
    this.burst = Math.max(1, Math.floor(options.burst));
    this.clock = options.clock;
    this.tokens = this.burst;
    this.updatedAt = options.clock.now();
  }

  /** Resolves when the caller may send one request. */
  acquire(): Promise<void> {
    if (!(this.qps > 0)) return Promise.resolve();
    const turn = this.tail.then(() => this.take());
    this.tail = turn;
    return turn;
  }

  private refill(): void {
    const now = this.clock.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.updatedAt) / 1000) * this.qps);
    this.updatedAt = now;
  }

  private async take(): Promise<void> {
    this.refill();
    while (this.tokens < 1) {
      const waitMs = Math.ceil(((1 - this.tokens) / this.qps) * 1000);
      await new Promise<void>((resolve) => this.clock.setTimer(resolve, waitMs));
      this.refill();
    }
    this.tokens -= 1;
  }
}
