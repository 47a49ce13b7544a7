// kube-proxy's mode-specific metrics (pkg/proxy/metrics RegisterMetrics, v1.34): the same names, types, labels and
// buckets, registered for the modes upstream registers them for, and present from the start (labelled series are
// created at zero for every IP family the proxy serves). The mode feeds them through ModeMetrics
// (ModeOptions.metrics) and, for kernel packet counters, through ProxyMode.netfilterCounters.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { ModeMetrics, NetfilterCounters, RuleTable } from '../model/metrics.ts';
import type { IPFamily, ProxyModeName } from '../model/types.ts';

/** prometheus.ExponentialBuckets(start, factor, count). */
export function exponentialBuckets(start: number, factor: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => start * factor ** i);
}

/** Upstream's sync and conntrack-reconcile buckets: 1 ms … 16 s. */
export const SYNC_DURATION_BUCKETS = exponentialBuckets(0.001, 2, 15);

type FamilyCounter = Counter<'ip_family'>;

export class KubeProxyModeMetrics implements ModeMetrics {
  readonly syncFullDuration: Histogram<'ip_family'> | undefined;
  readonly syncPartialDuration: Histogram<'ip_family'> | undefined;
  readonly restoreFailures: FamilyCounter | undefined;
  readonly partialRestoreFailures: FamilyCounter | undefined;
  readonly iptablesRulesTotal: Gauge<'table' | 'ip_family'> | undefined;
  readonly iptablesRulesLast: Gauge<'table' | 'ip_family'> | undefined;
  readonly nftablesSyncFailures: FamilyCounter | undefined;
  readonly nftablesCleanupFailures: FamilyCounter | undefined;
  readonly conntrackReconcileDuration: Histogram<'ip_family'> | undefined;
  readonly conntrackDeletedEntries: FamilyCounter | undefined;
  readonly ctStateInvalidDropped: Counter | undefined;
  readonly localhostNodePortsAccepted: Counter | undefined;
  private readonly families: readonly IPFamily[];
  private countersSource: (() => Promise<NetfilterCounters>) | undefined;
  private countersRead: Promise<NetfilterCounters> | undefined;
  /** A failure the mode attributed to a family since the last sync outcome (see ProxyMetrics.syncFailed). */
  attributedFailure = false;

