// Every flag of the pinned kube-proxy (v1.34, `kube-proxy --help` plus its two hidden deprecated ones) and
// kproxy's own, in one table: how its value is read (as pflag reads it), what it sets, and whether kube-proxy
// honours it when --config is given. The command line parser (src/cli/parse.ts), --help and the config
// resolution (resolve.ts) all read this table; test/kube/flags.test.ts checks it against the real kube-proxy.
import { parseDuration } from './duration.ts';
import { ipAddress, invalid, clusterCIDRs, nodePortAddresses, cidr } from './checks.ts';
import { parseGoBool, parseGoBoolMap, parseGoFloat, parseGoInt, splitGoList } from './go-values.ts';
import type { InternalConfig } from './internal.ts';

/** How pflag reads the flag's value. `bool` and `version` take a value only as --flag=value. */
export type FlagKind =
  | 'bool' | 'string' | 'int32' | 'float32' | 'duration' | 'strings' | 'mapStringBool' | 'ip' | 'ipport'
  | 'quantity' | 'level' | 'moduleSpec' | 'version';

/** A flag's value as the parser hands it: the last occurrence, every occurrence (list kinds), or a boolean. */
export type FlagValue = string | boolean | readonly string[];
export type FlagValues = Readonly<Record<string, FlagValue>>;

/**
 * - `config`: kube-proxy sets a config field from it, and ignores it when --config is given.
 * - `always`: honoured with or without --config (logging flags, --hostname-override, kproxy's own flags).
 * - `command`: steers the run itself (--config, --cleanup, --init-only, --write-config-to, --master, …).
 */
export type FlagScope = 'config' | 'always' | 'command';

export interface FlagSpec {
  readonly name: string;
  readonly kind: FlagKind;
  readonly help: string;
  readonly owner: 'kube-proxy' | 'kproxy';
  readonly scope: FlagScope;
  /** A one-letter alias (-v, -h). */
  readonly short?: string;
  /** Deprecated and left out of --help, as kube-proxy does. */
  readonly hidden?: true;
  /** Set when the flag does nothing in kproxy: why (one warning line when it is given). */
  readonly noEffect?: string;
  /** Put the (checked) value into the internal configuration. */
  readonly apply?: (config: InternalConfig, value: ParsedFlag) => void;
}

/** A flag's value after its kind's parsing. */
export type ParsedFlag = string | number | boolean | readonly string[] | Readonly<Record<string, boolean>>;

type Apply = (config: InternalConfig, value: ParsedFlag) => void;
const str = (value: ParsedFlag): string => String(value);
const num = (value: ParsedFlag): number => Number(value);
const bool = (value: ParsedFlag): boolean => value === true;
const list = (value: ParsedFlag): string[] => (Array.isArray(value) ? [...(value as string[])] : []);
/** "pattern=N" of --vmodule, as the config file's logging.vmodule holds it. */
function moduleVerbosity(item: string): { filePattern: string; verbosity: number } {
  const [filePattern = '', level = ''] = item.split('=');
  const verbosity = parseGoInt(level);
  if (filePattern === '' || verbosity === undefined || verbosity < 0 || item.split('=').length !== 2) {
    return invalid('--vmodule', item, 'must be a comma-separated list of pattern=N');
  }
  return { filePattern, verbosity };
}

/** Remember which flag set an internal value (errors name it). */
const from = (name: string, key: string, set: Apply): Apply => (config, value) => {
  config.origin[key] = `--${name}`;
  set(config, value);
};

interface Entry {
  readonly kind: FlagKind;
  readonly help: string;
  readonly scope?: FlagScope;
  readonly short?: string;
  readonly hidden?: true;
  readonly noEffect?: string;
  /** Internal key recorded as set by this flag (for error messages). */
  readonly key?: string;
  readonly apply?: Apply;
}

const NO_MACHINE_ID = 'kube-proxy only registers it through a library; nothing in kube-proxy or kproxy reads it';

