// Flags + KubeProxyConfiguration → ProxyConfig, with kube-proxy's precedence:
//   - without --config, the flags set the configuration over kube-proxy's defaults;
//   - with --config, the file is the configuration and kube-proxy's other flags are IGNORED, as kube-proxy ignores
//     them — except the logging flags (-v, --logging-format, …) and --hostname-override, which override the file;
//   - kproxy's own flags (--log-format, --iptables-variant, --sync-period, --min-sync-period, --manifests,
//     --service-proxy-name) always apply, over the file.
// Every invalid value is a ConfigError naming the flag or field; everything kproxy does not apply is one warning.
import type { ProxyModeName } from '../model/types.ts';
import type { ModeSettings } from '../model/settings.ts';
import { parseIPSloppy } from '../util/ip.ts';
import { hostPort, invalid } from './checks.ts';
import { formatDuration } from './duration.ts';
import { toV1Alpha1 } from './effective.ts';
import { FLAGS, flagNamed, parseFlagValue, type FlagValues, type ParsedFlag } from './flags.ts';
import { readConfigFile, type ConfigObject } from './file.ts';
import { internalFromFile } from './from-file.ts';
import { DEFAULT_HEALTHZ_PORT, DEFAULT_METRICS_PORT, defaultInternalConfig, modeBlockOf, originOf, type InternalConfig } from './internal.ts';
import { leaves } from './schema.ts';
import type { DetectLocalMode, ProxyConfig, ResolvedConfig } from './types.ts';

export const PROXY_MODES: readonly ProxyModeName[] = ['iptables', 'ipvs', 'nftables', 'userspace'];
const DETECT_LOCAL_MODES: readonly DetectLocalMode[] = ['ClusterCIDR', 'NodeCIDR', 'BridgeInterface', 'InterfaceNamePrefix'];
/** Feature gates kproxy reads; others are accepted with a warning. */
export const HONOURED_FEATURE_GATES: readonly string[] = ['PreferSameTrafficDistribution'];

/** kube-proxy's defaults as a mode sees them (tests and benchmarks that create a mode directly). */
export function defaultModeSettings(): ModeSettings {
  return resolveConfig({ flags: {} }).config.settings;
}

/** Read `--config` (when given) and resolve it with the flags. */
export function loadConfig(flags: FlagValues): ResolvedConfig {
  const path = typeof flags.config === 'string' && flags.config !== '' ? flags.config : undefined;
  if (path === undefined) return resolveConfig({ flags });
  const loaded = readConfigFile(path);
  const warnings: string[] = [];
  if (loaded.unknownFields.length > 0) warnings.push(`config file ${loaded.path}: unknown fields ignored: ${loaded.unknownFields.join(', ')}`);
  return resolveConfig({ flags, file: loaded.config, warnings });
}