  constructor(mode: ProxyModeName, families: readonly IPFamily[], registry: Registry) {
    this.families = families;
    const registers = [registry];
    const iptables = mode === 'iptables';
    const nftables = mode === 'nftables';
    const kernel = iptables || nftables || mode === 'ipvs';
    const histogram = (name: string, help: string): Histogram<'ip_family'> => {
      const metric = new Histogram({ name, help, labelNames: ['ip_family'], buckets: SYNC_DURATION_BUCKETS, registers });
      for (const family of families) metric.zero({ ip_family: family });
      return metric;
    };
    const counter = (name: string, help: string): FamilyCounter => {
      const metric = new Counter({ name, help, labelNames: ['ip_family'], registers });
      for (const family of families) metric.inc({ ip_family: family }, 0);
      return metric;
    };
    const rules = (name: string, help: string): Gauge<'table' | 'ip_family'> => new Gauge({ name, help, labelNames: ['table', 'ip_family'], registers });
    // The kernel's packet counters are read at every scrape; 0 until the mode keeps them.
    const packets = (name: string, help: string, key: keyof NetfilterCounters): Counter => {
      const read = (): Promise<NetfilterCounters> => this.readCounters();
      return new Counter({
        name, help, registers,
        async collect() {
          this.reset();
          this.inc((await read())[key] ?? 0);
        },
      });
    };

    this.syncFullDuration = iptables || nftables ? histogram('kubeproxy_sync_full_proxy_rules_duration_seconds', 'SyncProxyRules latency in seconds for full resyncs') : undefined;
    this.syncPartialDuration = iptables || nftables ? histogram('kubeproxy_sync_partial_proxy_rules_duration_seconds', 'SyncProxyRules latency in seconds for partial resyncs') : undefined;
    this.restoreFailures = iptables || mode === 'ipvs' ? counter('kubeproxy_sync_proxy_rules_iptables_restore_failures_total', 'Cumulative proxy iptables restore failures') : undefined;
    this.partialRestoreFailures = iptables ? counter('kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total', 'Cumulative proxy iptables partial restore failures') : undefined;
    this.iptablesRulesTotal = iptables ? rules('kubeproxy_sync_proxy_rules_iptables_total', 'Total number of iptables rules owned by the proxy') : undefined;
    this.iptablesRulesLast = iptables ? rules('kubeproxy_sync_proxy_rules_iptables_last', 'Number of iptables rules written by the proxy in the last sync') : undefined;
    this.nftablesSyncFailures = nftables ? counter('kubeproxy_sync_proxy_rules_nftables_sync_failures_total', 'Cumulative proxy nftables sync failures') : undefined;
    this.nftablesCleanupFailures = nftables ? counter('kubeproxy_sync_proxy_rules_nftables_cleanup_failures_total', 'Cumulative proxy nftables cleanup failures') : undefined;
    this.conntrackReconcileDuration = kernel ? histogram('kubeproxy_conntrack_reconciler_sync_duration_seconds', 'ReconcileConntrackFlowsLatency latency in seconds') : undefined;
    this.conntrackDeletedEntries = kernel ? counter('kubeproxy_conntrack_reconciler_deleted_entries_total', 'Cumulative conntrack flows deleted by conntrack reconciler') : undefined;
    this.ctStateInvalidDropped = iptables ? packets('kubeproxy_iptables_ct_state_invalid_dropped_packets_total', 'packets dropped by iptables to work around conntrack problems', 'ctStateInvalidDropped') : undefined;
    this.localhostNodePortsAccepted = iptables ? packets('kubeproxy_iptables_localhost_nodeports_accepted_packets_total', 'Number of packets accepted on nodeports of loopback interface', 'localhostNodePortsAccepted') : undefined;
  }

  /** Read kernel packet counters from the running mode at every scrape. */
  useNetfilterCounters(source: () => Promise<NetfilterCounters>): void {
    this.countersSource = source;
  }

  /** One read per scrape, shared by the counters collected concurrently. */
  private readCounters(): Promise<NetfilterCounters> {
    const source = this.countersSource;
    if (source === undefined) return Promise.resolve({});
    this.countersRead ??= source().catch(() => ({})).finally(() => { this.countersRead = undefined; });
    return this.countersRead;
  }

  /** A sync of `full` kind took `seconds`, for every family. */
  synced(full: boolean, seconds: number): void {
    for (const family of this.families) (full ? this.syncFullDuration : this.syncPartialDuration)?.observe({ ip_family: family }, seconds);
  }

  /** A failed sync the mode did not attribute: counted for every family (the mode could not say which). */
  failedWithoutFamily(full: boolean): void {
    for (const family of this.families) this.countFailure(family, !full);
  }

  // --- ModeMetrics ---------------------------------------------------------------------------------

  restoreFailed(family: IPFamily, partial: boolean): void {
    this.attributedFailure = true;
    this.countFailure(family, partial);
  }

  rulesCounted(family: IPFamily, table: RuleTable, total: number, lastSync: number): void {
    this.iptablesRulesTotal?.set({ table, ip_family: family }, total);
    this.iptablesRulesLast?.set({ table, ip_family: family }, lastSync);
  }

  conntrackReconciled(family: IPFamily, seconds: number, deleted: number): void {
    this.conntrackReconcileDuration?.observe({ ip_family: family }, seconds);
    this.conntrackDeletedEntries?.inc({ ip_family: family }, deleted);
  }

  cleanupFailed(family: IPFamily): void {
    this.nftablesCleanupFailures?.inc({ ip_family: family });
  }

  private countFailure(family: IPFamily, partial: boolean): void {
    const labels = { ip_family: family };
    this.restoreFailures?.inc(labels);
    this.nftablesSyncFailures?.inc(labels);
    if (partial) this.partialRestoreFailures?.inc(labels);
  }
}