const KUBE_PROXY: Readonly<Record<string, Entry>> = {
  'config': { kind: 'string', scope: 'command', help: 'A KubeProxyConfiguration file (kubeproxy.config.k8s.io/v1alpha1, as kubeadm writes it). Most flags are then ignored, as kube-proxy ignores them (see docs/config.md).' },
  'write-config-to': { kind: 'string', scope: 'command', help: 'Write the effective configuration (flags or --config, with defaults) to this file as a KubeProxyConfiguration, then exit.' },
  'cleanup': { kind: 'bool', scope: 'command', help: 'Remove what the selected proxy mode programmed on this node, then exit.' },
  'init-only': { kind: 'bool', scope: 'command', help: 'Apply the start-up settings that need full privileges (conntrack sysctls, oom_score_adj), then exit.' },
  'master': { kind: 'string', scope: 'command', help: 'The API server address (overrides the kubeconfig\'s).' },
  'proxy-mode': { kind: 'string', key: 'mode', help: 'iptables (default), nftables, ipvs or userspace (kproxy\'s relay).', apply: (c, v) => { c.mode = str(v); } },
  'feature-gates': { kind: 'mapStringBool', key: 'featureGates', help: 'key=value pairs of feature gates (kproxy honours PreferSameTrafficDistribution; others warn).', apply: (c, v) => { c.featureGates = { ...c.featureGates, ...(v as Record<string, boolean>) }; } },
  'kubeconfig': { kind: 'string', key: 'clientConnection.kubeconfig', help: 'kubeconfig file with the API server and credentials (default: the in-cluster service account).', apply: (c, v) => { c.clientConnection.kubeconfig = str(v); } },
  'kube-api-content-type': { kind: 'string', key: 'clientConnection.contentType', help: 'Content type of API requests (kproxy reads lists in protobuf unless this asks for JSON only; watches are JSON; other types are warned about).', apply: (c, v) => { c.clientConnection.contentType = str(v); } },
  'kube-api-burst': { kind: 'int32', key: 'clientConnection.burst', help: 'Burst of API requests (default 10).', apply: (c, v) => { c.clientConnection.burst = num(v) < 0 ? invalid('--kube-api-burst', v, 'must be 0 or more') : num(v); } },
  'kube-api-qps': { kind: 'float32', key: 'clientConnection.qps', help: 'Sustained API requests per second (default 5).', apply: (c, v) => { c.clientConnection.qps = num(v); } },
  'hostname-override': { kind: 'string', scope: 'always', help: 'The name of this node (default: $NODE_NAME, else the host name).', apply: (c, v) => {
    if (str(v) === '') return;
    const name = str(v).trim();
    c.hostnameOverride = name === '' ? invalid('--hostname-override', v, 'must not be blank') : name;
    c.origin.hostnameOverride = '--hostname-override';
  } },
  'bind-address': { kind: 'ip', key: 'bindAddress', help: 'The node\'s primary IP (default 0.0.0.0: take it from the Node object).', apply: (c, v) => { c.bindAddress = str(v); } },
  'healthz-bind-address': { kind: 'ipport', key: 'healthzBindAddress', help: 'IP:port of the health server (default 0.0.0.0:10256); empty disables it.', apply: (c, v) => { c.healthzBindAddress = str(v); } },
  'metrics-bind-address': { kind: 'ipport', key: 'metricsBindAddress', help: 'IP:port of the metrics server (default 127.0.0.1:10249); empty disables it.', apply: (c, v) => { c.metricsBindAddress = str(v); } },
  'healthz-port': { kind: 'int32', hidden: true, key: 'healthzBindAddress', help: 'Deprecated: 0 disables the health server; otherwise the port of a --healthz-bind-address given without one.' },
  'metrics-port': { kind: 'int32', hidden: true, key: 'metricsBindAddress', help: 'Deprecated: 0 disables the metrics server; otherwise the port of a --metrics-bind-address given without one.' },
  'bind-address-hard-fail': { kind: 'bool', key: 'bindAddressHardFail', help: 'Exit when the health or metrics server cannot listen (default: warn and retry every 5 s).', apply: (c, v) => { c.bindAddressHardFail = bool(v); } },
  'profiling': { kind: 'bool', key: 'enableProfiling', help: 'kube-proxy\'s /debug/pprof (kproxy: no effect, warns).', apply: (c, v) => { c.enableProfiling = bool(v); } },
  'show-hidden-metrics-for-version': { kind: 'string', key: 'showHiddenMetricsForVersion', help: 'Show metrics hidden since this version (kproxy hides none: warns).', apply: (c, v) => { c.showHiddenMetricsForVersion = str(v); } },
  'iptables-masquerade-bit': { kind: 'int32', key: 'iptables.masqueradeBit', help: 'Bit of the fwmark that marks packets to masquerade, 0..31 (default 14).', apply: (c, v) => { c.iptables.masqueradeBit = num(v); } },
  'masquerade-all': { kind: 'bool', key: 'masqueradeAll', help: 'Masquerade all traffic to Service cluster IPs.', apply: (c, v) => { c.masqueradeAll = bool(v); } },
  'iptables-localhost-nodeports': { kind: 'bool', key: 'iptables.localhostNodePorts', help: 'NodePorts on 127.0.0.1 (iptables mode, IPv4; default true).', apply: (c, v) => { c.iptables.localhostNodePorts = bool(v); } },
  'iptables-sync-period': { kind: 'duration', help: 'Longest time between full resyncs, for the iptables, nftables and userspace modes (default 30s).', apply: (c, v) => {
    if (c.mode !== 'ipvs') { c.syncPeriodMs = num(v); c.origin.syncPeriodMs = '--iptables-sync-period'; }
  } },
  'iptables-min-sync-period': { kind: 'duration', help: 'Shortest time between syncs, for the iptables, nftables and userspace modes (default 1s).', apply: (c, v) => {
    if (c.mode !== 'ipvs') { c.minSyncPeriodMs = num(v); c.origin.minSyncPeriodMs = '--iptables-min-sync-period'; }
  } },
  'ipvs-sync-period': { kind: 'duration', help: 'Longest time between full resyncs in ipvs mode (default 30s).', apply: (c, v) => {
    if (c.mode === 'ipvs') { c.syncPeriodMs = num(v); c.origin.syncPeriodMs = '--ipvs-sync-period'; }
  } },
  'ipvs-min-sync-period': { kind: 'duration', help: 'Shortest time between syncs in ipvs mode (default 1s).', apply: (c, v) => {
    if (c.mode === 'ipvs') { c.minSyncPeriodMs = num(v); c.origin.minSyncPeriodMs = '--ipvs-min-sync-period'; }
  } },
  'ipvs-scheduler': { kind: 'string', key: 'ipvs.scheduler', help: 'IPVS scheduler (default rr).', apply: (c, v) => { c.ipvs.scheduler = str(v); } },
  'ipvs-exclude-cidrs': { kind: 'strings', key: 'ipvs.excludeCIDRs', help: 'CIDRs the ipvs mode leaves alone when it cleans up.', apply: (c, v) => { c.ipvs.excludeCIDRs = list(v).map((text) => cidr('--ipvs-exclude-cidrs', text, '10.0.0.0/8')); } },
  'ipvs-strict-arp': { kind: 'bool', key: 'ipvs.strictARP', help: 'Set arp_ignore=1 and arp_announce=2 (ipvs mode).', apply: (c, v) => { c.ipvs.strictARP = bool(v); } },
  'ipvs-tcp-timeout': { kind: 'duration', key: 'ipvs.tcpTimeout', help: 'IPVS idle TCP timeout; 0 leaves the kernel\'s.', apply: (c, v) => { c.ipvs.tcpTimeoutMs = num(v); } },
  'ipvs-tcpfin-timeout': { kind: 'duration', key: 'ipvs.tcpFinTimeout', help: 'IPVS TCP timeout after a FIN; 0 leaves the kernel\'s.', apply: (c, v) => { c.ipvs.tcpFinTimeoutMs = num(v); } },
  'ipvs-udp-timeout': { kind: 'duration', key: 'ipvs.udpTimeout', help: 'IPVS UDP timeout; 0 leaves the kernel\'s.', apply: (c, v) => { c.ipvs.udpTimeoutMs = num(v); } },
  'detect-local-mode': { kind: 'string', key: 'detectLocalMode', help: 'How local traffic is told apart: ClusterCIDR (default) or NodeCIDR (BridgeInterface, InterfaceNamePrefix: warn, not built).', apply: (c, v) => { c.detectLocalMode = str(v); } },
  'pod-bridge-interface': { kind: 'string', key: 'detectLocal.bridgeInterface', help: 'Bridge of the pods, for detect-local-mode BridgeInterface.', apply: (c, v) => { c.detectLocal.bridgeInterface = str(v); } },
  'pod-interface-name-prefix': { kind: 'string', key: 'detectLocal.interfaceNamePrefix', help: 'Name prefix of pod interfaces, for detect-local-mode InterfaceNamePrefix.', apply: (c, v) => { c.detectLocal.interfaceNamePrefix = str(v); } },
  'cluster-cidr': { kind: 'string', key: 'clusterCIDRs', help: 'Pod CIDRs of the cluster, comma-separated, at most one per family (detect-local-mode ClusterCIDR).', apply: (c, v) => { c.clusterCIDRs = clusterCIDRs('--cluster-cidr', str(v)); } },
  'nodeport-addresses': { kind: 'strings', key: 'nodePortAddresses', help: 'CIDRs of the node addresses NodePorts are served on, or "primary" (default: all).', apply: (c, v) => { c.nodePortAddresses = nodePortAddresses('--nodeport-addresses', list(v)); } },
  'oom-score-adj': { kind: 'int32', key: 'oomScoreAdj', help: 'oom_score_adj of the kproxy process, -1000..1000 (default -999).', apply: (c, v) => { c.oomScoreAdj = num(v) < -1000 || num(v) > 1000 ? invalid('--oom-score-adj', v, 'must be an integer from -1000 to 1000') : num(v); } },
  'conntrack-max-per-core': { kind: 'int32', key: 'conntrack.maxPerCore', help: 'nf_conntrack_max per CPU core (default 32768); 0 leaves nf_conntrack_max alone.', apply: (c, v) => { c.conntrack.maxPerCore = num(v) < 0 ? invalid('--conntrack-max-per-core', v, 'must be 0 or more') : num(v); } },
  'conntrack-min': { kind: 'int32', key: 'conntrack.min', help: 'Smallest nf_conntrack_max to set (default 131072).', apply: (c, v) => { c.conntrack.min = num(v) < 0 ? invalid('--conntrack-min', v, 'must be 0 or more') : num(v); } },
  'conntrack-tcp-timeout-established': { kind: 'duration', key: 'conntrack.tcpEstablishedTimeout', help: 'nf_conntrack_tcp_timeout_established (default 24h); 0 leaves it.', apply: (c, v) => { c.conntrack.tcpEstablishedTimeoutMs = num(v); } },
  'conntrack-tcp-timeout-close-wait': { kind: 'duration', key: 'conntrack.tcpCloseWaitTimeout', help: 'nf_conntrack_tcp_timeout_close_wait (default 1h); 0 leaves it.', apply: (c, v) => { c.conntrack.tcpCloseWaitTimeoutMs = num(v); } },
  'conntrack-tcp-be-liberal': { kind: 'bool', key: 'conntrack.tcpBeLiberal', help: 'Set nf_conntrack_tcp_be_liberal=1.', apply: (c, v) => { c.conntrack.tcpBeLiberal = bool(v); } },
  'conntrack-udp-timeout': { kind: 'duration', key: 'conntrack.udpTimeout', help: 'nf_conntrack_udp_timeout (unreplied UDP); 0 leaves it.', apply: (c, v) => { c.conntrack.udpTimeoutMs = num(v); } },
  'conntrack-udp-timeout-stream': { kind: 'duration', key: 'conntrack.udpStreamTimeout', help: 'nf_conntrack_udp_timeout_stream (assured UDP); 0 leaves it.', apply: (c, v) => { c.conntrack.udpStreamTimeoutMs = num(v); } },
  'config-sync-period': { kind: 'duration', key: 'configSyncPeriod', help: 'Informer resync period (kproxy: no effect unless the default, warns).', apply: (c, v) => { c.configSyncPeriodMs = num(v); } },
  'v': { kind: 'level', scope: 'always', short: 'v', key: 'logging.verbosity', help: 'Log verbosity: 0-1 info, 2-3 debug, 4 and above trace.', apply: (c, v) => { c.logging.verbosity = num(v); } },
  'vmodule': { kind: 'moduleSpec', scope: 'always', key: 'logging.vmodule', help: 'Per-file verbosity (kproxy: no effect, warns).', apply: (c, v) => { c.logging.vmodule = list(v).map(moduleVerbosity); } },
  'logging-format': { kind: 'string', scope: 'always', key: 'logging.format', help: 'Log format: text or json (same as --log-format).', apply: (c, v) => { c.logging.format = str(v); } },
  'log-flush-frequency': { kind: 'duration', scope: 'always', key: 'logging.flushFrequency', help: 'Longest time between log flushes (kproxy writes at once: warns).', apply: (c, v) => { c.logging.flushFrequencyMs = num(v); } },
  'log-json-split-stream': { kind: 'bool', scope: 'always', key: 'logging.options.json.splitStream', help: 'JSON logs: info to stdout, errors to stderr (kproxy: no effect, warns).', apply: (c, v) => { c.logging.options.json.splitStream = bool(v); } },
  'log-json-info-buffer-size': { kind: 'quantity', scope: 'always', key: 'logging.options.json.infoBufferSize', help: 'JSON logs: info buffer size (kproxy: no effect, warns).', apply: (c, v) => { c.logging.options.json.infoBufferSize = str(v); } },
  'log-text-split-stream': { kind: 'bool', scope: 'always', key: 'logging.options.text.splitStream', help: 'Text logs: info to stdout, errors to stderr (kproxy: no effect, warns).', apply: (c, v) => { c.logging.options.text.splitStream = bool(v); } },
  'log-text-info-buffer-size': { kind: 'quantity', scope: 'always', key: 'logging.options.text.infoBufferSize', help: 'Text logs: info buffer size (kproxy: no effect, warns).', apply: (c, v) => { c.logging.options.text.infoBufferSize = str(v); } },
  'boot-id-file': { kind: 'string', scope: 'always', noEffect: NO_MACHINE_ID, help: 'Files holding the boot id (kproxy: no effect, warns).' },
  'machine-id-file': { kind: 'string', scope: 'always', noEffect: NO_MACHINE_ID, help: 'Files holding the machine id (kproxy: no effect, warns).' },
  'help': { kind: 'bool', scope: 'command', short: 'h', help: 'Show this help.' },
  'version': { kind: 'version', scope: 'command', help: 'Print the version and exit (--version=raw: as JSON).', noEffect: 'kproxy reports its own version; --version=vX.Y.Z does not change it' },
};

