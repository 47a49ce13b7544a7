// Raw EndpointSlice (discovery.k8s.io/v1) → SliceRecord, "not ours" (FQDN slices) or InvalidObject. Never throws.
//
// Choice: a slice whose structure is broken (metadata, service-name label, addressType, ports) is invalid whole.
// A single bad ENDPOINT (bad address, wrong family, wrong condition types…) only drops that endpoint: the
// others still carry traffic, and the slice is reported once with the first problem and the number dropped.
import type { IPFamily } from '../model/types.ts';
import {
  FieldError, catchField, optionalArray, optionalBoolean, optionalInteger, optionalRecord, optionalString,
  readIP, readProtocol, requireRecord, show, type RawRecord,
} from './fields.ts';
import { readMeta, readTag, refOf, type Parsed } from './parse-meta.ts';
import type { EndpointRecord, SlicePortRecord, SliceRecord } from './records.ts';

export const LABEL_SERVICE_NAME = 'kubernetes.io/service-name';

function readSlicePorts(object: RawRecord): SlicePortRecord[] {
  const list = optionalArray(object, 'ports', 'ports') ?? [];
  const ports: SlicePortRecord[] = [];
  list.forEach((item, index) => {
    const path = `ports[${index}]`;
    const port = requireRecord(item, path);
    const name = optionalString(port, 'name', `${path}.name`) ?? '';
    const protocol = readProtocol(port, 'protocol', `${path}.protocol`);
    const number = optionalInteger(port, 'port', `${path}.port`, 0, 65535, 'a valid port');
    // A port without a number is allowed by the API ("all ports") but kube-proxy has nothing to program for it.
    if (number === undefined || number === 0) return;
    ports.push({ name, protocol, port: number });
  });
  return ports;
}

function readHints(hints: RawRecord | undefined, key: 'forZones' | 'forNodes', path: string): string[] | undefined {
  if (hints === undefined) return undefined;
  const list = optionalArray(hints, key, `${path}.${key}`);
  if (list === undefined || list.length === 0) return undefined;
  return list.map((item, index) => {
    const entry = requireRecord(item, `${path}.${key}[${index}]`);
    const name = optionalString(entry, 'name', `${path}.${key}[${index}].name`);
    if (name === undefined) throw new FieldError(`${path}.${key}[${index}].name: missing`);
    return name;
  });
}

export interface ParseSliceOptions {
  /**
   * Read hints.forNodes (kube-proxy's PreferSameTrafficDistribution feature gate, on by default); off, node hints
   * are dropped and only zone hints count, as upstream's endpoint slice cache does.
   */
  readonly nodeHints?: boolean;
}

function readEndpoint(item: unknown, path: string, family: IPFamily, options: ParseSliceOptions, notes: string[]): EndpointRecord {
  const endpoint = requireRecord(item, path);
  const addresses = optionalArray(endpoint, 'addresses', `${path}.addresses`) ?? [];
  if (addresses.length === 0) throw new FieldError(`${path}.addresses: missing`);
  const address = readIP(addresses[0], `${path}.addresses[0]`, notes);
  if (address.family !== family) throw new FieldError(`${path}.addresses[0]: ${show(addresses[0])} is not an ${family} address`);
  const conditions = optionalRecord(endpoint, 'conditions', `${path}.conditions`) ?? {};
  // Unset conditions read as upstream kube-proxy reads them (endpointslicecache): ready and serving mean true,
  // terminating means false. (So a not-ready endpoint marked terminating with no serving condition is a fallback.)
  const ready = optionalBoolean(conditions, 'ready', `${path}.conditions.ready`) ?? true;
  const serving = optionalBoolean(conditions, 'serving', `${path}.conditions.serving`) ?? true;
  const terminating = optionalBoolean(conditions, 'terminating', `${path}.conditions.terminating`) ?? false;
  const nodeName = optionalString(endpoint, 'nodeName', `${path}.nodeName`);
  const zone = optionalString(endpoint, 'zone', `${path}.zone`);
  const hints = optionalRecord(endpoint, 'hints', `${path}.hints`);
  const zoneHints = readHints(hints, 'forZones', `${path}.hints`);
  const nodeHints = options.nodeHints === false ? undefined : readHints(hints, 'forNodes', `${path}.hints`);
  return {
    ip: address.ip, ready, serving, terminating,
    ...(nodeName !== undefined && nodeName !== '' ? { nodeName } : {}),
    ...(zone !== undefined && zone !== '' ? { zone } : {}),
    ...(zoneHints !== undefined ? { zoneHints } : {}),
    ...(nodeHints !== undefined ? { nodeHints } : {}),
  };
}

/** Validate and reduce one raw EndpointSlice. */
export function parseEndpointSlice(raw: unknown, options: ParseSliceOptions = {}): Parsed<SliceRecord> {
  const meta = readMeta('EndpointSlice', raw);
  if (typeof meta === 'string') return { kind: 'invalid', invalid: { kind: 'EndpointSlice', ref: refOf('EndpointSlice', raw), reason: meta } };
  const ref = `${meta.namespace}/${meta.name}`;
  const result = catchField((): Parsed<SliceRecord> => {
    const object = raw as RawRecord;
    const serviceName = readTag(meta.labels, LABEL_SERVICE_NAME, 'labels');
    if (serviceName === undefined || serviceName === '') throw new FieldError(`metadata.labels[${LABEL_SERVICE_NAME}]: missing`);
    const addressType = optionalString(object, 'addressType', 'addressType');
    if (addressType === 'FQDN') return { kind: 'skipped', ref, reason: 'addressType FQDN' };
    if (addressType !== 'IPv4' && addressType !== 'IPv6') {
      throw new FieldError(`addressType: ${addressType === undefined ? 'missing' : `${show(addressType)} is not IPv4, IPv6 or FQDN`}`);
    }
    const ports = readSlicePorts(object);
    const list = optionalArray(object, 'endpoints', 'endpoints') ?? [];
    const endpoints: EndpointRecord[] = [];
    const notes: string[] = [];
    let firstProblem: string | undefined;
    let dropped = 0;
    list.forEach((item, index) => {
      const read = catchField(() => readEndpoint(item, `endpoints[${index}]`, addressType, options, notes));
      if (read.ok) endpoints.push(read.value);
      else {
        dropped++;
        firstProblem ??= read.reason;
      }
    });
    const value: SliceRecord = { namespace: meta.namespace, name: meta.name, serviceName, family: addressType, ports, endpoints };
    const noted = notes.length > 0 ? { notes } : {};
    if (firstProblem === undefined) return { kind: 'ok', value, ...noted };
    const problem = `${firstProblem} (${dropped === 1 ? 'that endpoint is' : `${dropped} endpoints are`} skipped)`;
    return { kind: 'ok', value, problem, ...noted };
  });
  if (!result.ok) return { kind: 'invalid', invalid: { kind: 'EndpointSlice', ref, reason: result.reason } };
  return result.value;
}

