// The IPVS generic netlink family (linux/ip_vs.h): virtual services, their real servers (destinations), the
// connection timeouts, as typed values, and the requests and replies that carry them. Pure.
import type { IPFamily, Protocol } from '../../../src/model/types.ts';
import { bigIntToIp, ipToBigInt } from '../../../src/util/ip.ts';
import { beginGenlMessage, genlAttributes, genlHeader } from './genl.ts';
import {
  NLM_F_DUMP, parseAttributes, readBe16, readString, readU16, readU32,
  type Attributes, type MessageWriter, type NetlinkMessage,
} from './wire.ts';

export const IPVS_FAMILY_NAME = 'IPVS';
export const IPVS_GENL_VERSION = 1;

const CMD = {
  newService: 1, setService: 2, delService: 3, getService: 4,
  newDest: 5, setDest: 6, delDest: 7, getDest: 8,
  setConfig: 12, getConfig: 13, getInfo: 15,
} as const;

const CMD_ATTR = { service: 1, dest: 2, timeoutTcp: 4, timeoutTcpFin: 5, timeoutUdp: 6 } as const;
const SVC_ATTR = {
  af: 1, protocol: 2, addr: 3, port: 4, fwmark: 5, schedName: 6, flags: 7, timeout: 8, netmask: 9,
} as const;
const DEST_ATTR = {
  addr: 1, port: 2, fwdMethod: 3, weight: 4, upperThreshold: 5, lowerThreshold: 6,
  activeConns: 7, inactiveConns: 8, persistConns: 9, addrFamily: 11,
} as const;
const INFO_ATTR = { version: 1, connTableSize: 2 } as const;

/** Service flags (IP_VS_SVC_F_*). */
export const SVC_FLAG = {
  persistent: 0x1,
  /** Set by the kernel on every service in its tables; never ours to set. */
  hashed: 0x2,
  onePacket: 0x4,
  sched1: 0x8,
  sched2: 0x10,
  sched3: 0x20,
} as const;

const AF_INET = 2;
const AF_INET6 = 10;
const PROTOCOL_NUMBER: Readonly<Record<Protocol, number>> = { TCP: 6, UDP: 17, SCTP: 132 };
const FORWARDING = ['masquerade', 'local', 'tunnel', 'route', 'bypass'] as const;
const FWD_MASK = 0x7;

export type Forwarding = (typeof FORWARDING)[number];

/** A virtual service addressed by protocol, address and port. */
export interface AddressServiceKey {
  readonly family: IPFamily;
  readonly protocol: Protocol;
  readonly address: string;
  readonly port: number;
}

/** A virtual service that takes the packets carrying a firewall mark (it wins over address services). */
export interface FwmarkServiceKey {
  readonly family: IPFamily;
  readonly fwmark: number;
}

/** What identifies a virtual service. */
export type ServiceKey = AddressServiceKey | FwmarkServiceKey;

export interface ServiceSettings {
  /** Scheduler module name without the ip_vs_ prefix: rr, wrr, lc, sh, mh, … */
  readonly scheduler: string;
  /** IP_VS_SVC_F_* bits, without `hashed`. */
  readonly flags: number;
  /** Persistence timeout in seconds (meaningful with the persistent flag). */
  readonly timeout: number;
  /** Persistence granularity: a mask for IPv4, a prefix length for IPv6. */
  readonly netmask: number;
}

export type VirtualService = ServiceKey & ServiceSettings;
export type AddressService = AddressServiceKey & ServiceSettings;
export type FwmarkService = FwmarkServiceKey & ServiceSettings;

export const isFwmarkKey = (key: ServiceKey): key is FwmarkServiceKey => 'fwmark' in key;

export interface DestinationKey {
  readonly address: string;
  readonly port: number;
}

export interface Destination extends DestinationKey {
  readonly forwarding: Forwarding;
  readonly weight: number;
  readonly upperThreshold: number;
  readonly lowerThreshold: number;
}

