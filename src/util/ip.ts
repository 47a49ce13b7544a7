// IP address and CIDR helpers shared by the model, the modes and the tracer. Pure; no I/O.
import { isIPv4, isIPv6 } from 'node:net';
import type { IPFamily } from '../model/types.ts';

export interface Cidr {
  readonly family: IPFamily;
  /** Network address, canonical text form. */
  readonly network: string;
  readonly prefix: number;
  /** Canonical "network/prefix". */
  readonly text: string;
}

/** The family of a literal address, or undefined when it is not an IP address. */
export function ipFamily(ip: string): IPFamily | undefined {
  if (isIPv4(ip)) return 'IPv4';
  if (isIPv6(ip) && !ip.includes('%')) return 'IPv6';
  return undefined;
}

/** Address as a bigint (v4: 32 bits, v6: 128 bits). Caller guarantees the address is valid. */
export function ipToBigInt(ip: string): bigint {
  if (isIPv4(ip)) return ip.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
  const [head = '', tail = ''] = ip.includes('::') ? ip.split('::') : [ip, ''];
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === '' ? [] : tail.split(':');
  const groups: number[] = [];
  const expand = (list: string[]): void => {
    for (const group of list) {
      if (group.includes('.')) {
        const v4 = ipToBigInt(group);
        groups.push(Number(v4 >> 16n), Number(v4 & 0xffffn));
      } else groups.push(parseInt(group, 16));
    }
  };
  expand(headGroups);
  const tailStart = groups.length;
  expand(tailGroups);
  const tailValues = groups.splice(tailStart);
  while (groups.length + tailValues.length < 8) groups.push(0);
  groups.push(...tailValues);
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n);
}

export function bigIntToIp(value: bigint, family: IPFamily): string {
  if (family === 'IPv4') {
    return [24n, 16n, 8n, 0n].map((shift) => String((value >> shift) & 0xffn)).join('.');
  }
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((value >> BigInt(i * 16)) & 0xffffn));
  // RFC 5952: compress the longest run (length >= 2) of zero groups.
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** Canonical text form of an address (lower-case, compressed IPv6), or undefined if invalid. */
export function normalizeIP(ip: string): string | undefined {
  const family = ipFamily(ip.trim());
  if (!family) return undefined;
  return bigIntToIp(ipToBigInt(ip.trim()), family);
}

const bitsOf = (family: IPFamily): number => (family === 'IPv4' ? 32 : 128);

/** Parse "a.b.c.d/n" or "x::/n" (host bits are cleared). A bare address becomes a host route. */
export function parseCidr(text: string): Cidr | undefined {
  const [addr = '', prefixText, extra] = text.trim().split('/');
  if (extra !== undefined) return undefined;
  const family = ipFamily(addr);
  if (!family) return undefined;
  const bits = bitsOf(family);
  if (prefixText !== undefined && !/^\d{1,3}$/.test(prefixText)) return undefined;
  const prefix = prefixText === undefined ? bits : Number(prefixText);
  if (prefix > bits) return undefined;
  const mask = prefix === 0 ? 0n : ((1n << BigInt(prefix)) - 1n) << BigInt(bits - prefix);
  const network = bigIntToIp(ipToBigInt(addr) & mask, family);
  return { family, network, prefix, text: `${network}/${prefix}` };
}

export function cidrContains(cidr: Cidr, ip: string): boolean {
  const family = ipFamily(ip);
  if (family !== cidr.family) return false;
  const bits = bitsOf(family);
  const shift = BigInt(bits - cidr.prefix);
  return ipToBigInt(ip) >> shift === ipToBigInt(cidr.network) >> shift;
}

/** "ip:port", or "[ip]:port" for IPv6. */
export function joinHostPort(ip: string, port: number): string {
  return ipFamily(ip) === 'IPv6' ? `[${ip}]:${port}` : `${ip}:${port}`;
}

// --- Addresses as kube-proxy reads them -------------------------------------------------------------------------
// kube-proxy parses every address with k8s.io/utils/net ParseIPSloppy / ParseCIDRSloppy: Go's parser from before
// Go 1.17, which the API server of this Kubernetes version still accepts for objects stored earlier. Octets may
// carry leading zeros and are DECIMAL ("010" is 10, not octal 8), IPv6 groups may have more than four hex digits
// while their value fits 16 bits, a prefix length may have leading zeros, and an IPv4-mapped IPv6 address
// (::ffff:a.b.c.d) is an IPv4 address.

/** What ParseIPSloppy makes of a text: the canonical address, its family, and whether the text was a legacy form. */
export interface SloppyIP {
  readonly ip: string;
  readonly family: IPFamily;
  /** true when only the legacy (pre-Go-1.17) parser accepts the text, e.g. "10.096.000.012". */
  readonly legacy: boolean;
}

/** Decimal digits at the start of `text` (Go's dtoi): [value, length], or undefined when none / too large. */
function leadingDecimal(text: string, from: number): [number, number] | undefined {
  let value = 0;
  let at = from;
  while (at < text.length && text.charCodeAt(at) >= 48 && text.charCodeAt(at) <= 57) {
    value = value * 10 + text.charCodeAt(at) - 48;
    if (value >= 0xffffff) return undefined;
    at++;
  }
  return at === from ? undefined : [value, at - from];
}

