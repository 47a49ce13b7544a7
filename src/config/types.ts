// What the rest of the program sees of flags + config file: validated, defaulted, in milliseconds.
import type { ProxyModeName } from '../model/types.ts';
import type { ConntrackSettings, ModeSettings } from '../model/settings.ts';
import type { LogFormat } from '../log.ts';

export type { FlagValue, FlagValues } from './flags.ts';

export type DetectLocalMode = 'ClusterCIDR' | 'NodeCIDR' | 'BridgeInterface' | 'InterfaceNamePrefix';

export interface ProxyConfig {
  readonly mode: ProxyModeName;
  /** --hostname-override / hostnameOverride, lower-cased; the node name is resolved at start-up when unset. */
  readonly hostnameOverride?: string;
  readonly kubeconfig?: string;
  readonly master?: string;
  /** clientConnection settings given explicitly (unset ones are left to the client's defaults). */
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
  /** The node's primary IP override (canonical); '0.0.0.0' / '::' leave it to the Node object. */
  readonly bindAddress: string;
  /** "ip:port"; empty string disables the server. */
  readonly healthzBindAddress: string;
  readonly metricsBindAddress: string;
  readonly localhostNodePorts: boolean;
  readonly cleanup: boolean;
  /** --init-only: apply the start-up settings (conntrack sysctls, oom_score_adj), then exit. */
  readonly initOnly: boolean;
  /** --write-config-to: write `effective` there, then exit. */
  readonly writeConfigTo?: string;
  /** Exit when the health or metrics server cannot listen, instead of retrying every 5 s (kube-proxy's flag). */
  readonly bindAddressHardFail: boolean;
  readonly log: { readonly format: LogFormat; readonly verbosity: number };
  /** Feature gates as given (kproxy reads PreferSameTrafficDistribution). */
  readonly featureGates: Readonly<Record<string, boolean>>;
  /** oom_score_adj to give the kproxy process (kube-proxy's default -999). */
  readonly oomScoreAdj: number;
  readonly conntrack: ConntrackSettings;
  /** What the selected mode is told (ModeOptions.settings). */
  readonly settings: ModeSettings;
  /**
   * ModeOptions.config: the selected mode's block of the effective configuration (and the userspace block in
   * userspace mode) with the resolved values added in milliseconds.
   */
  readonly modeSettings: Readonly<Record<string, unknown>>;
  /** The effective KubeProxyConfiguration (v1alpha1): what --write-config-to writes and /configz serves. */
  readonly effective: Readonly<Record<string, unknown>>;
  /** Path of the --config file, when one was given. */
  readonly configFile?: string;
}

export interface ResolvedConfig {
  readonly config: ProxyConfig;
  /** Non-fatal remarks (unknown fields, ignored flags, settings without effect), logged once the logger exists. */
  readonly warnings: readonly string[];
}