/** A destination as the kernel reports it, with its connection counts. */
export interface DestinationStatus extends Destination {
  readonly family: IPFamily;
  readonly activeConnections: number;
  readonly inactiveConnections: number;
  readonly persistentConnections: number;
}

/** Connection timeouts in seconds (0 in a request: leave unchanged). */
export interface Timeouts {
  readonly tcp: number;
  readonly tcpFin: number;
  readonly udp: number;
}

export interface IpvsInfo {
  /** e.g. "1.2.1" */
  readonly version: string;
  readonly connectionTableSize: number;
}

/** A change to the kernel's tables. */
export type IpvsRequest =
  | { readonly op: 'add-service' | 'update-service'; readonly service: VirtualService }
  | { readonly op: 'delete-service'; readonly service: ServiceKey }
  | { readonly op: 'add-destination' | 'update-destination'; readonly service: ServiceKey; readonly destination: Destination }
  | { readonly op: 'delete-destination'; readonly service: ServiceKey; readonly destination: DestinationKey }
  | { readonly op: 'set-timeouts'; readonly timeouts: Timeouts };

/** Persistence granularity of one address: the whole address (what kube-proxy uses). */
export function hostNetmask(family: IPFamily): number {
  return family === 'IPv4' ? 0xffffffff : 128;
}

// --- addresses: union nf_inet_addr, 16 bytes, IPv4 in the first four ---

function encodeAddress(address: string, family: IPFamily): Uint8Array {
  const bytes = new Uint8Array(16);
  if (family === 'IPv4') {
    const parts = address.split('.');
    for (let i = 0; i < 4; i++) bytes[i] = Number(parts[i]);
    return bytes;
  }
  let value = ipToBigInt(address);
  for (let i = 15; i >= 0; i--) {
    bytes[i] = Number(value & 0xffn);
    value >>= 8n;
  }
  return bytes;
}

function decodeAddress(bytes: Uint8Array | undefined, family: IPFamily): string {
  if (bytes === undefined) return '';
  if (family === 'IPv4') return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  let value = 0n;
  for (let i = 0; i < 16; i++) value = (value << 8n) | BigInt(bytes[i] ?? 0);
  return bigIntToIp(value, 'IPv6');
}

const afOf = (family: IPFamily): number => (family === 'IPv4' ? AF_INET : AF_INET6);
const familyOfAf = (af: number | undefined): IPFamily | undefined =>
  af === AF_INET ? 'IPv4' : af === AF_INET6 ? 'IPv6' : undefined;
const protocolOfNumber = (n: number | undefined): Protocol | undefined =>
  (Object.keys(PROTOCOL_NUMBER) as Protocol[]).find((p) => PROTOCOL_NUMBER[p] === n);

// --- requests ---

function writeServiceKey(writer: MessageWriter, service: ServiceKey): void {
  writer.u16(SVC_ATTR.af, afOf(service.family));
  if (isFwmarkKey(service)) {
    writer.u32(SVC_ATTR.fwmark, service.fwmark);
    return;
  }
  writer.u16(SVC_ATTR.protocol, PROTOCOL_NUMBER[service.protocol])
    .bytes(SVC_ATTR.addr, encodeAddress(service.address, service.family))
    .be16(SVC_ATTR.port, service.port);
}

function writeService(writer: MessageWriter, service: ServiceKey | VirtualService): void {
  writer.beginNested(CMD_ATTR.service);
  writeServiceKey(writer, service);
  if ('scheduler' in service) {
    const flags = new Uint8Array(8);
    const view = new DataView(flags.buffer);
    view.setUint32(0, service.flags & ~SVC_FLAG.hashed, true);
    view.setUint32(4, 0xffffffff & ~SVC_FLAG.hashed, true); // mask: every flag is ours to set or clear
    writer.string(SVC_ATTR.schedName, service.scheduler)
      .bytes(SVC_ATTR.flags, flags)
      .u32(SVC_ATTR.timeout, service.timeout)
      .u32(SVC_ATTR.netmask, service.netmask);
  }
  writer.endNested();
}

