// Flags + KubeProxyConfiguration → ProxyConfig. Precedence as kube-proxy: a flag given on the command line
// overrides the file, the file overrides the defaults. Every invalid value is a ConfigError naming the field.
import { isIP } from 'node:net';
import { ConfigError } from '../errors.ts';
import type { ProxyModeName } from '../model/types.ts';
import { parseCidr } from '../util/ip.ts';
import { parseDuration } from './duration.ts';
import { isRecord, readConfigFile, type ConfigObject } from './file.ts';
import { DURATION_FIELDS } from './schema.ts';
import type { DetectLocalMode, FlagValues, ProxyConfig, ResolvedConfig } from './types.ts';

export const PROXY_MODES: readonly ProxyModeName[] = ['iptables', 'ipvs', 'nftables', 'userspace'];

export const DEFAULTS = {
  mode: 'iptables' as ProxyModeName,
  bindAddress: '0.0.0.0',
  healthzBindAddress: '0.0.0.0:10256',
  metricsBindAddress: '127.0.0.1:10249',
  healthzPort: 10256,
  metricsPort: 10249,
  masqueradeBit: 14,
  syncPeriodMs: 30_000,
  minSyncPeriodMs: 1_000,
  ipvsMinSyncPeriodMs: 0,
  configSyncPeriodMs: 15 * 60_000,
} as const;

/** Read `flags.config` (when given) and merge it with the flags. */
export function loadConfig(flags: FlagValues): ResolvedConfig {
  const warnings: string[] = [];
  let file: ConfigObject = {};
  if (flags.config !== undefined && flags.config !== '') {
    const loaded = readConfigFile(flags.config);
    file = loaded.config;
    if (loaded.unknownFields.length > 0) {
      warnings.push(`config file ${loaded.path}: unknown fields ignored: ${loaded.unknownFields.join(', ')}`);
    }
  }
  return resolveConfig({ flags, file, warnings });
}

export interface ResolveInput {
  readonly flags: FlagValues;
  /** The KubeProxyConfiguration object ({} without --config). */
  readonly file: ConfigObject;
  readonly warnings?: string[];
}