const KPROXY: Readonly<Record<string, Entry>> = {
  'manifests': { kind: 'string', scope: 'command', help: 'A YAML/JSON file or folder of Services, EndpointSlices and one Node to use instead of the API server (watched).' },
  'log-format': { kind: 'string', scope: 'always', key: 'logging.format', help: 'Log format: json (default) or text.', apply: (c, v) => { c.logging.format = str(v); } },
  'service-proxy-name': { kind: 'string', scope: 'command', help: 'Serve the Services labelled service.kubernetes.io/service-proxy-name=<this value> (others with the label are skipped).' },
  'iptables-variant': { kind: 'string', scope: 'always', key: 'iptables.variant', help: 'iptables backend: legacy, nft or auto (default: the one that already holds rules).', apply: (c, v) => { c.iptables.variant = str(v); } },
  'take-over-from-kube-proxy': { kind: 'bool', scope: 'always', key: 'takeOverFromKubeProxy', help: 'Once this mode\'s rules are in place, remove what a kube-proxy left on the node (its iptables chains, nftables tables, IPVS services, ipsets); off by default.', apply: (c, v) => { c.takeOverFromKubeProxy = bool(v); } },
  'sync-period': { kind: 'duration', scope: 'always', key: 'syncPeriodMs', help: 'The selected mode\'s sync period, whatever the mode (like --iptables-sync-period or --ipvs-sync-period); overrides the config file.', apply: (c, v) => { c.syncPeriodMs = num(v); } },
  'min-sync-period': { kind: 'duration', scope: 'always', key: 'minSyncPeriodMs', help: 'The selected mode\'s minimum sync period, whatever the mode; overrides the config file.', apply: (c, v) => { c.minSyncPeriodMs = num(v); } },
};