function writeDestination(writer: MessageWriter, family: IPFamily, destination: DestinationKey | Destination): void {
  writer.beginNested(CMD_ATTR.dest)
    .bytes(DEST_ATTR.addr, encodeAddress(destination.address, family))
    .be16(DEST_ATTR.port, destination.port)
    .u16(DEST_ATTR.addrFamily, afOf(family));
  if ('forwarding' in destination) {
    writer.u32(DEST_ATTR.fwdMethod, FORWARDING.indexOf(destination.forwarding))
      .u32(DEST_ATTR.weight, destination.weight)
      .u32(DEST_ATTR.upperThreshold, destination.upperThreshold)
      .u32(DEST_ATTR.lowerThreshold, destination.lowerThreshold);
  }
  writer.endNested();
}

/** One change as a netlink message (the kernel answers it only if it fails, unless the caller flags an ack). */
export function encodeRequest(writer: MessageWriter, familyId: number, seq: number, request: IpvsRequest): void {
  const begin = (command: number): MessageWriter => beginGenlMessage(writer, familyId, 0, seq, command, IPVS_GENL_VERSION);
  switch (request.op) {
    case 'add-service':
    case 'update-service':
      writeService(begin(request.op === 'add-service' ? CMD.newService : CMD.setService), request.service);
      break;
    case 'delete-service':
      writeService(begin(CMD.delService), request.service);
      break;
    case 'add-destination':
    case 'update-destination':
    case 'delete-destination': {
      const command = request.op === 'add-destination' ? CMD.newDest : request.op === 'update-destination' ? CMD.setDest : CMD.delDest;
      const w = begin(command);
      writeService(w, keyOf(request.service));
      writeDestination(w, request.service.family, request.destination);
      break;
    }
    case 'set-timeouts':
      begin(CMD.setConfig)
        .u32(CMD_ATTR.timeoutTcp, request.timeouts.tcp)
        .u32(CMD_ATTR.timeoutTcpFin, request.timeouts.tcpFin)
        .u32(CMD_ATTR.timeoutUdp, request.timeouts.udp);
      break;
  }
  writer.endMessage();
}

/** Only the identifying fields: a destination request must not carry the service's scheduler. */
export function keyOf(service: ServiceKey): ServiceKey {
  return isFwmarkKey(service)
    ? { family: service.family, fwmark: service.fwmark }
    : { family: service.family, protocol: service.protocol, address: service.address, port: service.port };
}

export function encodeServiceDump(writer: MessageWriter, familyId: number, seq: number): void {
  beginGenlMessage(writer, familyId, NLM_F_DUMP, seq, CMD.getService, IPVS_GENL_VERSION).endMessage();
}

export function encodeDestinationDump(writer: MessageWriter, familyId: number, seq: number, service: ServiceKey): void {
  const w = beginGenlMessage(writer, familyId, NLM_F_DUMP, seq, CMD.getDest, IPVS_GENL_VERSION);
  writeService(w, keyOf(service));
  w.endMessage();
}

export function encodeGetTimeouts(writer: MessageWriter, familyId: number, seq: number): void {
  beginGenlMessage(writer, familyId, 0, seq, CMD.getConfig, IPVS_GENL_VERSION).endMessage();
}

export function encodeGetInfo(writer: MessageWriter, familyId: number, seq: number): void {
  beginGenlMessage(writer, familyId, 0, seq, CMD.getInfo, IPVS_GENL_VERSION).endMessage();
}

// --- replies ---

function nested(message: NetlinkMessage, type: number): Attributes | undefined {
  const value = genlAttributes(message).get(type);
  return value === undefined ? undefined : parseAttributes(value);
}

