// A KubeProxyConfiguration (v1alpha1) → the internal configuration, as kube-proxy reads it: its defaulting
// (SetDefaults_KubeProxyConfiguration: zero values mean "default", except for the pointer fields, where only
// null does) and its conversion (the selected mode's block gives the sync periods and masqueradeAll).
import { isRecord } from '../util/record.ts';
import { booleanValue, clusterCIDRs, durationMs, integerIn, invalid, nodePortAddresses, stringList, stringValue, cidr } from './checks.ts';
import { defaultInternalConfig, modeBlockOf, type InternalConfig } from './internal.ts';
import type { ConfigObject } from './file.ts';
import { groups } from './schema.ts';

const INT32_MAX = 2 ** 31 - 1;

/** Reads of one file, each naming its dotted field; absent and null are `undefined`. */
class FileReader {
  readonly #file: ConfigObject;
  readonly origin: Record<string, string> = {};
  constructor(file: ConfigObject) {
    this.#file = file;
  }

  raw(path: string): unknown {
    let current: unknown = this.#file;
    for (const key of path.split('.')) {
      if (!isRecord(current)) return undefined;
      current = current[key];
    }
    return current === null ? undefined : current;
  }

  /** Read `path` with `check` when present; records it as the origin of `key` (default: the path itself). */
  read<T>(path: string, check: (name: string, value: unknown) => T, key = path): T | undefined {
    const value = this.raw(path);
    if (value === undefined) return undefined;
    this.origin[key] = path;
    return check(path, value);
  }

  string(path: string): string | undefined { return this.read(path, stringValue); }
  bool(path: string): boolean | undefined { return this.read(path, booleanValue); }
  int(path: string, min = -INT32_MAX - 1, max = INT32_MAX, key = path): number | undefined {
    return this.read(path, (name, value) => integerIn(name, value, min, max), key);
  }
  /** A metav1.Duration: zero means unset, so the default stays. */
  duration(path: string, key = path): number | undefined {
    const ms = this.read(path, durationMs, key);
    return ms === 0 ? undefined : ms;
  }
  /** A *metav1.Duration: only null means unset; an explicit 0 is kept ("leave the kernel's value"). */
  durationPointer(path: string, key = path): number | undefined {
    return this.read(path, durationMs, key);
  }
}

const nonEmpty = (text: string | undefined): string | undefined => (text === undefined || text === '' ? undefined : text);

