// Raw Service (v1) → ServiceRecord, "not ours" (skipped) or InvalidObject. Never throws.
import type { IPFamily } from '../model/types.ts';
import {
  FieldError, catchField, optionalArray, optionalEnum, optionalInteger, optionalPort, optionalRecord,
  optionalString, readCidr, readIP, readList, readProtocol, requireRecord, show, type RawRecord,
} from './fields.ts';
import { IP_FAMILIES } from '../util/ip.ts';
import { readMeta, readTag, refOf, type Parsed } from './parse-meta.ts';
import type { ServicePortRecord, ServiceRecord, ServiceType } from './records.ts';

export const LABEL_SERVICE_PROXY_NAME = 'service.kubernetes.io/service-proxy-name';
export const LABEL_HEADLESS = 'service.kubernetes.io/headless';
export const DEFAULT_AFFINITY_TIMEOUT_SECONDS = 10800;
const MAX_AFFINITY_TIMEOUT_SECONDS = 86400;

export interface ParseServiceOptions {
  /** See ComputeOptions.proxyName. */
  readonly proxyName?: string;
}

const SERVICE_TYPES = ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'] as const;

/** Why this proxy must leave the Service alone (headless, ExternalName, another proxy's), or undefined. */
function notOursReason(labels: RawRecord, spec: RawRecord, options: ParseServiceOptions): string | undefined {
  const proxyName = readTag(labels, LABEL_SERVICE_PROXY_NAME, 'labels');
  if (proxyName !== undefined && proxyName !== options.proxyName) return `served by proxy "${proxyName}"`;
  if (readTag(labels, LABEL_HEADLESS, 'labels') !== undefined) return 'headless (label)';
  const type = optionalEnum(spec, 'type', 'spec.type', SERVICE_TYPES, 'ClusterIP, NodePort, LoadBalancer or ExternalName');
  if (type === 'ExternalName') return 'type ExternalName';
  const clusterIP = optionalString(spec, 'clusterIP', 'spec.clusterIP');
  const firstOfList = optionalArray(spec, 'clusterIPs', 'spec.clusterIPs')?.[0];
  if (clusterIP === 'None' || firstOfList === 'None') return 'headless (clusterIP: None)';
  return undefined;
}

function readClusterIPs(spec: RawRecord, notes: string[]): ServiceRecord['clusterIPs'] {
  const single = spec.clusterIP === undefined || spec.clusterIP === null || spec.clusterIP === ''
    ? undefined : readIP(spec.clusterIP, 'spec.clusterIP', notes);
  // clusterIPs[0] repeats clusterIP: note a legacy form once.
  const list = readList(spec, 'clusterIPs', 'spec.clusterIPs', (item, path) => readIP(item, path, item === spec.clusterIP ? undefined : notes));
  if (list.length > 2) throw new FieldError(`spec.clusterIPs: ${list.length} addresses, at most one per family (2) allowed`);
  const second = list[1];
  if (second !== undefined && second.family === list[0]?.family) {
    throw new FieldError(`spec.clusterIPs[1]: ${show(second.ip)} has the same family as spec.clusterIPs[0]`);
  }
  const first = list[0];
  if (single !== undefined && first !== undefined && first.ip !== single.ip) {
    throw new FieldError(`spec.clusterIPs[0]: ${show(first.ip)} does not match spec.clusterIP ${show(single.ip)}`);
  }
  const ips = list.length > 0 ? list : single !== undefined ? [single] : [];
  if (ips.length === 0) throw new FieldError('spec.clusterIP: missing (no cluster IP allocated)');
  // ipFamilies, when given, must agree with the addresses position by position.
  const families = readList(spec, 'ipFamilies', 'spec.ipFamilies', (item, path) => {
    if (typeof item !== 'string' || !(IP_FAMILIES as readonly string[]).includes(item)) {
      throw new FieldError(`${path}: ${show(item)} is not IPv4 or IPv6`);
    }
    return item as IPFamily;
  });
  ips.forEach((entry, index) => {
    const declared = families[index];
    if (declared !== undefined && declared !== entry.family) {
      throw new FieldError(`spec.ipFamilies[${index}]: ${declared} does not match cluster IP ${show(entry.ip)}`);
    }
  });
  return ips.map(({ ip, family }) => ({ ip, family }));
}

function readPorts(spec: RawRecord, type: ServiceType): ServicePortRecord[] {
  const list = optionalArray(spec, 'ports', 'spec.ports') ?? [];
  if (list.length === 0) throw new FieldError('spec.ports: a Service needs at least one port');
  const seen = new Set<string>();
  return list.map((item, index) => {
    const path = `spec.ports[${index}]`;
    const port = requireRecord(item, path);
    const name = optionalString(port, 'name', `${path}.name`) ?? '';
    if (name === '' && list.length > 1) throw new FieldError(`${path}.name: required when a Service has several ports`);
    if (seen.has(name)) throw new FieldError(`${path}.name: ${show(name)} is used twice`);
    seen.add(name);
    const number = optionalPort(port, 'port', `${path}.port`);
    if (number === undefined) throw new FieldError(`${path}.port: missing`);
    const protocol = readProtocol(port, 'protocol', `${path}.protocol`);
    const nodePort = optionalPort(port, 'nodePort', `${path}.nodePort`);
    // A ClusterIP Service has no node ports whatever the object says.
    return type === 'ClusterIP' || nodePort === undefined ? { name, protocol, port: number } : { name, protocol, port: number, nodePort };
  });
}

