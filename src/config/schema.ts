// The fields of KubeProxyConfiguration (kubeproxy.config.k8s.io/v1alpha1) as the pinned kube-proxy (v1.34)
// defines them, plus kproxy's own (iptables.variant, userspace.*). For each leaf: its type (for the unknown-field
// warning and type checks), the flag that sets it, and — when kproxy does not apply it — why (one warning line
// when it is set to anything but its default). docs/config.md lists the same table for people.

export type LeafType = 'string' | 'bool' | 'int' | 'number' | 'duration' | 'list' | 'map' | 'any';

export interface LeafSpec {
  readonly type: LeafType;
  /** The kube-proxy flag that sets this field, when there is one (named in warnings). */
  readonly flag?: string;
  /** Set when kproxy does not apply the field: why (the warning says it). */
  readonly noEffect?: string;
}

export interface GroupSpec {
  readonly group: Readonly<Record<string, FieldSpec>>;
  /** kproxy's own block: its keys are read by the mode (modes/userspace/config.ts), not here. */
  readonly own?: true;
}

export type FieldSpec = LeafSpec | GroupSpec;

const leaf = (type: LeafType, flag?: string, noEffect?: string): LeafSpec => ({
  type, ...(flag !== undefined && { flag }), ...(noEffect !== undefined && { noEffect }),
});
const group = (fields: Record<string, FieldSpec>): GroupSpec => ({ group: fields });

const WINDOWS_ONLY = 'it is for the Windows (kernelspace) proxy';
const LOG_BUFFER = 'kproxy writes every log line at once, unbuffered';
const SPLIT_STREAM = 'kproxy writes every log line to stderr';

