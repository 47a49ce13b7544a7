// The seam between the composition root and a proxy mode.
import type { DesiredState, ProxyModeName } from './types.ts';
import type { Packet, Verdict } from './trace.ts';

/** Minimal structured logger (pino's shape) so modes do not depend on the logging library. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child(bindings: object): Logger;
}

export interface SyncRequest {
  /** Rewrite everything (first sync, periodic resync, after a failure) instead of only what changed. */
  readonly full: boolean;
}

export interface SyncReport {
  readonly full: boolean;
  /** Free-form counters for logs and metrics, e.g. { linesWritten: 12 }. */
  readonly stats?: Readonly<Record<string, number>>;
}

/** A running proxy mode: the only place that touches the kernel or sockets. */
export interface ProxyMode {
  readonly name: ProxyModeName;
  /** Make the node match `state`. Throws on failure (the sync loop retries with backoff). */
  sync(state: DesiredState, request: SyncRequest): Promise<SyncReport>;
  /** Stop background work; leave programmed state in place (a restart must not interrupt traffic). */
  stop(): Promise<void>;
}

export interface ModeOptions {
  readonly log: Logger;
  /** Mode-specific settings from flags/config (e.g. iptables.minSyncPeriod, dummy interface name). */
  readonly config: Readonly<Record<string, unknown>>;
}

/** What every mode module exports as `mode`. */
export interface ModeModule {
  readonly name: ProxyModeName;
  create(options: ModeOptions): Promise<ProxyMode>;
  /** Remove everything this mode ever programmed on the node, and nothing else. */
  cleanup(options: ModeOptions): Promise<void>;
  /** The rendered ruleset (or listener table) for `kproxy plan`; pure. */
  render(state: DesiredState): string;
  /** What the rules compiled from `state` do with `packet`; pure. */
  trace(state: DesiredState, packet: Packet): Verdict;
}
