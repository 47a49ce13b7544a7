// Noticing that something else rewrote the node's rules (a firewall reload, an admin's flush): kube-proxy's canary.
// The mode leaves a marker its syncs never touch after the first (a canary chain holding one rule) and a probe that
// says whether it is still there; the watch asks the probe every interval (the mode's syncPeriod, as kube-proxy
// polls) and, when the marker is gone, asks for a full resync at once. Mode-neutral: the probe is the mode's (see
// kit/iptables/canary.ts).
import type { Clock, TimerHandle } from '../src/model/clock.ts';
import type { Logger } from '../src/model/mode.ts';
import { systemClock } from '../src/util/clock.ts';
import { firstLineOf } from '../src/util/errors.ts';

export interface DriftProbe {
  /** What is gone, in one line, or undefined when the markers are in place (or cannot be read now). */
  check(): Promise<string | undefined>;
  /** The mode is about to write: note what the node holds, to tell the mode's own changes from anyone else's. */
  beforeWrite?(): Promise<void>;
  /** The mode's own writes are done: what the node holds now is the reference of cheap checks. */
  settle?(): Promise<void>;
}

export interface DriftWatchOptions {
  readonly probe: DriftProbe;
  readonly intervalMs: number;
  /** Called once per drift (then the watch waits for `arm`, after the full sync that repairs it). */
  readonly onDrift: (reason: string) => void;
  readonly log: Logger;
  readonly clock?: Clock;
}

export class DriftWatch {
  readonly #options: DriftWatchOptions;
  readonly #clock: Clock;
  #timer: TimerHandle | undefined;
  /** The check in progress, if any. */
  #checking: Promise<void> | undefined;
  /** Writes in progress (no check runs meanwhile: the mode's own changes are no drift). */
  #writes = 0;
  #armed = false;
  #stopped = false;

  constructor(options: DriftWatchOptions) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
  }

  /** The markers are in place (a full sync wrote them): check every interval from now on. */
  arm(): void {
    if (this.#stopped) return;
    this.#armed = true;
    this.#schedule();
  }

  /** Run the mode's own write with no check during it; the probe notes the node before and settles after. */
  async writing<T>(work: () => Promise<T>): Promise<T> {
    this.#writes++;
    try {
      await this.#checking;
      if (this.#writes === 1) await this.#quietly('note the node before a write', this.#options.probe.beforeWrite);
      return await work();
    } finally {
      this.#writes--;
      if (this.#writes === 0) await this.#quietly('settle', this.#options.probe.settle);
    }
  }

  async #quietly(what: string, step: (() => Promise<void>) | undefined): Promise<void> {
    await step?.call(this.#options.probe).catch((err: unknown) => this.#options.log.debug({ err: firstLineOf(err) }, `drift probe could not ${what}`));
  }

  /** No more checks; waits for the one in progress. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#timer?.cancel();
    this.#timer = undefined;
    await this.#checking;
  }

  #schedule(): void {
    this.#timer?.cancel();
    this.#timer = this.#stopped || !this.#armed ? undefined : this.#clock.setTimer(() => this.#tick(), this.#options.intervalMs);
  }

  #tick(): void {
    this.#timer = undefined;
    if (this.#writes > 0 || this.#checking) {
      this.#schedule();
      return;
    }
    this.#checking = this.#check().finally(() => {
      this.#checking = undefined;
      this.#schedule();
    });
  }

  async #check(): Promise<void> {
    const gone = await this.#options.probe.check().catch((err: unknown) => {
      this.#options.log.debug({ err: firstLineOf(err) }, 'drift probe failed');
      return undefined;
    });
    // A write that began meanwhile may have removed and put back the markers: only a quiet node tells.
    if (gone === undefined || this.#writes > 0 || this.#stopped) return;
    this.#armed = false;
    this.#options.log.warn({ gone }, `Rules changed by something else (${gone}); resyncing everything`);
    this.#options.onDrift(gone);
  }
}
