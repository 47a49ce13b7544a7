// The internal configuration → a KubeProxyConfiguration (v1alpha1) shaped as kube-proxy writes it with
// --write-config-to (every field, zero values included, the sync periods in the selected mode's block only),
// plus kproxy's own fields when they are set. Also served under /configz.
import { stringify } from 'yaml';
import { formatDuration } from './duration.ts';
import { KUBE_PROXY_CONFIG_API_VERSION, KUBE_PROXY_CONFIG_KIND } from './file.ts';
import { modeBlockOf, type InternalConfig } from './internal.ts';

/** A finished internal configuration (platform defaults applied) as a v1alpha1 object. */
export function toV1Alpha1(c: InternalConfig): Record<string, unknown> {
  const block = modeBlockOf(c.mode);
  const d = formatDuration;
  const periods = (name: 'iptables' | 'ipvs' | 'nftables'): Record<string, string> => ({
    syncPeriod: d(block === name ? c.syncPeriodMs : 0),
    minSyncPeriod: d(block === name ? c.minSyncPeriodMs : 0),
  });
  const logOptions = (o: { splitStream: boolean; infoBufferSize: string }): Record<string, unknown> => ({
    infoBufferSize: o.infoBufferSize, ...(o.splitStream && { splitStream: true }),
  });
  const vmodule = Array.isArray(c.logging.vmodule) && c.logging.vmodule.length === 0 ? undefined : c.logging.vmodule;
  return {
    apiVersion: KUBE_PROXY_CONFIG_API_VERSION,
    kind: KUBE_PROXY_CONFIG_KIND,
    bindAddress: c.bindAddress,
    bindAddressHardFail: c.bindAddressHardFail,
    clientConnection: { ...c.clientConnection },
    clusterCIDR: c.clusterCIDRs.join(','),
    configSyncPeriod: d(c.configSyncPeriodMs),
    conntrack: {
      maxPerCore: c.conntrack.maxPerCore,
      min: c.conntrack.min,
      tcpBeLiberal: c.conntrack.tcpBeLiberal,
      tcpCloseWaitTimeout: d(c.conntrack.tcpCloseWaitTimeoutMs),
      tcpEstablishedTimeout: d(c.conntrack.tcpEstablishedTimeoutMs),
      udpStreamTimeout: d(c.conntrack.udpStreamTimeoutMs),
      udpTimeout: d(c.conntrack.udpTimeoutMs),
    },
    detectLocal: { ...c.detectLocal },
    detectLocalMode: c.detectLocalMode,
    enableProfiling: c.enableProfiling,
    ...(Object.keys(c.featureGates).length > 0 && { featureGates: { ...c.featureGates } }),
    healthzBindAddress: c.healthzBindAddress,
    hostnameOverride: c.hostnameOverride,
    iptables: {
      localhostNodePorts: c.iptables.localhostNodePorts,
      masqueradeAll: block !== 'nftables' && c.masqueradeAll,
      masqueradeBit: c.iptables.masqueradeBit,
      ...periods('iptables'),
      ...(c.iptables.variant !== '' && { variant: c.iptables.variant }),
    },
    ipvs: {
      excludeCIDRs: c.ipvs.excludeCIDRs.length > 0 ? [...c.ipvs.excludeCIDRs] : null,
      ...periods('ipvs'),
      scheduler: c.ipvs.scheduler,
      strictARP: c.ipvs.strictARP,
      tcpFinTimeout: d(c.ipvs.tcpFinTimeoutMs),
      tcpTimeout: d(c.ipvs.tcpTimeoutMs),
      udpTimeout: d(c.ipvs.udpTimeoutMs),
    },
    logging: {
      flushFrequency: d(c.logging.flushFrequencyMs),
      format: c.logging.format,
      options: { json: logOptions(c.logging.options.json), text: logOptions(c.logging.options.text) },
      verbosity: c.logging.verbosity,
      ...(vmodule !== undefined && { vmodule }),
    },
    metricsBindAddress: c.metricsBindAddress,
    mode: c.mode,
    nftables: {
      masqueradeAll: block === 'nftables' && c.masqueradeAll,
      masqueradeBit: c.nftables.masqueradeBit,
      ...periods('nftables'),
    },
    nodePortAddresses: c.nodePortAddresses.length > 0 ? [...c.nodePortAddresses] : null,
    oomScoreAdj: c.oomScoreAdj,
    // Read and dropped by kube-proxy's conversion (its internal configuration has no such field).
    portRange: '',
    showHiddenMetricsForVersion: c.showHiddenMetricsForVersion,
    ...(Object.keys(c.userspace).length > 0 && { userspace: { ...c.userspace } }),
    winkernel: { ...c.winkernel },
    ...(c.windowsRunAsService && { windowsRunAsService: true }),
    ...(c.takeOverFromKubeProxy && { takeOverFromKubeProxy: true }),
  };
}

/** YAML as kube-proxy writes it (keys sorted). */
export function effectiveYaml(effective: Readonly<Record<string, unknown>>): string {
  return stringify(effective, { sortMapEntries: true, lineWidth: 0, indentSeq: false });
}
