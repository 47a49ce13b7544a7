// kproxy's Prometheus metrics, one Registry per instance (no package globals): upstream kube-proxy's
// kubeproxy_* names, types, labels and buckets (pkg/proxy/metrics, v1.34) for what kproxy also does, plus
// kproxy_* for its own parts. Every metric is registered at start, and its series for each IP family exist from
// then on (test/kube/metrics.test.ts compares them with the built kube-proxy's). Fed as a SyncObserver (sync
// loop), a ClusterEvents tap (changes, triggers) and, for the mode-specific ones, ModeMetrics (mode-metrics.ts).
import { isRecord } from '../util/record.ts';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ServiceTraffic } from '../model/mode.ts';
import type { NetfilterCounters } from '../model/metrics.ts';
import type { InvalidObject, SyncFailed, SyncObserver, SyncSucceeded } from '../model/observe.ts';
import type { ObjectKind, ClusterEvents } from '../model/source.ts';
import type { DesiredState, IPFamily, ProxyModeName } from '../model/types.ts';
import { buildInfoLabels } from '../version.ts';
import { KubeProxyModeMetrics, SYNC_DURATION_BUCKETS, exponentialBuckets } from './mode-metrics.ts';
import { IP_FAMILIES } from '../util/ip.ts';

export { exponentialBuckets, SYNC_DURATION_BUCKETS };

/** prometheus.LinearBuckets(start, width, count). */
export function linearBuckets(start: number, width: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => start + width * i);
}

/** Upstream's network programming buckets: 0.25 s … 5 min (a leading 0 from MergeBuckets included). */
export const NETWORK_PROGRAMMING_BUCKETS = [
  0, ...linearBuckets(0.25, 0.25, 2), ...linearBuckets(1, 1, 59), ...linearBuckets(60, 5, 12), ...linearBuckets(120, 30, 7),
];

const LAST_CHANGE_TRIGGER_ANNOTATION = 'endpoints.kubernetes.io/last-change-trigger-time';

export interface ProxyMetricsOptions {
  readonly mode: ProxyModeName;
  /** Families this proxy serves (label values of ip_family). Default both. */
  readonly families?: readonly IPFamily[];
  /** Also export process_* / nodejs_* metrics (default true). */
  readonly processMetrics?: boolean;
}

interface TimedChange {
  readonly at: number;
}


function triggerTimeOf(slice: unknown): { at: number; family: IPFamily | undefined } | undefined {
  if (!isRecord(slice) || !isRecord(slice.metadata) || !isRecord(slice.metadata.annotations)) return undefined;
  const text = slice.metadata.annotations[LAST_CHANGE_TRIGGER_ANNOTATION];
  const at = typeof text === 'string' ? Date.parse(text) : NaN;
  if (!Number.isFinite(at)) return undefined;
  const family = slice.addressType === 'IPv4' || slice.addressType === 'IPv6' ? slice.addressType : undefined;
  return { at, family };
}

export class ProxyMetrics implements SyncObserver {
  readonly registry = new Registry();
  readonly mode: ProxyModeName;
  private readonly families: readonly IPFamily[];
  private readonly startedAt = Date.now();

  readonly syncDuration: Histogram<'ip_family'>;
  readonly lastSyncTimestamp: Gauge<'ip_family'>;
  readonly lastQueuedTimestamp: Gauge<'ip_family'>;
  readonly networkProgramming: Histogram<'ip_family'>;
  readonly endpointChangesPending: Gauge;
  readonly endpointChangesTotal: Counter;
  readonly serviceChangesPending: Gauge;
  readonly serviceChangesTotal: Counter;
  readonly noLocalEndpoints: Gauge<'traffic_policy' | 'ip_family'>;
  readonly healthzTotal: Counter<'code'>;
  readonly livezTotal: Counter<'code'>;
  readonly invalidObjects: Counter<'kind'>;
  readonly informerRestarts: Counter<'resource'>;
  readonly sourceStale: Gauge;
  readonly syncFailures: Counter<'mode'>;
  readonly relayConnections: Counter<'service' | 'result'>;
  readonly relayBytes: Counter<'service' | 'direction'>;
  readonly relaySpliced: Counter<'service'>;
  readonly relayActive: Gauge<'service'>;
  readonly buildInfo: Gauge;
  /** The mode-specific kubeproxy_* metrics; also what the mode reports to (ModeOptions.metrics). */
  readonly modeMetrics: KubeProxyModeMetrics;
  private trafficSource: (() => Promise<Readonly<Record<string, ServiceTraffic>>>) | undefined;

