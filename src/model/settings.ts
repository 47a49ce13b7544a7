// What a proxy mode is told of the configuration (flags + KubeProxyConfiguration, resolved and defaulted), typed.
// Every field has kube-proxy's meaning; durations are in milliseconds. src/config builds it; modes only read it.

/** conntrack.* of KubeProxyConfiguration. The sysctls are applied at start-up (src/startup); modes may read them. */
export interface ConntrackSettings {
  /** Entries per CPU core; 0 leaves nf_conntrack_max (and `min`) alone. */
  readonly maxPerCore: number;
  readonly min: number;
  /** 0 leaves the kernel's value. */
  readonly tcpEstablishedTimeoutMs: number;
  readonly tcpCloseWaitTimeoutMs: number;
  /** nf_conntrack_tcp_be_liberal=1; kube-proxy then also skips its `ct state invalid` drop rule. */
  readonly tcpBeLiberal: boolean;
  readonly udpTimeoutMs: number;
  readonly udpStreamTimeoutMs: number;
}

/** ipvs.* of KubeProxyConfiguration (used by the ipvs mode only). */
export interface IpvsSettings {
  /** "" means kube-proxy's default (rr). */
  readonly scheduler: string;
  /** Canonical CIDRs the ipvs mode must not touch when cleaning up. */
  readonly excludeCIDRs: readonly string[];
  readonly strictARP: boolean;
  /** 0 leaves the kernel's value. */
  readonly tcpTimeoutMs: number;
  readonly tcpFinTimeoutMs: number;
  readonly udpTimeoutMs: number;
}

export interface ModeSettings {
  /** The selected mode's syncPeriod / minSyncPeriod (iptables.* for iptables and userspace). */
  readonly syncPeriodMs: number;
  readonly minSyncPeriodMs: number;
  readonly masqueradeAll: boolean;
  /** The selected mode's masqueradeBit (nftables.masqueradeBit in nftables mode, else iptables.masqueradeBit). */
  readonly masqueradeBit: number;
  /** iptables.localhostNodePorts (iptables mode, IPv4 only, as in kube-proxy). */
  readonly localhostNodePorts: boolean;
  /** kproxy's iptables.variant / --iptables-variant; undefined: detect (auto). */
  readonly iptablesVariant?: 'legacy' | 'nft';
  readonly conntrack: ConntrackSettings;
  readonly ipvs: IpvsSettings;
  /**
   * kproxy's --take-over-from-kube-proxy / takeOverFromKubeProxy: once the mode's own rules are in place, remove what
   * the upstream kube-proxy left on the node (kit/takeover).
   */
  readonly takeOverFromKubeProxy: boolean;
}
