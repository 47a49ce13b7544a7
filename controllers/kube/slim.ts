// Keep only the fields the model reads from each object, so 10k Services and 100k endpoints stay small in
// memory (managedFields, most annotations, targetRefs and status conditions are dropped). Values are copied
// as they arrived, never checked: validation belongs to src/compute.

import { isRecord } from '../../src/util/record.ts';

type Raw = Record<string, unknown>;

/** Annotations the model reads: topology (hints) on Services, the change trigger time on slices. */
export const TOPOLOGY_MODE_ANNOTATION = 'service.kubernetes.io/topology-mode';
export const TOPOLOGY_HINTS_ANNOTATION = 'service.kubernetes.io/topology-aware-hints';
export const LAST_CHANGE_TRIGGER_ANNOTATION = 'endpoints.kubernetes.io/last-change-trigger-time';
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
const NODE_LABELS = ['topology.kubernetes.io/zone', 'failure-domain.beta.kubernetes.io/zone', 'kubernetes.io/hostname'];


/** Copy the listed keys that are present (even with odd values: compute decides what is valid). */
function pick(source: unknown, keys: readonly string[]): Raw | undefined {
  if (!isRecord(source)) return undefined;
  const out: Raw = {};
  for (const key of keys) if (source[key] !== undefined) out[key] = source[key];
  return out;
}

function pickMap(source: unknown, keys: readonly string[]): Raw | undefined {
  const picked = pick(source, keys);
  return picked && Object.keys(picked).length > 0 ? picked : undefined;
}

function slimMetadata(metadata: unknown, annotations: readonly string[], labels: readonly string[]): Raw | undefined {
  if (!isRecord(metadata)) return undefined;
  const out: Raw = {};
  for (const key of ['name', 'namespace', 'resourceVersion', 'deletionTimestamp']) {
    if (metadata[key] !== undefined) out[key] = metadata[key];
  }
  const keptAnnotations = pickMap(metadata.annotations, annotations);
  if (keptAnnotations) out.annotations = keptAnnotations;
  const keptLabels = pickMap(metadata.labels, labels);
  if (keptLabels) out.labels = keptLabels;
  return out;
}

function withKind(raw: Raw, apiVersion: string, kind: string): Raw {
  return { apiVersion: raw.apiVersion ?? apiVersion, kind: raw.kind ?? kind };
}

const SERVICE_SPEC_KEYS = [
  'type', 'clusterIP', 'clusterIPs', 'ipFamilies', 'ipFamilyPolicy', 'ports', 'externalIPs', 'externalName',
  'loadBalancerSourceRanges', 'loadBalancerIP', 'sessionAffinity', 'sessionAffinityConfig', 'externalTrafficPolicy',
  'internalTrafficPolicy', 'healthCheckNodePort', 'trafficDistribution',
];

export function slimService(object: unknown): unknown {
  if (!isRecord(object)) return object;
  const out = withKind(object, 'v1', 'Service');
  const metadata = slimMetadata(object.metadata, [TOPOLOGY_MODE_ANNOTATION, TOPOLOGY_HINTS_ANNOTATION], []);
  if (metadata) out.metadata = metadata;
  const spec = pick(object.spec, SERVICE_SPEC_KEYS);
  if (spec) {
    if (Array.isArray(spec.ports)) spec.ports = spec.ports.map((port) => pick(port, ['name', 'protocol', 'port', 'nodePort', 'targetPort']) ?? port);
    out.spec = spec;
  }
  const loadBalancer = isRecord(object.status) ? object.status.loadBalancer : undefined;
  if (isRecord(loadBalancer)) {
    const ingress = Array.isArray(loadBalancer.ingress)
      ? loadBalancer.ingress.map((entry) => pick(entry, ['ip', 'ipMode', 'hostname']) ?? entry)
      : loadBalancer.ingress;
    out.status = { loadBalancer: ingress === undefined ? {} : { ingress } };
  }
  return out;
}

function slimEndpoint(endpoint: unknown): unknown {
  const out = pick(endpoint, ['addresses', 'conditions', 'nodeName', 'zone', 'hints']);
  if (!out) return endpoint;
  if (isRecord(out.conditions)) out.conditions = pick(out.conditions, ['ready', 'serving', 'terminating']);
  return out;
}

export function slimEndpointSlice(object: unknown): unknown {
  if (!isRecord(object)) return object;
  const out = withKind(object, 'discovery.k8s.io/v1', 'EndpointSlice');
  const metadata = slimMetadata(object.metadata, [LAST_CHANGE_TRIGGER_ANNOTATION], [SERVICE_NAME_LABEL]);
  if (metadata) out.metadata = metadata;
  if (object.addressType !== undefined) out.addressType = object.addressType;
  if (object.ports !== undefined) {
    out.ports = Array.isArray(object.ports) ? object.ports.map((port) => pick(port, ['name', 'protocol', 'port']) ?? port) : object.ports;
  }
  if (object.endpoints !== undefined) {
    out.endpoints = Array.isArray(object.endpoints) ? object.endpoints.map(slimEndpoint) : object.endpoints;
  }
  return out;
}

export function slimNode(object: unknown): unknown {
  if (!isRecord(object)) return object;
  const out = withKind(object, 'v1', 'Node');
  const metadata = slimMetadata(object.metadata, [], NODE_LABELS);
  if (metadata) out.metadata = metadata;
  const spec = pick(object.spec, ['taints', 'podCIDR', 'podCIDRs']);
  if (spec) out.spec = spec;
  const addresses = isRecord(object.status) ? object.status.addresses : undefined;
  if (addresses !== undefined) out.status = { addresses };
  return out;
}

/** namespace and name of a (raw) object, for DELETED events. */
export function objectRef(object: unknown): { namespace: string | undefined; name: string | undefined } {
  const metadata = isRecord(object) && isRecord(object.metadata) ? object.metadata : undefined;
  const text = (value: unknown): string | undefined => (typeof value === 'string' && value !== '' ? value : undefined);
  return { namespace: text(metadata?.namespace), name: text(metadata?.name) };
}

export function resourceVersionOf(object: unknown): string | undefined {
  const metadata = isRecord(object) && isRecord(object.metadata) ? object.metadata : undefined;
  return typeof metadata?.resourceVersion === 'string' ? metadata.resourceVersion : undefined;
}