function specs(owner: 'kube-proxy' | 'kproxy', entries: Readonly<Record<string, Entry>>): FlagSpec[] {
  return Object.entries(entries).map(([name, e]) => ({
    name, kind: e.kind, help: e.help, owner, scope: e.scope ?? 'config',
    ...(e.short !== undefined && { short: e.short }),
    ...(e.hidden && { hidden: e.hidden }),
    ...(e.noEffect !== undefined && { noEffect: e.noEffect }),
    ...(e.apply !== undefined && { apply: e.key !== undefined ? from(name, e.key, e.apply) : e.apply }),
  }));
}

/** Every flag, kube-proxy's first (in the order they are applied: --proxy-mode before the mode-dependent ones). */
export const FLAGS: readonly FlagSpec[] = [...specs('kube-proxy', KUBE_PROXY), ...specs('kproxy', KPROXY)];

const BY_NAME = new Map(FLAGS.map((flag) => [flag.name, flag]));
const BY_SHORT = new Map(FLAGS.filter((flag) => flag.short !== undefined).map((flag) => [flag.short ?? '', flag]));

export function flagNamed(name: string): FlagSpec | undefined {
  return BY_NAME.get(name);
}

export function flagWithShort(letter: string): FlagSpec | undefined {
  return BY_SHORT.get(letter);
}

