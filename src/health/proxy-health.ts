// kube-proxy's health contract (/healthz and /livez), as state plus pure response builders:
// - unhealthy when a change has been queued and not applied for longer than the health timeout
//   (2 × syncPeriod upstream); while starting (nothing applied yet) and when fully synced it is healthy;
// - /healthz is also unhealthy when the Node is being deleted or tainted ToBeDeletedByClusterAutoscaler;
// - kproxy's addition: /healthz is unhealthy until the first sync has been applied (upstream answers 200 while
//   starting), so a readiness probe or a load balancer's check never sends traffic to a node that serves nothing
//   yet. /livez keeps upstream's "healthy while starting": a slow first sync must not get the agent killed.
// kproxy's one sync loop programs both families, so every family shares one timestamp pair.
import type { SyncObserver, SyncSucceeded } from '../model/observe.ts';
import type { IPFamily } from '../model/types.ts';
import type { Clock } from '../model/clock.ts';
import { IP_FAMILIES } from '../util/ip.ts';

export interface ProxyHealthOptions {
  readonly clock: Clock;
  /** Queued-but-not-applied longer than this → 503. Upstream: 2 × syncPeriod. */
  readonly healthTimeoutMs: number;
  /** Families reported under "status" (default both, as a dual-stack kube-proxy does). */
  readonly families?: readonly IPFamily[];
}

export interface HealthResponse {
  readonly status: 200 | 503;
  readonly body: string;
}

/** Go's zero time, which upstream prints before the first successful sync. */
const ZERO_TIME = '0001-01-01T00:00:00Z';
const iso = (ms: number | undefined): string => (ms === undefined ? ZERO_TIME : new Date(ms).toISOString());

export class ProxyHealth implements SyncObserver {
  private readonly clock: Clock;
  private readonly healthTimeoutMs: number;
  private readonly families: readonly IPFamily[];
  private lastUpdated: number | undefined;
  private oldestPending: number | undefined;
  private eligible = true;
  private stale: { readonly isStale: boolean; readonly reason?: string } = { isStale: false };

  constructor(options: ProxyHealthOptions) {
    this.clock = options.clock;
    this.healthTimeoutMs = options.healthTimeoutMs;
    this.families = options.families ?? IP_FAMILIES;
  }

  changeQueued(at: number): void {
    this.oldestPending ??= at;
  }

  syncSucceeded(event: SyncSucceeded): void {
    this.lastUpdated = event.finishedAt;
    // A change that arrived while this sync ran is not applied by it: it stays pending from when it was queued.
    this.oldestPending = event.pendingSince;
  }

  /** Node eligibility: false while the Node is being deleted/drained by the autoscaler or is gone. */
  setNodeEligible(eligible: boolean): void {
    this.eligible = eligible;
  }

  get nodeEligible(): boolean {
    return this.eligible;
  }

  /** The source's watch is broken (reported in the JSON; it does not fail the check, as upstream). */
  setSourceStale(isStale: boolean, reason?: string): void {
    this.stale = isStale ? { isStale, reason } : { isStale };
  }

  /** The proxier's own health, without the Node (what /livez and health-check node ports use). */
  isHealthy(): boolean {
    // Before the first applied sync the proxy counts as starting up, hence healthy (upstream semantics).
    if (this.lastUpdated === undefined || this.oldestPending === undefined) return true;
    return this.clock.now() - this.oldestPending < this.healthTimeoutMs;
  }

  healthz(): HealthResponse {
    return this.respond(true);
  }

  livez(): HealthResponse {
    return this.respond(false);
  }

  private respond(withNode: boolean): HealthResponse {
    const now = this.clock.now();
    const proxierHealthy = this.isHealthy();
    const synced = this.lastUpdated !== undefined;
    const healthy = proxierHealthy && (!withNode || (this.eligible && synced));
    const status: Record<string, { lastUpdated: string; healthy: boolean }> = {};
    if (this.lastUpdated !== undefined) {
      for (const family of this.families) status[family] = { lastUpdated: iso(this.lastUpdated), healthy: proxierHealthy };
    }
    const body: Record<string, unknown> = {
      // As upstream: a healthy answer reports "now" for compatibility with older clients.
      lastUpdated: healthy ? iso(now) : iso(this.lastUpdated),
      currentTime: iso(now),
      ...(withNode ? { nodeEligible: this.eligible } : {}),
      healthy: proxierHealthy,
      // kproxy's addition: whether the first sync has been applied (/healthz is 503 until then).
      ...(withNode ? { synced } : {}),
      ...(Object.keys(status).length > 0 ? { status } : {}),
      // kproxy's addition: whether the cluster view is stale (API watch broken).
      sourceStale: this.stale.isStale,
      ...(this.stale.reason ? { sourceStaleReason: this.stale.reason } : {}),
    };
    return { status: healthy ? 200 : 503, body: JSON.stringify(body) };
  }
}
