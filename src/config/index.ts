export { loadConfig, resolveConfig, defaultModeSettings, PROXY_MODES, HONOURED_FEATURE_GATES, type ResolveInput } from './resolve.ts';
export { readConfigFile, parseConfigText, KUBE_PROXY_CONFIG_API_VERSION, KUBE_PROXY_CONFIG_KIND, type LoadedConfigFile, type ConfigObject } from './file.ts';
export { parseDuration, formatDuration } from './duration.ts';
export { hostPort } from './checks.ts';
export { effectiveYaml } from './effective.ts';
export { FLAGS, flagNamed, type FlagSpec } from './flags.ts';
export { unknownFields, leaves, KUBE_PROXY_CONFIGURATION_FIELDS } from './schema.ts';
export type { FlagValue, FlagValues, ProxyConfig, ResolvedConfig, DetectLocalMode } from './types.ts';