export function resolveConfig(input: ResolveInput): ResolvedConfig {
  const { flags, file } = input;
  const warnings = input.warnings ?? [];
  for (const field of DURATION_FIELDS) optionalDuration(file, field); // reject bad durations anywhere

  const mode = resolveMode(flags.proxyMode, file.mode);
  const block = modeBlockName(mode);
  const masqueradeBlock = mode === 'nftables' ? 'nftables' : 'iptables';

  const syncPeriodMs = flags.syncPeriod !== undefined
    ? requireDuration('--sync-period', flags.syncPeriod)
    : optionalDuration(file, `${block}.syncPeriod`) ?? DEFAULTS.syncPeriodMs;
  const minSyncPeriodMs = flags.minSyncPeriod !== undefined
    ? requireDuration('--min-sync-period', flags.minSyncPeriod)
    : optionalDuration(file, `${block}.minSyncPeriod`) ?? (mode === 'ipvs' ? DEFAULTS.ipvsMinSyncPeriodMs : DEFAULTS.minSyncPeriodMs);
  if (syncPeriodMs <= 0) {
    throw new ConfigError({ field: flags.syncPeriod !== undefined ? '--sync-period' : `${block}.syncPeriod`, value: flags.syncPeriod ?? get(file, `${block}.syncPeriod`), reason: 'must be greater than 0' });
  }
  if (minSyncPeriodMs > syncPeriodMs) {
    throw new ConfigError({
      field: flags.minSyncPeriod !== undefined ? '--min-sync-period' : `${block}.minSyncPeriod`,
      value: flags.minSyncPeriod ?? get(file, `${block}.minSyncPeriod`),
      reason: 'must not be longer than the sync period',
    });
  }

  const masqueradeAll = flags.masqueradeAll ?? optionalBoolean(file, `${masqueradeBlock}.masqueradeAll`) ?? false;
  const masqueradeBit = flags.iptablesMasqueradeBit !== undefined
    ? checkMasqueradeBit('--iptables-masquerade-bit', flags.iptablesMasqueradeBit)
    : checkMasqueradeBit(`${masqueradeBlock}.masqueradeBit`, get(file, `${masqueradeBlock}.masqueradeBit`) ?? DEFAULTS.masqueradeBit);

  const clusterCIDRs = flags.clusterCidr !== undefined
    ? parseClusterCIDRs('--cluster-cidr', flags.clusterCidr)
    : parseClusterCIDRs('clusterCIDR', optionalString(file, 'clusterCIDR') ?? '');
  const nodePortAddresses = flags.nodeportAddresses !== undefined
    ? parseNodePortAddresses('--nodeport-addresses', splitList(flags.nodeportAddresses))
    : parseNodePortAddresses('nodePortAddresses', optionalStringList(file, 'nodePortAddresses'));

  const detectLocalMode = resolveDetectLocal(file, clusterCIDRs, warnings);
  const verbosity = flags.v !== undefined ? checkVerbosity('-v', flags.v) : checkVerbosity('logging.verbosity', get(file, 'logging.verbosity') ?? 0);
  const format = resolveLogFormat(flags.logFormat, get(file, 'logging.format'));

  const hostnameOverride = nonEmpty(flags.hostnameOverride ?? optionalString(file, 'hostnameOverride'))?.trim().toLowerCase();
  const kubeconfig = nonEmpty(flags.kubeconfig ?? optionalString(file, 'clientConnection.kubeconfig'));
  const master = nonEmpty(flags.master);
  const clientConnection = resolveClientConnection(file);
  const manifests = nonEmpty(flags.manifests);
  const serviceProxyName = nonEmpty(flags.serviceProxyName);
  const bindAddress = checkIP(flags.bindAddress !== undefined ? '--bind-address' : 'bindAddress', nonEmpty(flags.bindAddress ?? optionalString(file, 'bindAddress')) ?? DEFAULTS.bindAddress);
  const healthzBindAddress = flags.healthzBindAddress !== undefined
    ? checkHostPort('--healthz-bind-address', flags.healthzBindAddress, DEFAULTS.healthzPort)
    : checkHostPort('healthzBindAddress', optionalString(file, 'healthzBindAddress') || DEFAULTS.healthzBindAddress, DEFAULTS.healthzPort);
  const metricsBindAddress = flags.metricsBindAddress !== undefined
    ? checkHostPort('--metrics-bind-address', flags.metricsBindAddress, DEFAULTS.metricsPort)
    : checkHostPort('metricsBindAddress', optionalString(file, 'metricsBindAddress') || DEFAULTS.metricsBindAddress, DEFAULTS.metricsPort);
  const localhostNodePorts = optionalBoolean(file, 'iptables.localhostNodePorts') ?? true;
  const configSyncPeriodMs = optionalDuration(file, 'configSyncPeriod') ?? DEFAULTS.configSyncPeriodMs;
  checkOomScoreAdj(get(file, 'oomScoreAdj'));
  if (mode === 'ipvs') optionalString(file, 'ipvs.scheduler');

  const rawBlock = get(file, block);
  const userspaceBlock = mode === 'userspace' ? get(file, 'userspace') : undefined;
  const iptablesVariant = resolveIptablesVariant(flags.iptablesVariant, get(file, 'iptables.variant'));
  const modeSettings: Record<string, unknown> = {
    ...(isRecord(rawBlock) ? rawBlock : {}),
    ...(isRecord(userspaceBlock) ? userspaceBlock : {}),
    masqueradeAll, masqueradeBit, syncPeriodMs, minSyncPeriodMs,
    ...(mode === 'iptables' && { localhostNodePorts }),
    ...(mode === 'iptables' && iptablesVariant !== undefined && { variant: iptablesVariant }),
  };
  delete modeSettings.syncPeriod;
  delete modeSettings.minSyncPeriod;
  if (iptablesVariant === undefined) delete modeSettings.variant; // auto: the mode detects it

  const config: ProxyConfig = {
    mode,
    ...(hostnameOverride !== undefined && { hostnameOverride }),
    ...(kubeconfig !== undefined && { kubeconfig }),
    ...(master !== undefined && { master }),
    clientConnection,
    ...(manifests !== undefined && { manifests }),
    ...(serviceProxyName !== undefined && { serviceProxyName }),
    clusterCIDRs, nodePortAddresses, detectLocalMode,
    masqueradeAll, masqueradeBit, syncPeriodMs, minSyncPeriodMs, configSyncPeriodMs,
    bindAddress, healthzBindAddress, metricsBindAddress, localhostNodePorts,
    cleanup: flags.cleanup ?? false,
    bindAddressHardFail: flags.bindAddressHardFail ?? optionalBoolean(file, 'bindAddressHardFail') ?? false,
    log: { format, verbosity },
    modeSettings,
    ...(flags.config !== undefined && flags.config !== '' && { configFile: flags.config }),
  };
  return { config, warnings };
}

