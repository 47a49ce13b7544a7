// Reading a KubeProxyConfiguration file. Accepted as kubeadm writes it: the bare document (the ConfigMap's
// config.conf), the whole ConfigMap, or a multi-document kubeadm config holding a KubeProxyConfiguration.
import { isRecord } from '../util/record.ts';
import { readFileSync } from 'node:fs';
import { parseYamlDocuments, yamlErrorText } from '../util/yaml.ts';
import { ConfigError, ConfigUnreadableError } from '../errors.ts';
import { unknownFields } from './schema.ts';

export const KUBE_PROXY_CONFIG_API_VERSION = 'kubeproxy.config.k8s.io/v1alpha1';
export const KUBE_PROXY_CONFIG_KIND = 'KubeProxyConfiguration';

export type ConfigObject = Readonly<Record<string, unknown>>;

export interface LoadedConfigFile {
  readonly path: string;
  readonly config: ConfigObject;
  /** Dotted paths of fields kube-proxy does not know (reported in one warning). */
  readonly unknownFields: readonly string[];
}

export function readConfigFile(path: string): LoadedConfigFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigUnreadableError(`cannot read config file ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
  const config = parseConfigText(text, path);
  return { path, config, unknownFields: unknownFields(config) };
}

export function parseConfigText(text: string, path: string): ConfigObject {
  const parsed = parseYamlDocuments(text);
  if (!parsed.ok) throw new ConfigUnreadableError(yamlErrorText(`config file ${path}`, parsed));
  const objects = parsed.values;
  for (const object of objects) {
    if (!isRecord(object)) continue;
    if (object.kind === KUBE_PROXY_CONFIG_KIND) return checkApiVersion(object, path);
    if (object.kind === 'ConfigMap' && isRecord(object.data)) {
      const embedded = object.data['config.conf'] ?? object.data['config.yaml'] ?? object.data['config'];
      if (typeof embedded === 'string') return parseConfigText(embedded, `${path} (ConfigMap data)`);
    }
  }
  const kinds = objects.filter(isRecord).map((o) => String(o.kind ?? '(no kind)'));
  return notAConfig(path, kinds.length > 0 ? `found kind ${kinds.join(', ')}` : 'it holds no object');
}

function checkApiVersion(object: Record<string, unknown>, path: string): ConfigObject {
  if (object.apiVersion !== KUBE_PROXY_CONFIG_API_VERSION) {
    throw new ConfigError({
      field: 'apiVersion', value: object.apiVersion,
      reason: `config file ${path} must use ${KUBE_PROXY_CONFIG_API_VERSION}`,
    });
  }
  return object;
}

function notAConfig(path: string, why: string): never {
  throw new ConfigUnreadableError(`config file ${path} is not a ${KUBE_PROXY_CONFIG_KIND} (${why})`);
}

export { isRecord };