function readLoadBalancerIPs(raw: RawRecord, notes: string[]): string[] {
  const status = optionalRecord(raw, 'status', 'status');
  const loadBalancer = status && optionalRecord(status, 'loadBalancer', 'status.loadBalancer');
  const ingress = loadBalancer ? optionalArray(loadBalancer, 'ingress', 'status.loadBalancer.ingress') ?? [] : [];
  const ips: string[] = [];
  ingress.forEach((item, index) => {
    const path = `status.loadBalancer.ingress[${index}]`;
    const entry = requireRecord(item, path);
    const ipMode = optionalEnum(entry, 'ipMode', `${path}.ipMode`, ['VIP', 'Proxy'], 'VIP or Proxy');
    const ip = entry.ip === undefined || entry.ip === null || entry.ip === '' ? undefined : readIP(entry.ip, `${path}.ip`, notes).ip;
    // Hostname-only entries have nothing to program; ipMode Proxy means the load balancer delivers to the node.
    if (ip !== undefined && ipMode !== 'Proxy' && !ips.includes(ip)) ips.push(ip);
  });
  return ips;
}

function readSourceRanges(spec: RawRecord, notes: string[]): string[] {
  // Only the field counts: kube-proxy ignores the older load-balancer-source-ranges annotation (cloud providers read
  // it). API validation lets whitespace padding through, and upstream trims it, so a padded range is not an error.
  const ranges = readList(spec, 'loadBalancerSourceRanges', 'spec.loadBalancerSourceRanges',
    (item, path) => readCidr(typeof item === 'string' ? item.trim() : item, path, notes));
  return [...new Set(ranges.map((range) => range.text))];
}

function readAffinityTimeout(spec: RawRecord): number | undefined {
  const affinity = optionalEnum(spec, 'sessionAffinity', 'spec.sessionAffinity', ['None', 'ClientIP'], 'None or ClientIP');
  if (affinity !== 'ClientIP') return undefined;
  const config = optionalRecord(spec, 'sessionAffinityConfig', 'spec.sessionAffinityConfig');
  const clientIP = config && optionalRecord(config, 'clientIP', 'spec.sessionAffinityConfig.clientIP');
  const timeout = clientIP && optionalInteger(clientIP, 'timeoutSeconds', 'spec.sessionAffinityConfig.clientIP.timeoutSeconds',
    1, MAX_AFFINITY_TIMEOUT_SECONDS, `an integer in 1..${MAX_AFFINITY_TIMEOUT_SECONDS}`);
  return timeout ?? DEFAULT_AFFINITY_TIMEOUT_SECONDS;
}

const POLICIES = ['Cluster', 'Local'] as const;

/** Validate and reduce one raw Service. */
export function parseService(raw: unknown, options: ParseServiceOptions = {}): Parsed<ServiceRecord> {
  const invalid = (reason: string): Parsed<ServiceRecord> => ({ kind: 'invalid', invalid: { kind: 'Service', ref: refOf('Service', raw), reason } });
  const meta = readMeta('Service', raw);
  if (typeof meta === 'string') return invalid(meta);
  const ref = `${meta.namespace}/${meta.name}`;
  const result = catchField((): Parsed<ServiceRecord> => {
    const object = raw as RawRecord;
    const spec = requireRecord(object.spec, 'spec');
    const skip = notOursReason(meta.labels, spec, options);
    if (skip !== undefined) return { kind: 'skipped', ref, reason: skip };
    const type = (optionalString(spec, 'type', 'spec.type') ?? 'ClusterIP') as ServiceType;
    const notes: string[] = [];
    const clusterIPs = readClusterIPs(spec, notes);
    const ports = readPorts(spec, type);
    const externalIPs = [...new Set(readList(spec, 'externalIPs', 'spec.externalIPs', (item, path) => readIP(item, path, notes)).map((entry) => entry.ip))];
    const loadBalancerIPs = type === 'LoadBalancer' ? readLoadBalancerIPs(object, notes) : [];
    const sourceRanges = readSourceRanges(spec, notes);
    const affinityTimeoutSeconds = readAffinityTimeout(spec);
    const etp = optionalEnum(spec, 'externalTrafficPolicy', 'spec.externalTrafficPolicy', POLICIES, 'Cluster or Local');
    const itp = optionalEnum(spec, 'internalTrafficPolicy', 'spec.internalTrafficPolicy', POLICIES, 'Cluster or Local');
    const healthCheckNodePort = optionalPort(spec, 'healthCheckNodePort', 'spec.healthCheckNodePort');
    const record: ServiceRecord = {
      namespace: meta.namespace, name: meta.name, type, clusterIPs, ports, externalIPs, loadBalancerIPs, sourceRanges,
      externalTrafficPolicyLocal: etp === 'Local', internalTrafficPolicyLocal: itp === 'Local',
      ...(affinityTimeoutSeconds !== undefined ? { affinityTimeoutSeconds } : {}),
      ...(healthCheckNodePort !== undefined ? { healthCheckNodePort } : {}),
    };
    return notes.length > 0 ? { kind: 'ok', value: record, notes } : { kind: 'ok', value: record };
  });
  if (!result.ok) return { kind: 'invalid', invalid: { kind: 'Service', ref, reason: result.reason } };
  return result.value;
}