/** Four decimal octets as a 32-bit number (leading zeros allowed), or undefined. */
function sloppyIPv4Value(text: string): number | undefined {
  let value = 0;
  let at = 0;
  for (let octet = 0; octet < 4; octet++) {
    if (octet > 0) {
      if (text[at] !== '.') return undefined;
      at++;
    }
    const read = leadingDecimal(text, at);
    if (!read || read[0] > 255) return undefined;
    value = value * 256 + read[0];
    at += read[1];
  }
  return at === text.length ? value : undefined;
}

/** Eight 16-bit groups (with "::" and a trailing dotted IPv4 part) as a 128-bit number, or undefined. */
function sloppyIPv6Value(text: string): bigint | undefined {
  const head: number[] = [];
  const tail: number[] = [];
  let groups = head;
  let ellipsis = false;
  let rest = text;
  if (rest.startsWith('::')) {
    ellipsis = true;
    groups = tail;
    rest = rest.slice(2);
    if (rest === '') return 0n;
  }
  for (;;) {
    const hex = /^[0-9a-fA-F]+/.exec(rest)?.[0];
    if (hex === undefined) return undefined;
    if (rest[hex.length] === '.') {
      // A trailing IPv4 part: only as the last 32 bits.
      const v4 = sloppyIPv4Value(rest);
      if (v4 === undefined || head.length + tail.length + 2 > 8 || (!ellipsis && head.length !== 6)) return undefined;
      groups.push(Math.floor(v4 / 65536), v4 % 65536);
      rest = '';
      break;
    }
    const value = Number.parseInt(hex, 16);
    if (value > 0xffff || head.length + tail.length >= 8) return undefined;
    groups.push(value);
    rest = rest.slice(hex.length);
    if (rest === '') break;
    if (rest[0] !== ':' || rest.length === 1) return undefined;
    rest = rest.slice(1);
    if (rest[0] === ':') {
      if (ellipsis) return undefined;
      ellipsis = true;
      groups = tail;
      rest = rest.slice(1);
      if (rest === '') break;
    }
  }
  const count = head.length + tail.length;
  if (ellipsis ? count >= 8 : count !== 8) return undefined;
  const all = [...head, ...new Array<number>(8 - count).fill(0), ...tail];
  return all.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n);
}

const MAPPED_PREFIX = 0xffffn << 32n;

/** ParseIPSloppy followed by String(): the address kube-proxy uses for `text`, or undefined. */
export function parseIPSloppy(text: string): SloppyIP | undefined {
  const dot = text.indexOf('.');
  const colon = text.indexOf(':');
  if (dot < 0 && colon < 0) return undefined;
  if (colon < 0 || (dot >= 0 && dot < colon)) {
    const value = sloppyIPv4Value(text);
    if (value === undefined) return undefined;
    const ip = bigIntToIp(BigInt(value), 'IPv4');
    return { ip, family: 'IPv4', legacy: ip !== text };
  }
  const value = sloppyIPv6Value(text);
  if (value === undefined) return undefined;
  const strict = isIPv6(text);
  if (value >> 32n === 0xffffn) {
    // IPv4-mapped: Go's To4() makes it an IPv4 address.
    return { ip: bigIntToIp(value - MAPPED_PREFIX, 'IPv4'), family: 'IPv4', legacy: !strict };
  }
  return { ip: bigIntToIp(value, 'IPv6'), family: 'IPv6', legacy: !strict };
}

/** What ParseCIDRSloppy makes of a text: the network (host bits cleared), and whether the text was a legacy form. */
export interface SloppyCidr extends Cidr {
  readonly legacy: boolean;
}

/** ParseCIDRSloppy: "address/prefix" with the legacy forms above, the network as the result. */
export function parseCidrSloppy(text: string): SloppyCidr | undefined {
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const addressText = text.slice(0, slash);
  const prefixText = text.slice(slash + 1);
  const v4 = sloppyIPv4Value(addressText);
  const v6 = v4 === undefined ? sloppyIPv6Value(addressText) : undefined;
  if (v4 === undefined && v6 === undefined) return undefined;
  const family: IPFamily = v4 !== undefined ? 'IPv4' : 'IPv6';
  const read = leadingDecimal(prefixText, 0);
  const bits = bitsOf(family);
  if (!read || read[1] !== prefixText.length || read[0] > bits) return undefined;
  const prefix = read[0];
  const value = v4 !== undefined ? BigInt(v4) : v6 ?? 0n;
  const mask = prefix === 0 ? 0n : ((1n << BigInt(prefix)) - 1n) << BigInt(bits - prefix);
  const network = bigIntToIp(value & mask, family);
  const strictAddress = family === 'IPv4' ? isIPv4(addressText) : isIPv6(addressText);
  const legacy = !strictAddress || !/^(0|[1-9]\d*)$/.test(prefixText);
  return { family, network, prefix, text: `${network}/${prefix}`, legacy };
}

/** 127.0.0.0/8 or ::1 (addresses in canonical form). */
export function isLoopback(ip: string): boolean {
  return ip.startsWith('127.') || ip === '::1';
}

/** Both IP families, in the order kproxy handles them. */
export const IP_FAMILIES: readonly IPFamily[] = ['IPv4', 'IPv6'];