/** Whether the flag's value comes in the same argument (--flag=value) only, never as the next argument. */
export function takesOptionalValue(kind: FlagKind): boolean {
  return kind === 'bool' || kind === 'version';
}

/** Whether every occurrence is kept (pflag's slice and map flags); other flags keep the last one. */
export function accumulates(kind: FlagKind): boolean {
  return kind === 'strings' || kind === 'mapStringBool' || kind === 'moduleSpec';
}

/** The value of flag `spec` as its kind reads it; a ConfigError naming the flag when it does not parse. */
export function parseFlagValue(spec: FlagSpec, raw: FlagValue): ParsedFlag {
  const name = `--${spec.name}`;
  const text = typeof raw === 'string' ? raw : '';
  switch (spec.kind) {
    case 'bool':
      return typeof raw === 'boolean' ? raw : parseGoBool(text) ?? invalid(name, raw, 'must be true or false');
    case 'int32':
      return parseGoInt(text) ?? invalid(name, raw, 'is not a 32-bit integer');
    case 'float32':
      return parseGoFloat(text) ?? invalid(name, raw, 'is not a number');
    case 'duration':
      return parseDuration(text) ?? invalid(name, raw, 'is not a duration (e.g. "1s", "30s", "1m0s")');
    case 'level': {
      const level = parseGoInt(text);
      return level !== undefined && level >= 0 ? level : invalid(name, raw, 'must be a non-negative integer');
    }
    case 'ip':
      return ipAddress(name, text);
    case 'strings':
    case 'moduleSpec':
      return splitGoList(typeof raw === 'string' ? [raw] : Array.isArray(raw) ? raw : []);
    case 'mapStringBool': {
      const map = parseGoBoolMap(typeof raw === 'string' ? [raw] : Array.isArray(raw) ? raw : []);
      return typeof map === 'string' ? invalid(name, raw, map) : map;
    }
    case 'version':
      return typeof raw === 'boolean' ? (raw ? 'true' : 'false') : text;
    default:
      return text;
  }
}
