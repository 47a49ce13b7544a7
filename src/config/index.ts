export { loadConfig, resolveConfig, checkHostPort, PROXY_MODES, DEFAULTS, type ResolveInput } from './resolve.ts';
export { readConfigFile, parseConfigText, KUBE_PROXY_CONFIG_API_VERSION, KUBE_PROXY_CONFIG_KIND, type LoadedConfigFile, type ConfigObject } from './file.ts';
export { parseDuration, formatDuration } from './duration.ts';
export { unknownFields, KUBE_PROXY_CONFIGURATION_FIELDS, DURATION_FIELDS } from './schema.ts';
export type { FlagValues, ProxyConfig, ResolvedConfig, DetectLocalMode } from './types.ts';
