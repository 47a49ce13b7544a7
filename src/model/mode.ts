// The seam between the composition root and a proxy mode.
import type { DesiredState, IPFamily, ProxyModeName } from './types.ts';
import type { Packet, Verdict } from './trace.ts';
import type { ModeSettings } from './settings.ts';
import type { ModeMetrics, NetfilterCounters } from './metrics.ts';

/**
 * The stable codes of what a mode throws (src/errors.ts and docs/errors.md say what each means). A mode's errors
 * cross the seam as ModeFailures; the composition root prints them as one line with the code and its exit status.
 */
export type ModeErrorCode =
  /** Programming the node failed (a restore the kernel refused, a tool that failed). */
  | 'KP_ERR_APPLY_FAILED'
  /** A setting the mode reads is invalid. */
  | 'KP_ERR_CONFIG_INVALID'
  /** A tool or kernel feature the mode needs is missing. */
  | 'KP_ERR_TOOL_MISSING';

/** An Error a mode throws: a stable code and, when one IP family failed, that family (metrics count it there). */
export interface ModeFailure extends Error {
  readonly code: ModeErrorCode;
  readonly family?: IPFamily;
}

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

/** Per-service traffic a mode that carries traffic itself (the userspace relay) has counted since it started. */
export interface ServiceTraffic {
  /** Connections being relayed plus open UDP flows. */
  readonly active: number;
  /** Connections / UDP flows that reached an endpoint. */
  readonly relayed: number;
  /** Of the relayed TCP connections, those whose bytes moved kernel to kernel (splice(2)). */
  readonly spliced: number;
  /** Refused at once: no endpoints, source not allowed, connection limit. */
  readonly refused: number;
  /** Every endpoint tried failed. */
  readonly failed: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
}

/**
 * A running proxy mode as the sync loop drives it: desired state in. The registry (src/modes.ts) builds it from
 * a ModeModule: the module's compile, then its proxier's sync.
 */
export interface ProxyMode {
  readonly name: ProxyModeName;
  /** Make the node match `state`. Throws on failure (the sync loop retries with backoff). */
  sync(state: DesiredState, request: SyncRequest): Promise<SyncReport>;
  /** Stop background work; leave programmed state in place (a restart must not interrupt traffic). */
  stop(): Promise<void>;
  /** Traffic counters by service port key, for modes that relay traffic themselves (metrics read them). */
  trafficStats?(): Promise<Readonly<Record<string, ServiceTraffic>>>;
  /** Packet counters the mode keeps in the kernel (kube-proxy's nfacct counters), read at every scrape. */
  netfilterCounters?(): Promise<NetfilterCounters>;
}

/** A mode's running half: the only place that touches the kernel or sockets. It applies what compile produced. */
export interface Proxier<Compiled> {
  /** Make the node match `compiled`. Throws on failure (the sync loop retries with backoff). */
  sync(compiled: Compiled, request: SyncRequest): Promise<SyncReport>;
  /** Stop background work; leave programmed state in place (a restart must not interrupt traffic). */
  stop(): Promise<void>;
  /** Traffic counters by service port key, for modes that relay traffic themselves (metrics read them). */
  trafficStats?(): Promise<Readonly<Record<string, ServiceTraffic>>>;
  /** Packet counters the mode keeps in the kernel (kube-proxy's nfacct counters), read at every scrape. */
  netfilterCounters?(): Promise<NetfilterCounters>;
}

export interface ModeOptions {
  readonly log: Logger;
  /** The resolved configuration a mode needs, typed (sync periods, masquerade, conntrack, ipvs, …). */
  readonly settings: ModeSettings;
  /**
   * The selected mode's block of the config file as written, with the resolved values added (see
   * docs/config.md "What a mode receives"); kproxy's own per-mode settings (userspace.*) are read from here.
   */
  readonly config: Readonly<Record<string, unknown>>;
  /** Where the mode reports its own kubeproxy_* metrics (restore failures, rule counts, conntrack reconciles). */
  readonly metrics?: ModeMetrics;
  /**
   * Ask for a full sync soon (bounded by minSyncPeriod): the mode found its kernel state changed behind its back
   * (a canary gone: a firewall reload, an admin's flush). `reason` is logged.
   */
  readonly requestFullSync?: (reason: string) => void;
}

/**
 * How often the sync loop syncs a mode when nothing changes, as kube-proxy does for it:
 * - 'hourly' (iptables, nftables): only changes, failures and drift trigger syncs, which are partial; a full one runs
 *   every hour (kube-proxy's FullSyncPeriod). syncPeriod then only paces retries and the mode's drift checks.
 * - 'every-sync-period' (the default: ipvs, userspace): a full sync every syncPeriod.
 */
export type ResyncCadence = 'hourly' | 'every-sync-period';

/**
 * What every mode module exports as `mode`, typed by its compiled form. `compile` is the one pure step from the
 * desired state that `sync` (through the proxier), `plan` (render) and `trace` share; it must be cheap enough to
 * run at every sync (a kernel mode compiles lazily: see kit/plan-diff.ts FamilySource).
 */
export interface ModeModule<Compiled> {
  readonly name: ProxyModeName;
  /**
   * The mode's traffic goes through netfilter's connection tracking (the kernel modes): kproxy then applies
   * kube-proxy's conntrack sysctls (conntrack.*) at start-up. Unset: they are left alone.
   */
  readonly usesConntrack?: boolean;
  /** When the sync loop resyncs this mode while nothing changes (default 'every-sync-period'). */
  readonly resync?: ResyncCadence;
  /** The desired state in this mode's terms (ruleset sources, listener table…); pure. */
  compile(state: DesiredState): Compiled;
  /** The compiled form as text for `kproxy plan` (the ruleset, the listener table); pure. */
  render(compiled: Compiled): string;
  /** What the compiled rules do with `packet`; pure. */
  trace(compiled: Compiled, packet: Packet): Verdict;
  /** Start the mode's running half (loaded on demand: plan and trace never load it). */
  create(options: ModeOptions): Promise<Proxier<Compiled>>;
  /** Remove everything this mode ever programmed on the node, and nothing else. */
  cleanup(options: ModeOptions): Promise<void>;
}
