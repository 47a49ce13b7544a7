// Checks of single values, shared by the flags and the config file: each takes the name to show (a flag such as
// "--iptables-sync-period" or a field such as "iptables.syncPeriod") and throws a one-line ConfigError naming it.
import { ConfigError } from '../errors.ts';
import { parseCidrSloppy, parseIPSloppy } from '../util/ip.ts';
import { parseDuration } from './duration.ts';

export function invalid(name: string, value: unknown, reason: string): never {
  throw new ConfigError({ field: name, value, reason });
}

export function durationMs(name: string, value: unknown): number {
  const ms = typeof value === 'string' ? parseDuration(value) : undefined;
  return ms ?? invalid(name, value, 'is not a duration (e.g. "1s", "30s", "1m0s")');
}

export function booleanValue(name: string, value: unknown): boolean {
  return typeof value === 'boolean' ? value : invalid(name, value, 'must be true or false');
}

export function stringValue(name: string, value: unknown): string {
  return typeof value === 'string' ? value : invalid(name, value, 'must be a string');
}

export function integerIn(name: string, value: unknown, min: number, max: number): number {
  if (typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max) return value;
  return invalid(name, value, max === Number.MAX_SAFE_INTEGER ? `must be an integer from ${min}` : `must be an integer from ${min} to ${max}`);
}

export function stringList(name: string, value: unknown): string[] {
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value;
  return invalid(name, value, 'must be a list of strings');
}

/** An IP address as kube-proxy reads it (ParseIPSloppy), canonical. */
export function ipAddress(name: string, value: string): string {
  return parseIPSloppy(value)?.ip ?? invalid(name, value, 'is not an IP address');
}

/** A CIDR as kube-proxy reads it (ParseCIDRSloppy), canonical. */
export function cidr(name: string, value: string, example: string): string {
  const parsed = value.includes('/') ? parseCidrSloppy(value) : undefined;
  return parsed?.text ?? invalid(name, value, `is not a CIDR (e.g. ${example})`);
}

/** clusterCIDR / --cluster-cidr: comma-separated, at most one CIDR per family. */
export function clusterCIDRs(name: string, text: string): string[] {
  const parts = text.split(',').map((p) => p.trim()).filter((p) => p !== '');
  const cidrs = parts.map((part) => cidr(name, part, '10.244.0.0/16'));
  const families = cidrs.map((c) => (c.includes(':') ? 6 : 4));
  if (cidrs.length > 2 || (cidrs.length === 2 && families[0] === families[1])) {
    invalid(name, text, 'allows at most one CIDR per IP family');
  }
  return cidrs;
}

/** nodePortAddresses / --nodeport-addresses: CIDRs, or "primary" alone. */
export function nodePortAddresses(name: string, values: readonly string[]): string[] {
  const result = values.map((value) => (value === 'primary' ? value : cidr(name, value, '192.168.0.0/24')));
  if (result.includes('primary') && result.length > 1) invalid(name, values.join(','), '"primary" cannot be combined with CIDRs');
  return result;
}

/**
 * "ip:port", "[ipv6]:port", or a bare IP (the default port is added, as kube-proxy does). Empty disables the
 * server, and so does port 0.
 */
export function hostPort(name: string, value: string, defaultPort: number): string {
  const text = value.trim();
  if (text === '') return '';
  const bare = parseIPSloppy(text);
  if (bare !== undefined) return bare.family === 'IPv6' ? `[${bare.ip}]:${defaultPort}` : `${bare.ip}:${defaultPort}`;
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  const host = match?.[1] ?? match?.[2];
  const ip = host === undefined ? undefined : parseIPSloppy(host);
  const port = Number(match?.[3]);
  if (ip === undefined || (match?.[1] !== undefined) !== (ip.family === 'IPv6')) {
    invalid(name, value, 'must be IP:port (e.g. 0.0.0.0:10256)');
  }
  if (!Number.isInteger(port) || port > 65535) invalid(name, value, 'port must be from 0 to 65535');
  if (port === 0) return '';
  return ip.family === 'IPv6' ? `[${ip.ip}]:${port}` : `${ip.ip}:${port}`;
}
