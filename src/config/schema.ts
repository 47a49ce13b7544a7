// The fields of KubeProxyConfiguration (kubeproxy.config.k8s.io/v1alpha1) that kube-proxy knows, so that
// anything else can be reported in one warning. `true` marks a leaf; 'duration' a leaf holding a Go duration;
// 'map' a free-form map (featureGates).

export type FieldSpec = true | 'duration' | 'map' | { readonly [field: string]: FieldSpec };

const durationLeaf = 'duration';

export const KUBE_PROXY_CONFIGURATION_FIELDS: FieldSpec = {
  apiVersion: true,
  kind: true,
  featureGates: 'map',
  clientConnection: { kubeconfig: true, acceptContentTypes: true, contentType: true, qps: true, burst: true },
  logging: {
    format: true, flushFrequency: true, verbosity: true, vmodule: true,
    options: { json: 'map', text: 'map' },
  },
  hostnameOverride: true,
  bindAddress: true,
  healthzBindAddress: true,
  metricsBindAddress: true,
  bindAddressHardFail: true,
  enableProfiling: true,
  showHiddenMetricsForVersion: true,
  mode: true,
  iptables: {
    masqueradeAll: true, masqueradeBit: true, localhostNodePorts: true, syncPeriod: durationLeaf, minSyncPeriod: durationLeaf,
    // kproxy's own: legacy | nft | auto
    variant: true,
  },
  // kproxy's own: settings of the userspace relay (modes/userspace/config.ts reads them).
  userspace: {
    interfaceName: true, workers: true, connectTimeoutMs: true, maxConnectAttempts: true, drainGraceMs: true,
    maxConnections: true, udpIdleTimeoutMs: true, addressPollMs: true, logBurst: true, logWindowMs: true,
  },
  ipvs: {
    syncPeriod: durationLeaf, minSyncPeriod: durationLeaf, scheduler: true, excludeCIDRs: true, strictARP: true,
    tcpTimeout: durationLeaf, tcpFinTimeout: durationLeaf, udpTimeout: durationLeaf,
  },
  nftables: { masqueradeAll: true, masqueradeBit: true, syncPeriod: durationLeaf, minSyncPeriod: durationLeaf },
  winkernel: { networkName: true, sourceVip: true, enableDSR: true, rootHnsEndpointName: true, forwardHealthCheckVip: true },
  detectLocalMode: true,
  detectLocal: { bridgeInterface: true, interfaceNamePrefix: true },
  clusterCIDR: true,
  nodePortAddresses: true,
  oomScoreAdj: true,
  conntrack: {
    maxPerCore: true, min: true, tcpEstablishedTimeout: durationLeaf, tcpCloseWaitTimeout: durationLeaf,
    tcpBeLiberal: true, udpTimeout: durationLeaf, udpStreamTimeout: durationLeaf,
  },
  configSyncPeriod: durationLeaf,
  portRange: true,
  windowsRunAsService: true,
};

/** Dotted paths of the leaves of `spec` marked 'duration'. */
function durationPaths(spec: FieldSpec, prefix = ''): string[] {
  if (typeof spec !== 'object') return spec === 'duration' ? [prefix] : [];
  return Object.entries(spec).flatMap(([key, child]) => durationPaths(child, prefix === '' ? key : `${prefix}.${key}`));
}

/** Every duration-valued field, dotted. `null` is accepted for these (kubeadm writes it for unset pointers). */
export const DURATION_FIELDS: readonly string[] = durationPaths(KUBE_PROXY_CONFIGURATION_FIELDS);

/** Dotted paths of fields in `value` that `spec` does not know. */
export function unknownFields(value: unknown, spec: FieldSpec, prefix = ''): string[] {
  if (typeof spec !== 'object') return [];
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return [];
  const found: string[] = [];
  for (const [key, child] of Object.entries(value)) {
    const path = prefix === '' ? key : `${prefix}.${key}`;
    const childSpec = spec[key];
    if (childSpec === undefined) found.push(path);
    else found.push(...unknownFields(child, childSpec, path));
  }
  return found;
}
