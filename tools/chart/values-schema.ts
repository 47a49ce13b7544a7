// Writes charts/kproxy/values.schema.json: the chart's own values, and under `config` every KubeProxyConfiguration
// field kproxy applies (src/config/schema.ts: names and types), so a typo, a wrong type or a setting kproxy ignores
// fails `helm install` instead of reaching the node. The chart test compares the committed file with this script's
// output, so a field added to src/config/schema.ts reaches the chart's schema (run the script again).
//   node tools/chart/values-schema.ts            rewrite the file
//   node tools/chart/values-schema.ts --check    exit 1 when the file is not what this script writes
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { leaves, type LeafType } from '../../src/config/schema.ts';

type Schema = Readonly<Record<string, unknown>>;

export const SCHEMA_PATH = fileURLToPath(new URL('../../charts/kproxy/values.schema.json', import.meta.url));

/** Go durations as kube-proxy parses them ("30s", "1m0s", "500ms"); null is kubeadm's "unset". */
const duration: Schema = { type: ['string', 'null'], pattern: '^(0|([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$' };
const count: Schema = { type: 'integer', minimum: 0 };
const stringMap: Schema = { type: 'object', additionalProperties: { type: 'string' } };
/** "IP:port", "[IPv6]:port" or a bare IP; empty disables the server. */
const bindAddress: Schema = { type: 'string', pattern: '^$|^(\\[[0-9a-fA-F:.]+\\]|[0-9a-fA-F:.]+)(:[0-9]{1,5})?$' };

/** The JSON type of each of src/config/schema.ts's leaf types. */
const BY_TYPE: Readonly<Record<LeafType, Schema>> = {
  string: { type: 'string' },
  bool: { type: 'boolean' },
  int: { type: 'integer' },
  number: { type: 'number' },
  duration,
  list: { type: ['array', 'null'], items: { type: 'string' } },
  map: { type: 'object' },
  any: {},
};

/** Fields the chart sets itself (mode from proxyMode, the node name from the pod, the service account). */
export const CHART_OWNED = ['apiVersion', 'kind', 'mode', 'hostnameOverride', 'clientConnection.kubeconfig'];