function resolveMode(flag: string | undefined, fromFile: unknown): ProxyModeName {
  const field = flag !== undefined ? '--proxy-mode' : 'mode';
  const value = flag ?? fromFile ?? '';
  if (value === null || value === '') return DEFAULTS.mode;
  if (typeof value === 'string' && (PROXY_MODES as readonly string[]).includes(value)) return value as ProxyModeName;
  const hint = value === 'kernelspace' ? 'kernelspace is the Windows mode; ' : '';
  throw new ConfigError({ field, value, reason: `${hint}must be one of ${PROXY_MODES.join(', ')}` });
}

function resolveIptablesVariant(flag: string | undefined, fromFile: unknown): 'legacy' | 'nft' | undefined {
  const field = flag !== undefined ? '--iptables-variant' : 'iptables.variant';
  const value = flag ?? fromFile ?? 'auto';
  if (value === 'legacy' || value === 'nft') return value;
  if (value === 'auto' || value === '') return undefined;
  throw new ConfigError({ field, value, reason: 'must be legacy, nft or auto' });
}

/** The config block a mode reads its sync periods from (userspace, like upstream's old one, uses iptables'). */
function modeBlockName(mode: ProxyModeName): 'iptables' | 'ipvs' | 'nftables' {
  if (mode === 'ipvs' || mode === 'nftables') return mode;
  return 'iptables';
}

function resolveLogFormat(flag: string | undefined, fromFile: unknown): 'json' | 'text' {
  const field = flag !== undefined ? '--log-format' : 'logging.format';
  const value = flag ?? fromFile ?? 'json';
  if (value === 'json' || value === 'text') return value;
  if (value === '' || value === null) return 'json';
  throw new ConfigError({ field, value, reason: 'must be json or text' });
}

function resolveDetectLocal(file: ConfigObject, clusterCIDRs: readonly string[], warnings: string[]): DetectLocalMode {
  const value = get(file, 'detectLocalMode');
  if (value === undefined || value === null || value === '') return 'ClusterCIDR';
  const modes: readonly DetectLocalMode[] = ['ClusterCIDR', 'NodeCIDR', 'BridgeInterface', 'InterfaceNamePrefix'];
  if (typeof value !== 'string' || !(modes as readonly string[]).includes(value)) {
    throw new ConfigError({ field: 'detectLocalMode', value, reason: `must be one of ${modes.join(', ')}` });
  }
  if (value === 'BridgeInterface' || value === 'InterfaceNamePrefix') {
    warnings.push(`detectLocalMode ${value} is not supported yet; local traffic is detected by clusterCIDR${clusterCIDRs.length === 0 ? ' (empty: no detection)' : ''}`);
  }
  return value as DetectLocalMode;
}

/** kubeadm writes "" and 0 for unset client settings: those mean "use the defaults". */
function resolveClientConnection(file: ConfigObject): ProxyConfig['clientConnection'] {
  const contentType = nonEmpty(optionalString(file, 'clientConnection.contentType'));
  const acceptContentTypes = nonEmpty(optionalString(file, 'clientConnection.acceptContentTypes'));
  const qps = optionalNumber(file, 'clientConnection.qps');
  const burst = optionalNumber(file, 'clientConnection.burst');
  return {
    ...(contentType !== undefined && { contentType }),
    ...(acceptContentTypes !== undefined && { acceptContentTypes }),
    ...(qps !== undefined && qps !== 0 && { qps }),
    ...(burst !== undefined && burst !== 0 && { burst }),
  };
}

function optionalNumber(file: ConfigObject, path: string): number | undefined {
  const value = get(file, path);
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return value;
  throw new ConfigError({ field: path, value, reason: 'must be a non-negative number' });
}

function parseClusterCIDRs(field: string, text: string): string[] {
  const parts = text.split(',').map((p) => p.trim()).filter((p) => p !== '');
  const cidrs = parts.map((part) => {
    const cidr = part.includes('/') ? parseCidr(part) : undefined;
    if (!cidr) throw new ConfigError({ field, value: part, reason: 'is not a CIDR (e.g. 10.244.0.0/16)' });
    return cidr;
  });
  if (cidrs.length > 2 || (cidrs.length === 2 && cidrs[0]?.family === cidrs[1]?.family)) {
    throw new ConfigError({ field, value: text, reason: 'allows at most one CIDR per IP family' });
  }
  return cidrs.map((c) => c.text);
}

