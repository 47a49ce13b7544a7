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