export interface ResolveInput {
  readonly flags: FlagValues;
  /** The KubeProxyConfiguration object of --config; absent: no config file (the flags configure). */
  readonly file?: ConfigObject;
  readonly warnings?: string[];
  /** The environment (KPROXY_IPTABLES_VARIANT); process.env by default. */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

export function resolveConfig(input: ResolveInput): ResolvedConfig {
  const warnings = input.warnings ?? [];
  const flags = input.flags;
  // Every given flag is parsed (a bad value is an error even when --config makes kube-proxy ignore the flag).
  const parsed = new Map<string, ParsedFlag>();
  for (const [name, raw] of Object.entries(flags)) {
    const spec = flagNamed(name);
    if (spec === undefined) invalid(`--${name}`, raw, 'is not a flag of kproxy');
    parsed.set(name, parseFlagValue(spec, raw));
  }
  const withFile = input.file !== undefined;
  const c = withFile ? internalFromFile(input.file ?? {}) : defaultInternalConfig();
  const ignored: string[] = [];
  for (const spec of FLAGS) {
    const value = parsed.get(spec.name);
    if (value === undefined) continue;
    if (spec.noEffect !== undefined) warnings.push(`--${spec.name} has no effect in kproxy: ${spec.noEffect}`);
    if (withFile && spec.scope === 'config') { ignored.push(`--${spec.name}`); continue; }
    spec.apply?.(c, value);
  }
  if (ignored.length > 0) {
    warnings.push(`${ignored.join(', ')} ${ignored.length === 1 ? 'is' : 'are'} ignored because --config is given (as kube-proxy does); set ${ignored.length === 1 ? 'it' : 'them'} in the config file`);
  }
  if (!withFile && flags['write-config-to'] === undefined) applyDeprecatedPorts(c, parsed);
  return finish(c, flags, warnings, input);
}

/** --healthz-port / --metrics-port (kube-proxy, without --config): 0 disables; a bare bind address gets the port. */
function applyDeprecatedPorts(c: InternalConfig, parsed: ReadonlyMap<string, ParsedFlag>): void {
  const healthz = parsed.get('healthz-port');
  const metrics = parsed.get('metrics-port');
  if (healthz !== undefined) { c.healthzBindAddress = withPort(c.healthzBindAddress, Number(healthz)); c.origin.healthzBindAddress ??= '--healthz-port'; }
  if (metrics !== undefined) { c.metricsBindAddress = withPort(c.metricsBindAddress, Number(metrics)); c.origin.metricsBindAddress ??= '--metrics-port'; }
}

function withPort(address: string, port: number): string {
  if (port === 0) return '';
  const ip = parseIPSloppy(address);
  if (ip === undefined) return address;
  return ip.family === 'IPv6' ? `[${ip.ip}]:${port}` : `${ip.ip}:${port}`;
}

/** Platform defaults, checks across fields, warnings for what has no effect, and the ProxyConfig. */
function finish(c: InternalConfig, flags: FlagValues, warnings: string[], input: ResolveInput): ResolvedConfig {
  if (c.mode === '') c.mode = 'iptables';
  const mode = checkMode(c);
  const block = modeBlockOf(mode);
  if (mode === 'nftables' && c.nodePortAddresses.length === 0) c.nodePortAddresses = ['primary'];
  if (c.detectLocalMode === '') c.detectLocalMode = 'ClusterCIDR';
  if (c.logging.format === '') c.logging.format = 'json';

  const syncName = originOf(c, 'syncPeriodMs', `${block}.syncPeriod`);
  const minName = originOf(c, 'minSyncPeriodMs', `${block}.minSyncPeriod`);
  if (c.syncPeriodMs <= 0) invalid(syncName, formatDuration(c.syncPeriodMs), 'must be greater than 0');
  if (c.minSyncPeriodMs > c.syncPeriodMs) invalid(minName, formatDuration(c.minSyncPeriodMs), 'must not be longer than the sync period');
  if (c.configSyncPeriodMs <= 0) invalid(originOf(c, 'configSyncPeriod', 'configSyncPeriod'), formatDuration(c.configSyncPeriodMs), 'must be greater than 0');
  checkBit(c, 'iptables.masqueradeBit', c.iptables.masqueradeBit);
  if (mode === 'nftables') checkBit(c, 'nftables.masqueradeBit', c.nftables.masqueradeBit);
  const bindIP = parseIPSloppy(c.bindAddress);
  if (bindIP === undefined) invalid(originOf(c, 'bindAddress', 'bindAddress'), c.bindAddress, 'is not an IP address');
  c.bindAddress = bindIP.ip;
  c.healthzBindAddress = hostPort(originOf(c, 'healthzBindAddress', 'healthzBindAddress'), c.healthzBindAddress, DEFAULT_HEALTHZ_PORT);
  c.metricsBindAddress = hostPort(originOf(c, 'metricsBindAddress', 'metricsBindAddress'), c.metricsBindAddress, DEFAULT_METRICS_PORT);
  const detectLocalMode = checkDetectLocal(c, warnings);
  const format = c.logging.format;
  if (format !== 'json' && format !== 'text') invalid(originOf(c, 'logging.format', 'logging.format'), format, 'must be json or text');
  // The one check of the iptables variant: the flag or file, else KPROXY_IPTABLES_VARIANT (images and tests set it).
  const fromEnv = c.iptables.variant === '' ? (input.env ?? process.env).KPROXY_IPTABLES_VARIANT ?? '' : '';
  const variant = fromEnv !== '' ? fromEnv : c.iptables.variant;
  const variantName = fromEnv !== '' ? 'KPROXY_IPTABLES_VARIANT' : originOf(c, 'iptables.variant', 'iptables.variant');
  if (!['', 'auto', 'legacy', 'nft'].includes(variant)) invalid(variantName, variant, 'must be legacy, nft or auto');
  if (c.clientConnection.burst < 0) invalid(originOf(c, 'clientConnection.burst', 'clientConnection.burst'), c.clientConnection.burst, 'must be 0 or more');

  const effective = toV1Alpha1(c);
  warnings.push(...noEffectWarnings(c, effective));
  const gates = Object.keys(c.featureGates).filter((gate) => !HONOURED_FEATURE_GATES.includes(gate));
  if (gates.length > 0) {
    warnings.push(`feature gates ${gates.join(', ')} have no effect in kproxy (it reads only ${HONOURED_FEATURE_GATES.join(', ')})`);
  }
  if (mode === 'iptables' && c.iptables.localhostNodePorts && c.origin['iptables.localhostNodePorts'] !== undefined) {
    warnings.push(`${originOf(c, 'iptables.localhostNodePorts', 'iptables.localhostNodePorts')} true has no effect in kproxy: NodePorts are never served on 127.0.0.0/8 (CVE-2020-8558)`);
  }

  const settings: ModeSettings = {
    syncPeriodMs: c.syncPeriodMs,
    minSyncPeriodMs: c.minSyncPeriodMs,
    masqueradeAll: c.masqueradeAll,
    masqueradeBit: mode === 'nftables' ? c.nftables.masqueradeBit : c.iptables.masqueradeBit,
    localhostNodePorts: c.iptables.localhostNodePorts,
    ...(variant === 'legacy' || variant === 'nft' ? { iptablesVariant: variant } : {}),
    conntrack: { ...c.conntrack },
    ipvs: { ...c.ipvs, excludeCIDRs: [...c.ipvs.excludeCIDRs] },
    takeOverFromKubeProxy: c.takeOverFromKubeProxy,
  };
  const str = (value: unknown): string | undefined => (typeof value === 'string' && value.trim() !== '' ? value : undefined);
  const hostnameOverride = str(c.hostnameOverride)?.trim().toLowerCase();
  const kubeconfig = str(c.clientConnection.kubeconfig);
  const master = str(flags.master);
  const manifests = str(flags.manifests);
  const serviceProxyName = str(flags['service-proxy-name']);
  const writeConfigTo = str(flags['write-config-to']);
  const configFile = str(flags.config);
  const config: ProxyConfig = {
    mode,
    ...(hostnameOverride !== undefined && { hostnameOverride }),
    ...(kubeconfig !== undefined && { kubeconfig }),
    ...(master !== undefined && { master }),
    clientConnection: explicitClientConnection(c),
    ...(manifests !== undefined && { manifests }),
    ...(serviceProxyName !== undefined && { serviceProxyName }),
    clusterCIDRs: c.clusterCIDRs,
    nodePortAddresses: c.nodePortAddresses,
    detectLocalMode,
    masqueradeAll: settings.masqueradeAll,
    masqueradeBit: settings.masqueradeBit,
    syncPeriodMs: c.syncPeriodMs,
    minSyncPeriodMs: c.minSyncPeriodMs,
    configSyncPeriodMs: c.configSyncPeriodMs,
    bindAddress: c.bindAddress,
    healthzBindAddress: c.healthzBindAddress,
    metricsBindAddress: c.metricsBindAddress,
    localhostNodePorts: c.iptables.localhostNodePorts,
    cleanup: flags.cleanup === true,
    initOnly: flags['init-only'] === true,
    ...(writeConfigTo !== undefined && { writeConfigTo }),
    bindAddressHardFail: c.bindAddressHardFail,
    log: { format, verbosity: c.logging.verbosity },
    featureGates: { ...c.featureGates },
    oomScoreAdj: c.oomScoreAdj,
    conntrack: settings.conntrack,
    settings,
    modeSettings: modeSettingsOf(mode, settings, effective, c.userspace),
    effective,
    ...(configFile !== undefined && { configFile }),
  };
  return { config, warnings };
}

function checkMode(c: InternalConfig): ProxyModeName {
  if ((PROXY_MODES as readonly string[]).includes(c.mode)) return c.mode as ProxyModeName;
  const hint = c.mode === 'kernelspace' ? 'kernelspace is the Windows mode; ' : '';
  return invalid(originOf(c, 'mode', 'mode'), c.mode, `${hint}must be one of ${PROXY_MODES.join(', ')}`);
}

function checkBit(c: InternalConfig, key: string, bit: number): void {
  if (!Number.isInteger(bit) || bit < 0 || bit > 31) invalid(originOf(c, key, key), bit, 'must be an integer from 0 to 31');
}

function checkDetectLocal(c: InternalConfig, warnings: string[]): DetectLocalMode {
  const name = originOf(c, 'detectLocalMode', 'detectLocalMode');
  const value = c.detectLocalMode;
  if (!(DETECT_LOCAL_MODES as readonly string[]).includes(value)) invalid(name, value, `must be one of ${DETECT_LOCAL_MODES.join(', ')}`);
  if (value === 'BridgeInterface' || value === 'InterfaceNamePrefix') {
    const [key, field] = value === 'BridgeInterface' ? ['bridgeInterface', 'detectLocal.bridgeInterface'] as const : ['interfaceNamePrefix', 'detectLocal.interfaceNamePrefix'] as const;
    if (c.detectLocal[key] === '') invalid(originOf(c, field, field), '', `must be set with detectLocalMode ${value}`);
    warnings.push(`detectLocalMode ${value} is not supported yet; local traffic is detected by clusterCIDR${c.clusterCIDRs.length === 0 ? ' (empty: no detection)' : ''}`);
  }
  return value as DetectLocalMode;
}

/**
 * The client settings given explicitly: unset ones are left to the Kubernetes client's defaults. kube-proxy's
 * default content type (protobuf) is not passed on: kproxy's client speaks JSON and only warns about a content
 * type someone chose.
 */
function explicitClientConnection(c: InternalConfig): ProxyConfig['clientConnection'] {
  const cc = c.clientConnection;
  const set = (key: string): boolean => c.origin[`clientConnection.${key}`] !== undefined;
  return {
    ...(set('contentType') && cc.contentType !== '' && cc.contentType !== defaultInternalConfig().clientConnection.contentType && { contentType: cc.contentType }),
    ...(set('acceptContentTypes') && cc.acceptContentTypes !== '' && { acceptContentTypes: cc.acceptContentTypes }),
    ...(set('qps') && { qps: cc.qps }),
    ...(set('burst') && { burst: cc.burst }),
  };
}

/** One warning per field kproxy does not apply that differs from kube-proxy's default. */
function noEffectWarnings(c: InternalConfig, effective: Readonly<Record<string, unknown>>): string[] {
  const defaults = defaultInternalConfig();
  defaults.mode = c.mode;
  const defaultEffective = toV1Alpha1(defaults);
  // portRange is dropped from the effective configuration (as kube-proxy drops it) but was still asked for.
  const asked = { ...effective, portRange: c.portRange };
  return leaves().flatMap(({ path, spec }) => {
    if (spec.noEffect === undefined) return [];
    const value = valueAt(asked, path);
    if (JSON.stringify(value) === JSON.stringify(valueAt(defaultEffective, path))) return [];
    const name = c.origin[path] ?? path;
    const shown = name.startsWith('--') ? name : `${path}${spec.flag !== undefined ? ` (${spec.flag})` : ''}`;
    return [`${shown} ${JSON.stringify(value)} has no effect in kproxy: ${spec.noEffect}`];
  });
}

function valueAt(object: Readonly<Record<string, unknown>>, path: string): unknown {
  let current: unknown = object;
  for (const key of path.split('.')) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<string, unknown>)[key];
  }
  return current;
}

/**
 * ModeOptions.config (the untyped view, kept for modes that read their own block): the mode's block of the
 * effective configuration plus the userspace block in userspace mode, with the resolved values in milliseconds.
 */
function modeSettingsOf(mode: ProxyModeName, settings: ModeSettings, effective: Readonly<Record<string, unknown>>, userspace: Record<string, unknown>): Record<string, unknown> {
  const block = effective[modeBlockOf(mode)];
  const result: Record<string, unknown> = {
    ...(block !== null && typeof block === 'object' ? block : {}),
    ...(mode === 'userspace' ? userspace : {}),
    masqueradeAll: settings.masqueradeAll,
    masqueradeBit: settings.masqueradeBit,
    syncPeriodMs: settings.syncPeriodMs,
    minSyncPeriodMs: settings.minSyncPeriodMs,
    ...(mode === 'iptables' && { localhostNodePorts: settings.localhostNodePorts }),
  };
  delete result.syncPeriod;
  delete result.minSyncPeriod;
  delete result.variant;
  if (settings.iptablesVariant !== undefined && mode === 'iptables') result.variant = settings.iptablesVariant;
  return result;
}
