// kube-proxy's internal configuration, in kproxy's units: what the flags and the config file are both read into
// before checks and defaults produce a ProxyConfig. Like upstream's internal type, the sync periods and
// masqueradeAll are mode-independent here: the v1alpha1 file keeps them per mode block, and the selected mode's
// block is the one read (and written back by --write-config-to).

export interface InternalConfig {
  featureGates: Record<string, boolean>;
  clientConnection: { kubeconfig: string; acceptContentTypes: string; contentType: string; qps: number; burst: number };
  logging: {
    /** "" until defaulted (kproxy: json). */
    format: string;
    flushFrequencyMs: number;
    verbosity: number;
    vmodule: unknown;
    options: {
      json: { splitStream: boolean; infoBufferSize: string };
      text: { splitStream: boolean; infoBufferSize: string };
    };
  };
  hostnameOverride: string;
  bindAddress: string;
  healthzBindAddress: string;
  metricsBindAddress: string;
  bindAddressHardFail: boolean;
  enableProfiling: boolean;
  showHiddenMetricsForVersion: string;
  /** "" until defaulted (iptables). */
  mode: string;
  syncPeriodMs: number;
  minSyncPeriodMs: number;
  masqueradeAll: boolean;
  iptables: { masqueradeBit: number; localhostNodePorts: boolean; variant: string };
  nftables: { masqueradeBit: number };
  ipvs: { scheduler: string; excludeCIDRs: string[]; strictARP: boolean; tcpTimeoutMs: number; tcpFinTimeoutMs: number; udpTimeoutMs: number };
  winkernel: { networkName: string; sourceVip: string; enableDSR: boolean; rootHnsEndpointName: string; forwardHealthCheckVip: boolean };
  windowsRunAsService: boolean;
  detectLocalMode: string;
  detectLocal: { bridgeInterface: string; interfaceNamePrefix: string };
  clusterCIDRs: string[];
  nodePortAddresses: string[];
  oomScoreAdj: number;
  conntrack: {
    maxPerCore: number; min: number; tcpEstablishedTimeoutMs: number; tcpCloseWaitTimeoutMs: number;
    tcpBeLiberal: boolean; udpTimeoutMs: number; udpStreamTimeoutMs: number;
  };
  configSyncPeriodMs: number;
  portRange: string;
  /** kproxy's own userspace block, as written (the userspace mode checks it). */
  userspace: Record<string, unknown>;
  /** kproxy's own: remove kube-proxy's leftovers once the mode's rules are in place. */
  takeOverFromKubeProxy: boolean;
  /**
   * Where a value came from, for error messages: internal key (e.g. "syncPeriodMs", "conntrack.min") → the flag
   * or dotted file field that set it. Keys that are absent hold a default.
   */
  origin: Record<string, string>;
}

export const DEFAULT_HEALTHZ_PORT = 10256;
export const DEFAULT_METRICS_PORT = 10249;
/** kube-proxy's oom_score_adj (pkg/kubelet/qos KubeProxyOOMScoreAdj). */
export const DEFAULT_OOM_SCORE_ADJ = -999;

/** kube-proxy's configuration before any flag or file: its v1alpha1 defaults read with an empty mode. */
export function defaultInternalConfig(): InternalConfig {
  return {
    featureGates: {},
    clientConnection: { kubeconfig: '', acceptContentTypes: '', contentType: 'application/vnd.kubernetes.protobuf', qps: 5, burst: 10 },
    logging: {
      format: '', flushFrequencyMs: 5000, verbosity: 0, vmodule: undefined,
      options: { json: { splitStream: false, infoBufferSize: '0' }, text: { splitStream: false, infoBufferSize: '0' } },
    },
    hostnameOverride: '',
    bindAddress: '0.0.0.0',
    healthzBindAddress: `0.0.0.0:${DEFAULT_HEALTHZ_PORT}`,
    metricsBindAddress: `127.0.0.1:${DEFAULT_METRICS_PORT}`,
    bindAddressHardFail: false,
    enableProfiling: false,
    showHiddenMetricsForVersion: '',
    mode: '',
    syncPeriodMs: 30_000,
    minSyncPeriodMs: 1000,
    masqueradeAll: false,
    iptables: { masqueradeBit: 14, localhostNodePorts: true, variant: '' },
    nftables: { masqueradeBit: 14 },
    ipvs: { scheduler: '', excludeCIDRs: [], strictARP: false, tcpTimeoutMs: 0, tcpFinTimeoutMs: 0, udpTimeoutMs: 0 },
    winkernel: { networkName: '', sourceVip: '', enableDSR: false, rootHnsEndpointName: '', forwardHealthCheckVip: false },
    windowsRunAsService: false,
    detectLocalMode: '',
    detectLocal: { bridgeInterface: '', interfaceNamePrefix: '' },
    clusterCIDRs: [],
    nodePortAddresses: [],
    oomScoreAdj: DEFAULT_OOM_SCORE_ADJ,
    conntrack: {
      maxPerCore: 32 * 1024, min: 128 * 1024, tcpEstablishedTimeoutMs: 24 * 3_600_000, tcpCloseWaitTimeoutMs: 3_600_000,
      tcpBeLiberal: false, udpTimeoutMs: 0, udpStreamTimeoutMs: 0,
    },
    configSyncPeriodMs: 15 * 60_000,
    portRange: '',
    userspace: {},
    takeOverFromKubeProxy: false,
    origin: {},
  };
}

/** The v1alpha1 block that holds the sync periods (and masqueradeAll) of a mode. */
export function modeBlockOf(mode: string): 'iptables' | 'ipvs' | 'nftables' {
  if (mode === 'ipvs' || mode === 'nftables') return mode;
  return 'iptables';
}

/** The name to show for an internal value: the flag or file field that set it, else the file field. */
export function originOf(config: InternalConfig, key: string, fallback: string): string {
  return config.origin[key] ?? fallback;
}
