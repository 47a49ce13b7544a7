// What the rest of the program sees of flags + config file: validated, defaulted, in milliseconds.
import type { ProxyModeName } from '../model/types.ts';
import type { LogFormat } from '../log.ts';

/** Command-line values; undefined means "not given" (so the config file's value stands). */
export interface FlagValues {
  readonly proxyMode?: string;
  readonly config?: string;
  readonly kubeconfig?: string;
  readonly master?: string;
  readonly hostnameOverride?: string;
  readonly bindAddress?: string;
  readonly clusterCidr?: string;
  readonly nodeportAddresses?: string | readonly string[];
  readonly masqueradeAll?: boolean;
  readonly iptablesMasqueradeBit?: number;
  readonly syncPeriod?: string;
  readonly minSyncPeriod?: string;
  readonly healthzBindAddress?: string;
  readonly metricsBindAddress?: string;
  readonly cleanup?: boolean;
  readonly bindAddressHardFail?: boolean;
  readonly v?: number;
  readonly manifests?: string;
  readonly logFormat?: string;
  readonly serviceProxyName?: string;
  readonly iptablesVariant?: string;
}

export type DetectLocalMode = 'ClusterCIDR' | 'NodeCIDR' | 'BridgeInterface' | 'InterfaceNamePrefix';

export interface ProxyConfig {
  readonly mode: ProxyModeName;
  /** --hostname-override / hostnameOverride, lower-cased; the node name is resolved at start-up when unset. */
  readonly hostnameOverride?: string;
  readonly kubeconfig?: string;
  readonly master?: string;
  /** clientConnection of the config file (API client settings; unset fields are left to the client's defaults). */
  readonly clientConnection: { readonly contentType?: string; readonly acceptContentTypes?: string; readonly qps?: number; readonly burst?: number };
  /** --manifests: a file or folder of Services/EndpointSlices/Node used instead of an API server. */
  readonly manifests?: string;
  /** Value of the service.kubernetes.io/service-proxy-name label this proxy serves. */
  readonly serviceProxyName?: string;
  /** Canonical CIDRs, at most one per family. */
  readonly clusterCIDRs: readonly string[];
  /** Canonical CIDRs and/or 'primary'; empty means every local address. */
  readonly nodePortAddresses: readonly string[];
  readonly detectLocalMode: DetectLocalMode;
  readonly masqueradeAll: boolean;
  readonly masqueradeBit: number;
  readonly syncPeriodMs: number;
  readonly minSyncPeriodMs: number;
  readonly configSyncPeriodMs: number;
  readonly bindAddress: string;
  /** "ip:port"; empty string disables the server. */
  readonly healthzBindAddress: string;
  readonly metricsBindAddress: string;
  readonly localhostNodePorts: boolean;
  readonly cleanup: boolean;
  /** Exit when the health or metrics server cannot listen, instead of retrying every 5 s (kube-proxy's flag). */
  readonly bindAddressHardFail: boolean;
  readonly log: { readonly format: LogFormat; readonly verbosity: number };
  /** Handed to the mode as ModeOptions.config: the mode's own config block plus the resolved values above. */
  readonly modeSettings: Readonly<Record<string, unknown>>;
  /** Path of the --config file, when one was given. */
  readonly configFile?: string;
}

export interface ResolvedConfig {
  readonly config: ProxyConfig;
  /** Non-fatal remarks (unknown fields, unsupported settings), logged once the logger exists. */
  readonly warnings: readonly string[];
}