/** Narrower than the leaf's type: ranges, enums and patterns kproxy would refuse at start-up anyway. */
const REFINED: Readonly<Record<string, Schema>> = {
  featureGates: { type: 'object', additionalProperties: { type: 'boolean' } },
  'clientConnection.qps': { type: 'number', minimum: 0 },
  'clientConnection.burst': count,
  'logging.format': { enum: ['json', 'text'] },
  'logging.verbosity': count,
  bindAddress: { type: 'string', pattern: '^[0-9a-fA-F:.]+$' },
  healthzBindAddress: bindAddress,
  metricsBindAddress: bindAddress,
  'iptables.masqueradeBit': { type: ['integer', 'null'], minimum: 0, maximum: 31 },
  'nftables.masqueradeBit': { type: ['integer', 'null'], minimum: 0, maximum: 31 },
  'iptables.localhostNodePorts': { type: ['boolean', 'null'] },
  'iptables.variant': { enum: ['auto', 'legacy', 'nft'] },
  'userspace.interfaceName': { type: 'string', pattern: '^[a-zA-Z0-9_.-]{1,15}$' },
  'userspace.maxConnectAttempts': { type: 'integer', minimum: 1 },
  'ipvs.scheduler': { enum: ['', 'rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'sh', 'dh', 'sed', 'nq', 'mh'] },
  // BridgeInterface and InterfaceNamePrefix are not built yet (kproxy warns and detects by clusterCIDR).
  detectLocalMode: { enum: ['', 'ClusterCIDR', 'NodeCIDR'] },
  oomScoreAdj: { type: ['integer', 'null'], minimum: -1000, maximum: 1000 },
  'conntrack.maxPerCore': { type: ['integer', 'null'], minimum: 0 },
  'conntrack.min': { type: ['integer', 'null'], minimum: 0 },
};

/** The config fields the chart takes: every field kproxy applies, minus the chart's own; settings without effect are refused. */
export function configFields(): Array<{ path: string; schema: Schema }> {
  return leaves()
    .filter((leaf) => !CHART_OWNED.includes(leaf.path) && leaf.spec.noEffect === undefined)
    .map((leaf) => {
      const schema = REFINED[leaf.path] ?? BY_TYPE[leaf.spec.type];
      // Counts of kproxy's own relay settings are never negative.
      return { path: leaf.path, schema: leaf.path.startsWith('userspace.') && leaf.spec.type === 'int' && !REFINED[leaf.path] ? count : schema };
    });
}

/** The `config` object's schema: nested objects that admit exactly configFields(). */
export function configSchema(): Schema {
  interface Node { properties: Record<string, Node | Schema> }
  const root: Node = { properties: {} };
  for (const { path, schema } of configFields()) {
    const keys = path.split('.');
    let node = root;
    for (const key of keys.slice(0, -1)) node = (node.properties[key] ??= { properties: {} }) as Node;
    node.properties[keys[keys.length - 1] ?? ''] = schema;
  }
  const close = (node: Node): Schema => ({
    type: 'object', additionalProperties: false,
    properties: Object.fromEntries(Object.entries(node.properties).map(([key, child]) => [key, 'properties' in child && !('type' in child) ? close(child as Node) : child])),
  });
  for (const path of Object.keys(REFINED)) {
    if (!configFields().some((field) => field.path === path)) throw new Error(`tools/chart/values-schema.ts: REFINED names ${path}, which the chart does not take`);
  }
  return close(root);
}

const positiveSeconds: Schema = { type: 'integer', minimum: 1 };
const probe: Schema = {
  type: 'object', additionalProperties: false,
  properties: { initialDelaySeconds: count, periodSeconds: positiveSeconds, timeoutSeconds: positiveSeconds, failureThreshold: positiveSeconds, successThreshold: positiveSeconds },
};
const quantity: Schema = { type: ['string', 'number'], pattern: '^[0-9]+(\\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$' };
const resourceList: Schema = { type: 'object', additionalProperties: false, properties: { cpu: quantity, memory: quantity, 'ephemeral-storage': quantity } };

/** The whole values schema. */
export function valuesSchema(): Schema {
  const config = configSchema();
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    title: 'kproxy chart values',
    type: 'object',
    additionalProperties: false,
    required: ['proxyMode', 'image', 'config'],
    properties: {
      proxyMode: { enum: ['iptables', 'nftables', 'ipvs', 'userspace'] },
      image: {
        type: 'object', additionalProperties: false, required: ['repository'],
        properties: {
          repository: { type: 'string', minLength: 1 },
          tag: { type: 'string', pattern: '^$|^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$' },
          pullPolicy: { enum: ['Always', 'IfNotPresent', 'Never'] },
        },
      },
      imagePullSecrets: { type: 'array', items: { type: 'object', required: ['name'], properties: { name: { type: 'string' } } } },
      apiServer: {
        type: 'object', additionalProperties: false,
        properties: {
          host: { type: 'string', pattern: '^$|^[A-Za-z0-9.:-]+$' },
          port: { type: 'integer', minimum: 1, maximum: 65535 },
        },
      },
      serviceProxyName: { type: 'string', pattern: '^$|^[a-z0-9A-Z]([-a-z0-9A-Z_.]{0,61}[a-z0-9A-Z])?$' },
      config: {
        ...config,
        required: ['healthzBindAddress'],
        properties: {
          ...(config.properties as Record<string, Schema>),
          // The kubelet's probes need the health server.
          healthzBindAddress: { type: 'string', pattern: '^(\\[[0-9a-fA-F:.]+\\]|[0-9a-fA-F:.]+):[1-9][0-9]{0,4}$' },
        },
      },
      extraArgs: { type: 'array', items: { type: 'string', pattern: '^--?[a-z]' } },
      extraEnv: { type: 'array', items: { type: 'object', required: ['name'], properties: { name: { type: 'string', minLength: 1 } } } },
      initContainer: { type: 'object', additionalProperties: false, properties: { enabled: { type: 'boolean' } } },
      securityContext: { type: 'object' },
      resources: { type: 'object', additionalProperties: false, properties: { requests: resourceList, limits: resourceList } },
      updateStrategy: {
        type: 'object', additionalProperties: false, required: ['type'],
        properties: {
          type: { enum: ['RollingUpdate', 'OnDelete'] },
          rollingUpdate: {
            type: 'object', additionalProperties: false,
            properties: { maxUnavailable: { type: ['integer', 'string'] }, maxSurge: { type: ['integer', 'string'] } },
          },
        },
      },
      priorityClassName: { type: 'string' },
      nodeSelector: stringMap,
      tolerations: { type: 'array', items: { type: 'object' } },
      affinity: { type: 'object' },
      podAnnotations: stringMap,
      podLabels: stringMap,
      probes: { type: 'object', additionalProperties: false, properties: { liveness: probe, readiness: probe } },
      serviceAccount: {
        type: 'object', additionalProperties: false,
        properties: { name: { type: 'string', pattern: '^$|^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$' }, annotations: stringMap },
      },
      serviceMonitor: {
        type: 'object', additionalProperties: false,
        properties: { enabled: { type: 'boolean' }, interval: { type: 'string', pattern: '^[0-9]+(ms|s|m|h)$' }, labels: stringMap },
      },
    },
    // Prometheus scrapes the node's address: a ServiceMonitor needs metrics beyond loopback.
    if: { required: ['serviceMonitor'], properties: { serviceMonitor: { required: ['enabled'], properties: { enabled: { const: true } } } } },
    then: {
      properties: {
        config: {
          required: ['metricsBindAddress'],
          properties: { metricsBindAddress: { type: 'string', minLength: 1, not: { pattern: '^(127\\.|\\[::1\\]|::1|localhost)' } } },
        },
      },
    },
  };
}

export function renderedSchema(): string {
  return `${JSON.stringify(valuesSchema(), null, 2)}\n`;
}

if (import.meta.main) {
  const text = renderedSchema();
  if (process.argv.includes('--check')) {
    const current = readFileSync(SCHEMA_PATH, 'utf8');
    if (current !== text) {
      process.stderr.write(`${SCHEMA_PATH} is out of date: run node tools/chart/values-schema.ts\n`);
      process.exit(1);
    }
  } else {
    writeFileSync(SCHEMA_PATH, text);
  }
}