/** The internal configuration `file` describes; throws a ConfigError naming the first bad field. */
export function internalFromFile(file: ConfigObject): InternalConfig {
  const c = defaultInternalConfig();
  const r = new FileReader(file);
  c.origin = r.origin;
  for (const path of groups()) {
    const value = r.raw(path);
    if (value !== undefined && !isRecord(value)) invalid(path, value, 'must be a mapping of fields');
  }

  c.featureGates = r.read('featureGates', featureGates) ?? {};
  c.clientConnection.kubeconfig = r.string('clientConnection.kubeconfig') ?? '';
  c.clientConnection.acceptContentTypes = r.string('clientConnection.acceptContentTypes') ?? '';
  c.clientConnection.contentType = nonEmpty(r.string('clientConnection.contentType')) ?? c.clientConnection.contentType;
  const qps = r.read('clientConnection.qps', (name, value) => (typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : invalid(name, value, 'must be a non-negative number')));
  if (qps !== undefined && qps !== 0) c.clientConnection.qps = qps;
  const burst = r.int('clientConnection.burst', 0);
  if (burst !== undefined && burst !== 0) c.clientConnection.burst = burst;
  // kubeadm writes "" and 0 for every client setting it leaves to the defaults: those were not asked for.
  for (const [key, zero] of [['acceptContentTypes', ''], ['contentType', ''], ['qps', 0], ['burst', 0]] as const) {
    if (r.raw(`clientConnection.${key}`) === zero) delete r.origin[`clientConnection.${key}`];
  }

  readLogging(r, c);
  c.hostnameOverride = r.string('hostnameOverride') ?? '';
  c.bindAddress = nonEmpty(r.string('bindAddress')) ?? c.bindAddress;
  // Defaults that follow bindAddress's family (kube-proxy's getDefaultAddresses); resolve.ts adds ports to bare IPs.
  const v6 = c.bindAddress.includes(':');
  c.healthzBindAddress = nonEmpty(r.string('healthzBindAddress')) ?? (v6 ? '[::]:10256' : c.healthzBindAddress);
  c.metricsBindAddress = nonEmpty(r.string('metricsBindAddress')) ?? (v6 ? '[::1]:10249' : c.metricsBindAddress);
  c.bindAddressHardFail = r.bool('bindAddressHardFail') ?? false;
  c.enableProfiling = r.bool('enableProfiling') ?? false;
  c.showHiddenMetricsForVersion = r.string('showHiddenMetricsForVersion') ?? '';
  c.mode = r.string('mode') ?? '';

  c.iptables.masqueradeBit = r.int('iptables.masqueradeBit') ?? c.iptables.masqueradeBit;
  c.iptables.localhostNodePorts = r.bool('iptables.localhostNodePorts') ?? true;
  c.iptables.variant = r.string('iptables.variant') ?? '';
  c.takeOverFromKubeProxy = r.bool('takeOverFromKubeProxy') ?? false;
  c.nftables.masqueradeBit = r.int('nftables.masqueradeBit') ?? c.nftables.masqueradeBit;
  const iptablesAll = r.bool('iptables.masqueradeAll') ?? false;
  const nftablesAll = r.bool('nftables.masqueradeAll') ?? false;
  c.ipvs.scheduler = r.string('ipvs.scheduler') ?? '';
  c.ipvs.excludeCIDRs = (r.read('ipvs.excludeCIDRs', stringList) ?? []).map((text, i) => cidr(`ipvs.excludeCIDRs[${i}]`, text, '10.0.0.0/8'));
  c.ipvs.strictARP = r.bool('ipvs.strictARP') ?? false;
  c.ipvs.tcpTimeoutMs = r.durationPointer('ipvs.tcpTimeout') ?? 0;
  c.ipvs.tcpFinTimeoutMs = r.durationPointer('ipvs.tcpFinTimeout') ?? 0;
  c.ipvs.udpTimeoutMs = r.durationPointer('ipvs.udpTimeout') ?? 0;

  // Every block's durations are checked, the selected mode's block is used (upstream's conversion).
  const periods = {
    iptables: { sync: r.duration('iptables.syncPeriod'), min: r.duration('iptables.minSyncPeriod') },
    ipvs: { sync: r.duration('ipvs.syncPeriod'), min: r.duration('ipvs.minSyncPeriod') },
    nftables: { sync: r.duration('nftables.syncPeriod'), min: r.duration('nftables.minSyncPeriod') },
  };
  const block = modeBlockOf(c.mode);
  c.syncPeriodMs = periods[block].sync ?? 30_000;
  c.minSyncPeriodMs = periods[block].min ?? (block === 'ipvs' ? 0 : 1000);
  c.masqueradeAll = block === 'nftables' ? nftablesAll : iptablesAll;
  for (const [key, field] of [['syncPeriodMs', 'syncPeriod'], ['minSyncPeriodMs', 'minSyncPeriod'], ['masqueradeAll', 'masqueradeAll']] as const) {
    const path = `${block}.${field}`;
    if (r.origin[path] !== undefined) r.origin[key] = path;
  }

  c.winkernel = {
    networkName: r.string('winkernel.networkName') ?? '',
    sourceVip: r.string('winkernel.sourceVip') ?? '',
    enableDSR: r.bool('winkernel.enableDSR') ?? false,
    rootHnsEndpointName: r.string('winkernel.rootHnsEndpointName') ?? '',
    forwardHealthCheckVip: r.bool('winkernel.forwardHealthCheckVip') ?? false,
  };
  c.windowsRunAsService = r.bool('windowsRunAsService') ?? false;
  c.detectLocalMode = r.string('detectLocalMode') ?? '';
  c.detectLocal.bridgeInterface = r.string('detectLocal.bridgeInterface') ?? '';
  c.detectLocal.interfaceNamePrefix = r.string('detectLocal.interfaceNamePrefix') ?? '';
  c.clusterCIDRs = clusterCIDRs('clusterCIDR', r.string('clusterCIDR') ?? '');
  c.nodePortAddresses = nodePortAddresses('nodePortAddresses', r.read('nodePortAddresses', stringList) ?? []);
  c.oomScoreAdj = r.int('oomScoreAdj', -1000, 1000) ?? c.oomScoreAdj;

  const ct = c.conntrack;
  ct.maxPerCore = r.int('conntrack.maxPerCore', 0) ?? ct.maxPerCore;
  ct.min = r.int('conntrack.min', 0) ?? ct.min;
  ct.tcpEstablishedTimeoutMs = r.durationPointer('conntrack.tcpEstablishedTimeout') ?? ct.tcpEstablishedTimeoutMs;
  ct.tcpCloseWaitTimeoutMs = r.durationPointer('conntrack.tcpCloseWaitTimeout') ?? ct.tcpCloseWaitTimeoutMs;
  ct.tcpBeLiberal = r.bool('conntrack.tcpBeLiberal') ?? false;
  ct.udpTimeoutMs = r.durationPointer('conntrack.udpTimeout') ?? 0;
  ct.udpStreamTimeoutMs = r.durationPointer('conntrack.udpStreamTimeout') ?? 0;

  c.configSyncPeriodMs = r.duration('configSyncPeriod') ?? c.configSyncPeriodMs;
  c.portRange = r.string('portRange') ?? '';
  const userspace = r.raw('userspace');
  c.userspace = isRecord(userspace) ? { ...userspace } : {};
  return c;
}

function featureGates(name: string, value: unknown): Record<string, boolean> {
  if (!isRecord(value)) return invalid(name, value, 'must be a map of feature names to true or false');
  for (const [gate, enabled] of Object.entries(value)) booleanValue(`${name}.${gate}`, enabled);
  return { ...(value as Record<string, boolean>) };
}

/** logging: format and verbosity are applied; the rest is kept to be reported (and written back). */
function readLogging(r: FileReader, c: InternalConfig): void {
  const log = c.logging;
  log.format = r.string('logging.format') ?? '';
  log.verbosity = r.int('logging.verbosity', 0) ?? 0;
  // TimeOrMetaDuration: a Go duration string, or a number of nanoseconds.
  const flush = r.read('logging.flushFrequency', (name, value) => (typeof value === 'number' && Number.isFinite(value) && value >= 0
    ? value / 1e6 : durationMs(name, value)));
  if (flush !== undefined && flush !== 0) log.flushFrequencyMs = flush;
  log.vmodule = r.raw('logging.vmodule');
  for (const format of ['json', 'text'] as const) {
    const options = log.options[format];
    options.splitStream = r.bool(`logging.options.${format}.splitStream`) ?? false;
    const size = r.raw(`logging.options.${format}.infoBufferSize`);
    if (size !== undefined) {
      r.origin[`logging.options.${format}.infoBufferSize`] = `logging.options.${format}.infoBufferSize`;
      options.infoBufferSize = String(size);
    }
  }
}