  private pendingServices: TimedChange[] = [];
  private pendingEndpoints: TimedChange[] = [];
  private triggers: Array<{ at: number; seenAt: number; family: IPFamily | undefined }> = [];

  constructor(options: ProxyMetricsOptions) {
    this.mode = options.mode;
    this.families = options.families ?? IP_FAMILIES;
    const registers = [this.registry];
    const perFamily = (histogram: Histogram<'ip_family'>): Histogram<'ip_family'> => {
      for (const family of this.families) histogram.zero({ ip_family: family });
      return histogram;
    };
    this.syncDuration = perFamily(new Histogram({ name: 'kubeproxy_sync_proxy_rules_duration_seconds', help: 'SyncProxyRules latency in seconds', labelNames: ['ip_family'], buckets: SYNC_DURATION_BUCKETS, registers }));
    this.modeMetrics = new KubeProxyModeMetrics(options.mode, this.families, this.registry);
    this.lastSyncTimestamp = new Gauge({ name: 'kubeproxy_sync_proxy_rules_last_timestamp_seconds', help: 'The last time proxy rules were successfully synced', labelNames: ['ip_family'], registers });
    this.lastQueuedTimestamp = new Gauge({ name: 'kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds', help: 'The last time a sync of proxy rules was queued', labelNames: ['ip_family'], registers });
    this.networkProgramming = perFamily(new Histogram({ name: 'kubeproxy_network_programming_duration_seconds', help: 'In Cluster Network Programming Latency in seconds', labelNames: ['ip_family'], buckets: NETWORK_PROGRAMMING_BUCKETS, registers }));
    this.endpointChangesPending = new Gauge({ name: 'kubeproxy_sync_proxy_rules_endpoint_changes_pending', help: 'Pending proxy rules Endpoint changes', registers });
    this.endpointChangesTotal = new Counter({ name: 'kubeproxy_sync_proxy_rules_endpoint_changes_total', help: 'Cumulative proxy rules Endpoint changes', registers });
    this.serviceChangesPending = new Gauge({ name: 'kubeproxy_sync_proxy_rules_service_changes_pending', help: 'Pending proxy rules Service changes', registers });
    this.serviceChangesTotal = new Counter({ name: 'kubeproxy_sync_proxy_rules_service_changes_total', help: 'Cumulative proxy rules Service changes', registers });
    this.noLocalEndpoints = new Gauge({ name: 'kubeproxy_sync_proxy_rules_no_local_endpoints_total', help: 'Number of services with a Local traffic policy and no endpoints', labelNames: ['traffic_policy', 'ip_family'], registers });
    this.healthzTotal = new Counter({ name: 'kubeproxy_proxy_healthz_total', help: 'Cumulative proxy healthz HTTP status', labelNames: ['code'], registers });
    this.livezTotal = new Counter({ name: 'kubeproxy_proxy_livez_total', help: 'Cumulative proxy livez HTTP status', labelNames: ['code'], registers });
    this.invalidObjects = new Counter({ name: 'kproxy_invalid_objects_skipped_total', help: 'Objects (or parts of objects) skipped because they are invalid', labelNames: ['kind'], registers });
    this.informerRestarts = new Counter({ name: 'kproxy_informer_restarts_total', help: 'Restarts of a Kubernetes list+watch (errors, 410 relists, silent watches)', labelNames: ['resource'], registers });
    this.sourceStale = new Gauge({ name: 'kproxy_source_stale', help: '1 while the cluster view is stale (a watch is broken), else 0', registers });
    this.syncFailures = new Counter({ name: 'kproxy_sync_failures_total', help: 'Failed syncs of the proxy mode', labelNames: ['mode'], registers });
    // The relay counts in its own processes; these read its counters when scraped (see useTrafficStats).
    // Each of the three may be collected first (the registry gathers them concurrently): all wait for one read.
    const collect = async (): Promise<void> => { await this.refreshTraffic(); };
    this.relayConnections = new Counter({ name: 'kproxy_userspace_relay_connections_total', help: 'Connections (TCP) or flows (UDP) of the userspace relay by service port and result (relayed, refused, failed)', labelNames: ['service', 'result'], registers, collect });
    // Its own counter, not a result of the one above: spliced connections are also relayed ones, and the results there
    // partition the connections (their sum is the total).
    this.relaySpliced = new Counter({ name: 'kproxy_userspace_relay_spliced_connections_total', help: 'Relayed TCP connections of the userspace relay whose bytes moved with splice(2), kernel to kernel, by service port (a subset of result="relayed")', labelNames: ['service'], registers, collect });
    this.relayBytes = new Counter({ name: 'kproxy_userspace_relay_bytes_total', help: 'Bytes relayed by the userspace mode by service port; in = from clients, out = to clients', labelNames: ['service', 'direction'], registers, collect });
    this.relayActive = new Gauge({ name: 'kproxy_userspace_relay_active_connections', help: 'Connections and UDP flows the userspace relay carries now, by service port', labelNames: ['service'], registers, collect });
    this.buildInfo = new Gauge({
      name: 'kubernetes_build_info',
      help: 'A metric with a constant \'1\' value labeled by major, minor, git version, git commit, git tree state, build date, Go version, and compiler from which the proxy was built, and platform on which it is running.',
      labelNames: ['major', 'minor', 'git_version', 'git_commit', 'git_tree_state', 'build_date', 'go_version', 'compiler', 'platform'], registers,
    });
    this.buildInfo.set(buildInfoLabels(), 1);
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  // --- SyncObserver --------------------------------------------------------------------------------

  changeQueued(at: number): void {
    for (const family of this.families) this.lastQueuedTimestamp.set({ ip_family: family }, at / 1000);
  }

  syncSucceeded(event: SyncSucceeded): void {
    const seconds = Math.max(0, event.finishedAt - event.startedAt) / 1000;
    for (const family of this.families) {
      const labels = { ip_family: family };
      this.syncDuration.observe(labels, seconds);
      this.lastSyncTimestamp.set(labels, event.finishedAt / 1000);
    }
    this.modeMetrics.synced(event.full, seconds);
    this.modeMetrics.attributedFailure = false;
    // Changes that arrived before this sync started are now applied.
    this.pendingServices = this.pendingServices.filter((c) => c.at > event.startedAt);
    this.pendingEndpoints = this.pendingEndpoints.filter((c) => c.at > event.startedAt);
    this.serviceChangesPending.set(this.pendingServices.length);
    this.endpointChangesPending.set(this.pendingEndpoints.length);
    const applied = this.triggers.filter((t) => t.seenAt <= event.startedAt);
    this.triggers = this.triggers.filter((t) => t.seenAt > event.startedAt);
    for (const trigger of applied) {
      const labels = { ip_family: trigger.family ?? this.families[0] ?? 'IPv4' };
      this.networkProgramming.observe(labels, Math.max(0, event.finishedAt - trigger.at) / 1000);
    }
    this.countNoLocalEndpoints(event.state);
  }

  syncFailed(failed: SyncFailed): void {
    this.syncFailures.inc({ mode: this.mode });
    // A mode that reported which family failed (ModeMetrics.restoreFailed) was counted there; otherwise the
    // failure counts for every family, as the mode could not say.
    if (!this.modeMetrics.attributedFailure) this.modeMetrics.failedWithoutFamily(failed.full);
    this.modeMetrics.attributedFailure = false;
  }

  private countNoLocalEndpoints(state: DesiredState): void {
    for (const family of this.families) {
      let internal = 0;
      let external = 0;
      for (const service of state.families[family].services) {
        if (!service.hasEndpoints) continue;
        if (service.clusterEndpoints.length === 0) internal++;
        const externallyReachable = service.frontends.some((f) => f.kind !== 'ClusterIP');
        if (service.externalPolicyLocal && externallyReachable && service.localEndpoints.length === 0) external++;
      }
      this.noLocalEndpoints.set({ traffic_policy: 'internal', ip_family: family }, internal);
      this.noLocalEndpoints.set({ traffic_policy: 'external', ip_family: family }, external);
    }
  }

  // --- other hooks ---------------------------------------------------------------------------------

  /** ClusterEvents tap: counts Service / EndpointSlice changes and remembers change trigger times. */
  changeTap(now: () => number = Date.now): Partial<ClusterEvents> {
    const changed = (kind: ObjectKind, count: number): void => {
      const at = now();
      if (kind === 'Service') {
        this.serviceChangesTotal.inc(count);
        this.pendingServices.push({ at });
        this.serviceChangesPending.set(this.pendingServices.length);
      } else if (kind === 'EndpointSlice') {
        this.endpointChangesTotal.inc(count);
        this.pendingEndpoints.push({ at });
        this.endpointChangesPending.set(this.pendingEndpoints.length);
      }
    };
    return {
      upsert: (kind, object) => {
        changed(kind, 1);
        if (kind !== 'EndpointSlice') return;
        const trigger = triggerTimeOf(object);
        // As upstream: only changes made after this proxy started say anything about programming latency.
        if (trigger && trigger.at >= this.startedAt) this.triggers.push({ ...trigger, seenAt: now() });
      },
      remove: (kind) => changed(kind, 1),
      replaceAll: (kind) => changed(kind, 1),
      stale: (isStale) => this.sourceStale.set(isStale ? 1 : 0),
    };
  }

  invalidObject(invalid: InvalidObject): void {
    this.invalidObjects.inc({ kind: invalid.kind });
  }

  informerRestarted(kind: ObjectKind): void {
    this.informerRestarts.inc({ resource: kind });
  }

  healthAnswered(path: 'healthz' | 'livez', status: number): void {
    (path === 'healthz' ? this.healthzTotal : this.livezTotal).inc({ code: String(status) });
  }

  /** Read the mode's kernel packet counters (ProxyMode.netfilterCounters) at every scrape. */
  useNetfilterCounters(source: () => Promise<NetfilterCounters>): void {
    this.modeMetrics.useNetfilterCounters(source);
  }

  /** Read per-service traffic from a mode that relays it (ProxyMode.trafficStats) at every scrape. */
  useTrafficStats(source: () => Promise<Readonly<Record<string, ServiceTraffic>>>): void {
    this.trafficSource = source;
  }

  private trafficRead: Promise<void> | undefined;

  private refreshTraffic(): Promise<void> {
    this.trafficRead ??= this.readTraffic().finally(() => { this.trafficRead = undefined; });
    return this.trafficRead;
  }

  private async readTraffic(): Promise<void> {
    if (!this.trafficSource) return;
    const stats = await this.trafficSource().catch(() => undefined);
    if (!stats) return;
    // The mode's counters are cumulative: mirror them (a service that is gone drops out).
    this.relayConnections.reset();
    this.relayBytes.reset();
    this.relaySpliced.reset();
    this.relayActive.reset();
    for (const [service, s] of Object.entries(stats)) {
      this.relayActive.set({ service }, s.active);
      this.relayConnections.inc({ service, result: 'relayed' }, s.relayed);
      this.relayConnections.inc({ service, result: 'refused' }, s.refused);
      this.relayConnections.inc({ service, result: 'failed' }, s.failed);
      this.relaySpliced.inc({ service }, s.spliced);
      this.relayBytes.inc({ service, direction: 'in' }, s.bytesIn);
      this.relayBytes.inc({ service, direction: 'out' }, s.bytesOut);
    }
  }
}
