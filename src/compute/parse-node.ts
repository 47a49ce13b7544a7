// Raw Node (v1) → NodeRecord or InvalidObject. Never throws. A bad entry in status.addresses only drops that entry.
import type { IPFamily } from '../model/types.ts';
import { catchField, optionalArray, optionalRecord, optionalString, readCidr, readIP, requireRecord, type RawRecord } from './fields.ts';
import { readMeta, readTag, refOf, type Parsed } from './parse-meta.ts';
import type { NodeRecord } from './records.ts';

export const LABEL_ZONE = 'topology.kubernetes.io/zone';
export const TAINT_TO_BE_DELETED = 'ToBeDeletedByClusterAutoscaler';

interface Address { readonly type: 'InternalIP' | 'ExternalIP'; readonly ip: string; readonly family: IPFamily }

function readAddress(item: unknown, path: string, notes: string[]): Address | undefined {
  const entry = requireRecord(item, path);
  const type = optionalString(entry, 'type', `${path}.type`);
  if (type !== 'InternalIP' && type !== 'ExternalIP') return undefined; // Hostname, InternalDNS…: not addresses we use
  const { ip, family } = readIP(entry.address, `${path}.address`, notes);
  return { type, ip, family };
}

function hasDeletionTaint(spec: RawRecord | undefined): boolean {
  const taints = spec ? optionalArray(spec, 'taints', 'spec.taints') ?? [] : [];
  return taints.some((item, index) => optionalString(requireRecord(item, `spec.taints[${index}]`), 'key', `spec.taints[${index}].key`) === TAINT_TO_BE_DELETED);
}

export function parseNode(raw: unknown): Parsed<NodeRecord> {
  const meta = readMeta('Node', raw);
  if (typeof meta === 'string') return { kind: 'invalid', invalid: { kind: 'Node', ref: refOf('Node', raw), reason: meta } };
  const result = catchField((): Parsed<NodeRecord> => {
    const object = raw as RawRecord;
    const zone = readTag(meta.labels, LABEL_ZONE, 'labels');
    const spec = optionalRecord(object, 'spec', 'spec');
    const shuttingDown = meta.deleting || hasDeletionTaint(spec);
    const status = optionalRecord(object, 'status', 'status');
    const list = status ? optionalArray(status, 'addresses', 'status.addresses') ?? [] : [];
    const addresses: Address[] = [];
    const notes: string[] = [];
    let problem: string | undefined;
    list.forEach((item, index) => {
      const read = catchField(() => readAddress(item, `status.addresses[${index}]`, notes));
      if (!read.ok) problem ??= `${read.reason} (that address is skipped)`;
      else if (read.value !== undefined) addresses.push(read.value);
    });
    const podCIDRs: string[] = [];
    const cidrList = spec ? optionalArray(spec, 'podCIDRs', 'spec.podCIDRs') ?? [] : [];
    const single = spec ? optionalString(spec, 'podCIDR', 'spec.podCIDR') : undefined;
    (cidrList.length > 0 ? cidrList : single ? [single] : []).forEach((item, index) => {
      const read = catchField(() => readCidr(item, `spec.podCIDRs[${index}]`, notes));
      if (!read.ok) problem ??= `${read.reason} (that CIDR is skipped)`;
      else podCIDRs.push(read.value.text);
    });
    const ordered = [...addresses.filter((a) => a.type === 'InternalIP'), ...addresses.filter((a) => a.type === 'ExternalIP')];
    const ofFamily = (family: IPFamily): string[] => [...new Set(ordered.filter((a) => a.family === family).map((a) => a.ip))];
    const v4 = ofFamily('IPv4');
    const v6 = ofFamily('IPv6');
    const value: NodeRecord = {
      name: meta.name, shuttingDown,
      ...(zone !== undefined && zone !== '' ? { zone } : {}),
      addresses: { IPv4: v4, IPv6: v6 },
      podCIDRs,
      // ordered puts InternalIPs first, so the first of a family is its primary address.
      primary: { ...(v4[0] !== undefined ? { IPv4: v4[0] } : {}), ...(v6[0] !== undefined ? { IPv6: v6[0] } : {}) },
    };
    const noted = notes.length > 0 ? { notes } : {};
    return problem === undefined ? { kind: 'ok', value, ...noted } : { kind: 'ok', value, problem, ...noted };
  });
  if (!result.ok) return { kind: 'invalid', invalid: { kind: 'Node', ref: meta.name, reason: result.reason } };
  return result.value;
}