function parseNodePortAddresses(field: string, values: readonly string[]): string[] {
  const result = values.map((value) => {
    if (value === 'primary') return value;
    const cidr = value.includes('/') ? parseCidr(value) : undefined;
    if (!cidr) throw new ConfigError({ field, value, reason: 'must be CIDRs or the word "primary"' });
    return cidr.text;
  });
  if (result.includes('primary') && result.length > 1) {
    throw new ConfigError({ field, value: values.join(','), reason: '"primary" cannot be combined with CIDRs' });
  }
  return result;
}

function checkMasqueradeBit(field: string, value: unknown): number {
  if (typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 31) return value;
  throw new ConfigError({ field, value, reason: 'must be an integer from 0 to 31' });
}

function checkVerbosity(field: string, value: unknown): number {
  if (typeof value === 'number' && Number.isInteger(value) && value >= 0) return value;
  throw new ConfigError({ field, value, reason: 'must be a non-negative integer' });
}

function checkOomScoreAdj(value: unknown): void {
  if (value === undefined || value === null) return;
  if (typeof value === 'number' && Number.isInteger(value) && value >= -1000 && value <= 1000) return;
  throw new ConfigError({ field: 'oomScoreAdj', value, reason: 'must be an integer from -1000 to 1000' });
}

function checkIP(field: string, value: string): string {
  if (isIP(value) !== 0) return value;
  throw new ConfigError({ field, value, reason: 'is not an IP address' });
}

/**
 * "ip:port", "[ipv6]:port", or a bare IP (the default port is added, as kube-proxy does). Empty disables.
 * A port of 0 also disables the server.
 */
export function checkHostPort(field: string, value: string, defaultPort: number): string {
  const text = value.trim();
  if (text === '') return '';
  if (isIP(text) !== 0) return isIP(text) === 6 ? `[${text}]:${defaultPort}` : `${text}:${defaultPort}`;
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  const host = match?.[1] ?? match?.[2];
  const port = Number(match?.[3]);
  if (host === undefined || isIP(host) === 0 || (match?.[1] !== undefined && isIP(host) !== 6)) {
    throw new ConfigError({ field, value, reason: 'must be IP:port (e.g. 0.0.0.0:10256)' });
  }
  if (!Number.isInteger(port) || port > 65535) {
    throw new ConfigError({ field, value, reason: 'port must be from 0 to 65535' });
  }
  return port === 0 ? '' : text;
}

function requireDuration(field: string, value: unknown): number {
  const ms = typeof value === 'string' ? parseDuration(value) : undefined;
  if (ms === undefined) throw new ConfigError({ field, value, reason: 'is not a duration (e.g. "1s", "30s", "1m0s")' });
  return ms;
}

/**
 * A duration field of the file; null/absent → undefined. Zero also → undefined: kubeadm writes "0s" for every
 * unset duration and kube-proxy's defaulting treats zero as unset (so the file cannot ask for a 0 minSyncPeriod;
 * the --min-sync-period=0s flag can).
 */
function optionalDuration(file: ConfigObject, path: string): number | undefined {
  const value = get(file, path);
  if (value === undefined || value === null) return undefined;
  const ms = requireDuration(path, value);
  return ms === 0 ? undefined : ms;
}

function optionalBoolean(file: ConfigObject, path: string): boolean | undefined {
  const value = get(file, path);
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'boolean') return value;
  throw new ConfigError({ field: path, value, reason: 'must be true or false' });
}

function optionalString(file: ConfigObject, path: string): string | undefined {
  const value = get(file, path);
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  throw new ConfigError({ field: path, value, reason: 'must be a string' });
}

function optionalStringList(file: ConfigObject, path: string): string[] {
  const value = get(file, path);
  if (value === undefined || value === null) return [];
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value;
  throw new ConfigError({ field: path, value, reason: 'must be a list of strings' });
}

function splitList(value: string | readonly string[]): string[] {
  const items = typeof value === 'string' ? [value] : value;
  return items.flatMap((item) => item.split(',')).map((s) => s.trim()).filter((s) => s !== '');
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value;
}

function get(object: ConfigObject, path: string): unknown {
  let current: unknown = object;
  for (const key of path.split('.')) {
    if (!isRecord(current)) return undefined;
    current = current[key];
  }
  return current;
}