export const KUBE_PROXY_CONFIGURATION_FIELDS: GroupSpec = group({
  apiVersion: leaf('string'),
  kind: leaf('string'),
  featureGates: leaf('map', '--feature-gates'),
  clientConnection: group({
    kubeconfig: leaf('string', '--kubeconfig'),
    // Read by the Kubernetes source, which speaks JSON only and says so once when asked for something else.
    acceptContentTypes: leaf('string'),
    contentType: leaf('string', '--kube-api-content-type'),
    qps: leaf('number', '--kube-api-qps'),
    burst: leaf('int', '--kube-api-burst'),
  }),
  logging: group({
    format: leaf('string', '--logging-format'),
    flushFrequency: leaf('any', '--log-flush-frequency', LOG_BUFFER),
    verbosity: leaf('int', '-v'),
    vmodule: leaf('any', '--vmodule', 'kproxy has one verbosity for the whole program, not one per source file'),
    options: group({
      json: group({
        splitStream: leaf('bool', '--log-json-split-stream', SPLIT_STREAM),
        infoBufferSize: leaf('any', '--log-json-info-buffer-size', LOG_BUFFER),
      }),
      text: group({
        splitStream: leaf('bool', '--log-text-split-stream', SPLIT_STREAM),
        infoBufferSize: leaf('any', '--log-text-info-buffer-size', LOG_BUFFER),
      }),
    }),
  }),
  hostnameOverride: leaf('string', '--hostname-override'),
  bindAddress: leaf('string', '--bind-address'),
  healthzBindAddress: leaf('string', '--healthz-bind-address'),
  metricsBindAddress: leaf('string', '--metrics-bind-address'),
  bindAddressHardFail: leaf('bool', '--bind-address-hard-fail'),
  enableProfiling: leaf('bool', '--profiling', 'kproxy serves no /debug/pprof (profile it with node --cpu-prof or --inspect)'),
  showHiddenMetricsForVersion: leaf('string', '--show-hidden-metrics-for-version', 'kproxy hides no deprecated metric'),
  mode: leaf('string', '--proxy-mode'),
  iptables: group({
    masqueradeAll: leaf('bool', '--masquerade-all'),
    masqueradeBit: leaf('int', '--iptables-masquerade-bit'),
    localhostNodePorts: leaf('bool', '--iptables-localhost-nodeports'),
    syncPeriod: leaf('duration', '--iptables-sync-period'),
    minSyncPeriod: leaf('duration', '--iptables-min-sync-period'),
    // kproxy's own: legacy | nft | auto
    variant: leaf('string', '--iptables-variant'),
  }),
  // kproxy's own: settings of the userspace relay (modes/userspace/config.ts reads and checks them).
  userspace: {
    own: true,
    group: {
      interfaceName: leaf('string'), workers: leaf('int'), splice: leaf('bool'), spliceAfterBytes: leaf('int'),
      connectTimeoutMs: leaf('int'), maxConnectAttempts: leaf('int'), drainGraceMs: leaf('int'), maxConnections: leaf('int'),
      udpIdleTimeoutMs: leaf('int'), addressPollMs: leaf('int'), logBurst: leaf('int'), logWindowMs: leaf('int'),
    },
  },
  ipvs: group({
    syncPeriod: leaf('duration', '--ipvs-sync-period'),
    minSyncPeriod: leaf('duration', '--ipvs-min-sync-period'),
    scheduler: leaf('string', '--ipvs-scheduler'),
    excludeCIDRs: leaf('list', '--ipvs-exclude-cidrs'),
    strictARP: leaf('bool', '--ipvs-strict-arp'),
    tcpTimeout: leaf('duration', '--ipvs-tcp-timeout'),
    tcpFinTimeout: leaf('duration', '--ipvs-tcpfin-timeout'),
    udpTimeout: leaf('duration', '--ipvs-udp-timeout'),
  }),
  nftables: group({
    masqueradeAll: leaf('bool', '--masquerade-all'),
    masqueradeBit: leaf('int'),
    syncPeriod: leaf('duration', '--iptables-sync-period'),
    minSyncPeriod: leaf('duration', '--iptables-min-sync-period'),
  }),
  winkernel: group({
    networkName: leaf('string', undefined, WINDOWS_ONLY),
    sourceVip: leaf('string', undefined, WINDOWS_ONLY),
    enableDSR: leaf('bool', undefined, WINDOWS_ONLY),
    rootHnsEndpointName: leaf('string', undefined, WINDOWS_ONLY),
    forwardHealthCheckVip: leaf('bool', undefined, WINDOWS_ONLY),
  }),
  detectLocalMode: leaf('string', '--detect-local-mode'),
  detectLocal: group({
    // Only read with detectLocalMode BridgeInterface / InterfaceNamePrefix, which warn themselves.
    bridgeInterface: leaf('string', '--pod-bridge-interface'),
    interfaceNamePrefix: leaf('string', '--pod-interface-name-prefix'),
  }),
  clusterCIDR: leaf('string', '--cluster-cidr'),
  nodePortAddresses: leaf('list', '--nodeport-addresses'),
  oomScoreAdj: leaf('int', '--oom-score-adj'),
  conntrack: group({
    maxPerCore: leaf('int', '--conntrack-max-per-core'),
    min: leaf('int', '--conntrack-min'),
    tcpEstablishedTimeout: leaf('duration', '--conntrack-tcp-timeout-established'),
    tcpCloseWaitTimeout: leaf('duration', '--conntrack-tcp-timeout-close-wait'),
    tcpBeLiberal: leaf('bool', '--conntrack-tcp-be-liberal'),
    udpTimeout: leaf('duration', '--conntrack-udp-timeout'),
    udpStreamTimeout: leaf('duration', '--conntrack-udp-timeout-stream'),
  }),
  configSyncPeriod: leaf('duration', '--config-sync-period',
    'kproxy\'s watches never re-deliver cached objects on a timer (a broken watch relists instead)'),
  portRange: leaf('string', undefined, 'kube-proxy ignores it too (it was for the removed userspace mode)'),
  windowsRunAsService: leaf('bool', undefined, WINDOWS_ONLY),
  // kproxy's own: remove kube-proxy's leftovers once the mode's rules are in place (kit/takeover).
  takeOverFromKubeProxy: leaf('bool', '--take-over-from-kube-proxy'),
});

const isGroup = (spec: FieldSpec): spec is GroupSpec => 'group' in spec;

/** Every leaf, with its dotted path. */
export function leaves(spec: GroupSpec = KUBE_PROXY_CONFIGURATION_FIELDS, prefix = ''): Array<{ path: string; spec: LeafSpec }> {
  return Object.entries(spec.group).flatMap(([key, child]) => {
    const path = prefix === '' ? key : `${prefix}.${key}`;
    return isGroup(child) ? leaves(child, path) : [{ path, spec: child }];
  });
}

/** Every block (group of fields), with its dotted path. */
export function groups(spec: GroupSpec = KUBE_PROXY_CONFIGURATION_FIELDS, prefix = ''): string[] {
  return Object.entries(spec.group).flatMap(([key, child]) => {
    const path = prefix === '' ? key : `${prefix}.${key}`;
    return isGroup(child) ? [path, ...groups(child, path)] : [];
  });
}

/** Dotted paths of fields in `value` that `spec` does not know (free-form maps are not looked into). */
export function unknownFields(value: unknown, spec: FieldSpec = KUBE_PROXY_CONFIGURATION_FIELDS, prefix = ''): string[] {
  if (!isGroup(spec)) return [];
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return [];
  const found: string[] = [];
  for (const [key, child] of Object.entries(value)) {
    const path = prefix === '' ? key : `${prefix}.${key}`;
    const childSpec = spec.group[key];
    if (childSpec === undefined) found.push(path);
    else found.push(...unknownFields(child, childSpec, path));
  }
  return found;
}
