// Log lines about refused or failed connections, at most `burst` per reason and service in each window,
// so that a flood of refused clients cannot flood the log. Suppressed lines are counted in the next one.

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogSink = (level: LogLevel, obj: Record<string, unknown>, msg: string) => void;

interface Window {
  startedAt: number;
  count: number;
  suppressed: number;
}

export class RateLimitedLog {
  readonly #sink: LogSink;
  readonly #burst: number;
  readonly #windowMs: number;
  readonly #now: () => number;
  readonly #windows = new Map<string, Window>();

  constructor(options: { sink: LogSink; burst: number; windowMs: number; now?: () => number }) {
    this.#sink = options.sink;
    this.#burst = options.burst;
    this.#windowMs = options.windowMs;
    this.#now = options.now ?? Date.now;
  }

  log(level: LogLevel, key: string, obj: Record<string, unknown>, msg: string): void {
    const now = this.#now();
    let w = this.#windows.get(key);
    if (!w || now - w.startedAt >= this.#windowMs) {
      const suppressed = w?.suppressed ?? 0;
      w = { startedAt: now, count: 0, suppressed: 0 };
      this.#windows.set(key, w);
      if (suppressed > 0) obj = { ...obj, suppressedBefore: suppressed };
      if (this.#windows.size > 10_000) this.#prune(now);
    }
    if (w.count >= this.#burst) {
      w.suppressed++;
      return;
    }
    w.count++;
    this.#sink(level, obj, msg);
  }

  #prune(now: number): void {
    for (const [key, w] of this.#windows) if (now - w.startedAt >= this.#windowMs && w.suppressed === 0) this.#windows.delete(key);
  }
}
