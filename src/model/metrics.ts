// What a mode reports for kube-proxy's mode-specific metrics (ModeOptions.metrics; src/metrics/proxy-metrics.ts
// turns it into the kubeproxy_* series). Each call names the IP family it is about, so a failure of one family is
// counted for that family only.
import type { IPFamily } from './types.ts';

export type RuleTable = 'nat' | 'filter';

export interface ModeMetrics {
  /**
   * Writing the rules of `family` failed (iptables-restore, nft -f); `partial` when it was a partial sync.
   * kubeproxy_sync_proxy_rules_iptables_restore_failures_total / …_partial_restore_failures_total,
   * kubeproxy_sync_proxy_rules_nftables_sync_failures_total.
   */
  restoreFailed(family: IPFamily, partial: boolean): void;
  /**
   * After a sync of `family`: rules kproxy owns in `table` (`total`), and how many this sync wrote (`lastSync`).
   * kubeproxy_sync_proxy_rules_iptables_total / …_iptables_last {table, ip_family}.
   */
  rulesCounted(family: IPFamily, table: RuleTable, total: number, lastSync: number): void;
  /** A reconciliation of UDP conntrack entries ran. kubeproxy_conntrack_reconciler_sync_duration_seconds / …_deleted_entries_total. */
  conntrackReconciled(family: IPFamily, seconds: number, deleted: number): void;
  /** Removing stale nftables objects failed. kubeproxy_sync_proxy_rules_nftables_cleanup_failures_total. */
  cleanupFailed(family: IPFamily): void;
}

/**
 * Packet counters a mode keeps in the kernel (kube-proxy's nfacct counters), read when /metrics is scraped.
 * kubeproxy_iptables_ct_state_invalid_dropped_packets_total, kubeproxy_iptables_localhost_nodeports_accepted_packets_total.
 */
export interface NetfilterCounters {
  readonly ctStateInvalidDropped?: number;
  readonly localhostNodePortsAccepted?: number;
}