/** A service of a dump. Undefined for what kproxy does not model (unknown families or protocols). */
export function decodeService(message: NetlinkMessage): VirtualService | undefined {
  const attributes = nested(message, CMD_ATTR.service);
  if (attributes === undefined) return undefined;
  const family = familyOfAf(readU16(attributes, SVC_ATTR.af));
  if (family === undefined) return undefined;
  const flags = attributes.get(SVC_ATTR.flags);
  const settings: ServiceSettings = {
    scheduler: readString(attributes, SVC_ATTR.schedName) ?? '',
    flags: (flags !== undefined && flags.length >= 4 ? flags.readUInt32LE(0) : 0) & ~SVC_FLAG.hashed,
    timeout: readU32(attributes, SVC_ATTR.timeout) ?? 0,
    netmask: readU32(attributes, SVC_ATTR.netmask) ?? 0,
  };
  const fwmark = readU32(attributes, SVC_ATTR.fwmark) ?? 0;
  if (fwmark !== 0) return { family, fwmark, ...settings };
  const protocol = protocolOfNumber(readU16(attributes, SVC_ATTR.protocol));
  if (protocol === undefined) return undefined;
  return {
    family,
    protocol,
    address: decodeAddress(attributes.get(SVC_ATTR.addr), family),
    port: readBe16(attributes, SVC_ATTR.port) ?? 0,
    ...settings,
  };
}

/** A destination of a dump; `serviceFamily` is used when the kernel does not say (before Linux 4.15). */
export function decodeDestination(message: NetlinkMessage, serviceFamily: IPFamily): DestinationStatus | undefined {
  const attributes = nested(message, CMD_ATTR.dest);
  if (attributes === undefined) return undefined;
  const family = familyOfAf(readU16(attributes, DEST_ATTR.addrFamily)) ?? serviceFamily;
  return {
    family,
    address: decodeAddress(attributes.get(DEST_ATTR.addr), family),
    port: readBe16(attributes, DEST_ATTR.port) ?? 0,
    forwarding: FORWARDING[(readU32(attributes, DEST_ATTR.fwdMethod) ?? 0) & FWD_MASK] ?? 'masquerade',
    weight: readU32(attributes, DEST_ATTR.weight) ?? 0,
    upperThreshold: readU32(attributes, DEST_ATTR.upperThreshold) ?? 0,
    lowerThreshold: readU32(attributes, DEST_ATTR.lowerThreshold) ?? 0,
    activeConnections: readU32(attributes, DEST_ATTR.activeConns) ?? 0,
    inactiveConnections: readU32(attributes, DEST_ATTR.inactiveConns) ?? 0,
    persistentConnections: readU32(attributes, DEST_ATTR.persistConns) ?? 0,
  };
}

export function decodeTimeouts(message: NetlinkMessage): Timeouts {
  const attributes = genlAttributes(message);
  return {
    tcp: readU32(attributes, CMD_ATTR.timeoutTcp) ?? 0,
    tcpFin: readU32(attributes, CMD_ATTR.timeoutTcpFin) ?? 0,
    udp: readU32(attributes, CMD_ATTR.timeoutUdp) ?? 0,
  };
}

export function decodeInfo(message: NetlinkMessage): IpvsInfo {
  const attributes = genlAttributes(message);
  const version = readU32(attributes, INFO_ATTR.version) ?? 0;
  return {
    version: `${(version >> 16) & 0xff}.${(version >> 8) & 0xff}.${version & 0xff}`,
    connectionTableSize: readU32(attributes, INFO_ATTR.connTableSize) ?? 0,
  };
}

/** The command of a reply (dumps answer GET_SERVICE with NEW_SERVICE messages, GET_DEST with NEW_DEST). */
export function replyCommand(message: NetlinkMessage): number {
  return genlHeader(message).command;
}

export const IPVS_COMMANDS = CMD;
