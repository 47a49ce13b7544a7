// Typed reads of raw `unknown` objects with precise error paths. A bad field throws FieldError; the parse-*
// functions catch it and turn it into an InvalidObject, so nothing escapes to the caller.
import { isIPv4 } from 'node:net';
import type { IPFamily, Protocol } from '../model/types.ts';
import { parseCidrSloppy, parseIPSloppy } from '../util/ip.ts';
import { isRecord } from '../util/record.ts';

export class FieldError extends Error {
  override readonly name = 'FieldError';
}

export type RawRecord = Readonly<Record<string, unknown>>;

export { isRecord };

/** A short, quoted rendering of a bad value for error messages. */
export function show(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (typeof value === 'string') return JSON.stringify(value.length > 64 ? `${value.slice(0, 61)}...` : value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  return `a ${typeof value}`;
}

const fail = (path: string, message: string): never => {
  throw new FieldError(`${path}: ${message}`);
};

/** The nested object at key, or undefined when absent/null. */
export function optionalRecord(parent: RawRecord, key: string, path: string): RawRecord | undefined {
  const value = parent[key];
  if (value === undefined || value === null) return undefined;
  if (!isRecord(value)) return fail(path, `${show(value)} is not an object`);
  return value;
}

export function optionalArray(parent: RawRecord, key: string, path: string): readonly unknown[] | undefined {
  const value = parent[key];
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value)) return fail(path, `${show(value)} is not a list`);
  return value;
}

export function optionalString(parent: RawRecord, key: string, path: string): string | undefined {
  const value = parent[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') return fail(path, `${show(value)} is not a string`);
  return value;
}

export function optionalBoolean(parent: RawRecord, key: string, path: string): boolean | undefined {
  const value = parent[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'boolean') return fail(path, `${show(value)} is not true or false`);
  return value;
}

export function optionalInteger(parent: RawRecord, key: string, path: string, min: number, max: number, what: string): number | undefined {
  const value = parent[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    return fail(path, `${show(value)} is not ${what}`);
  }
  return value;
}

export const optionalPort = (parent: RawRecord, key: string, path: string): number | undefined =>
  optionalInteger(parent, key, path, 1, 65535, 'a valid port');

export function requireRecord(value: unknown, path: string): RawRecord {
  if (!isRecord(value)) return fail(path, value === undefined || value === null ? 'missing' : `${show(value)} is not an object`);
  return value;
}

/** One of a fixed set of words; absent gives the fallback. */
export function optionalEnum<T extends string>(parent: RawRecord, key: string, path: string, allowed: readonly T[], describe: string): T | undefined {
  const value = optionalString(parent, key, path);
  if (value === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(value)) return fail(path, `${show(value)} is not ${describe}`);
  return value as T;
}

export const PROTOCOLS: readonly Protocol[] = ['TCP', 'UDP', 'SCTP'];

/** Absent protocol means TCP, as the API server defaults it. */
export function readProtocol(parent: RawRecord, key: string, path: string): Protocol {
  return optionalEnum(parent, key, path, PROTOCOLS, 'TCP, UDP or SCTP') ?? 'TCP';
}

/**
 * A literal IP address (any family), read as kube-proxy reads it (ParseIPSloppy: leading zeros in IPv4 octets are
 * decimal, an IPv4-mapped address is IPv4) and normalised. A legacy form is noted in `notes` (one line naming the
 * field, what was written and what it reads as).
 */
export function readIP(value: unknown, path: string, notes?: string[]): { ip: string; family: IPFamily } {
  if (typeof value !== 'string') return fail(path, `${show(value)} is not an IP address`);
  // Fast path: node's isIPv4 accepts only the canonical dotted quad (no leading zeros), so it is already normal.
  if (isIPv4(value)) return { ip: value, family: 'IPv4' };
  const parsed = parseIPSloppy(value);
  if (parsed === undefined) return fail(path, `${show(value)} is not an IP address`);
  if (parsed.legacy) notes?.push(`${path} ${show(value)} read as ${parsed.ip}`);
  return { ip: parsed.ip, family: parsed.family };
}

/**
 * A CIDR "address/prefix" (a bare address is refused: the API wants CIDRs), read as kube-proxy reads it
 * (ParseCIDRSloppy), canonical text (host bits cleared); a legacy form is noted in `notes`.
 */
export function readCidr(value: unknown, path: string, notes?: string[]): { text: string; family: IPFamily } {
  const cidr = typeof value === 'string' && value.includes('/') ? parseCidrSloppy(value) : undefined;
  if (cidr === undefined) return fail(path, `${show(value)} is not a CIDR`);
  if (cidr.legacy) notes?.push(`${path} ${show(value)} read as ${cidr.text}`);
  return { text: cidr.text, family: cidr.family };
}

/** A list of strings under key (absent → []), each checked by `read`. */
export function readList<T>(parent: RawRecord, key: string, path: string, read: (item: unknown, itemPath: string) => T): T[] {
  const list = optionalArray(parent, key, path) ?? [];
  return list.map((item, index) => read(item, `${path}[${index}]`));
}

/** Run `body`, turning a FieldError into its message (anything else is a bug and still must not escape). */
export function catchField<T>(body: () => T): { ok: true; value: T } | { ok: false; reason: string } {
  try {
    return { ok: true, value: body() };
  } catch (error) {
    if (error instanceof FieldError) return { ok: false, reason: error.message };
    return { ok: false, reason: `internal error while reading the object: ${error instanceof Error ? error.message : String(error)}` };
  }
}
