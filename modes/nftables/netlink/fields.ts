// How the kernel lays out the fields of set keys and values, for both directions: canonical text (ruleset.ts
// Element) ↔ bytes. Each field of a concatenation takes whole 32-bit registers; addresses and ports are in
// network order, numbers from numgen and the mark in host order. Pure.
import { endianness } from 'node:os';
import { bigIntToIp, ipToBigInt, parseCidr } from '../../../src/util/ip.ts';
import type { Expr, NftFamily } from '../ruleset.ts';

const LITTLE = endianness() === 'LE';

/** nft's datatype numbers (src/datatype.h), which the kernel keeps opaque in a set's key type. */
export const DATATYPE = { integer: 4, ipv4: 7, ipv6: 8, inetProto: 12, inetService: 13, mark: 19 } as const;

export interface Field {
  /** Bytes the field occupies in a key (a multiple of 4). */
  readonly length: number;
  /** Bytes of the value itself (for set descriptions). */
  readonly size: number;
  readonly type: number;
  /** For interval sets: whether the kernel compares it in network order (nft converts host-order fields). */
  readonly text: (b: Buffer, at: number) => string;
  readonly number: (b: Buffer, at: number) => bigint;
  /** A range as text: the value, a CIDR where it is a prefix, or "a-b". */
  readonly render: (start: bigint, end: bigint) => string;
  /** Writes `value` (one field of canonical text) at `at`; for a range ("cidr" or "a-b") the start, or the end. */
  readonly write: (value: string, b: Buffer, at: number, end: boolean) => void;
}

function ipv6Text(b: Buffer, at: number): string {
  let value = 0n;
  for (let i = 0; i < 16; i += 4) value = (value << 32n) | BigInt(b.readUInt32BE(at + i));
  return bigIntToIp(value, 'IPv6');
}

function writeBig(value: bigint, bytes: number, b: Buffer, at: number): void {
  for (let i = bytes - 1; i >= 0; i--) {
    b[at + i] = Number(value & 0xffn);
    value >>= 8n;
  }
}

/** A plain dotted IPv4 address straight into `b` (false for anything else: CIDRs, ranges). */
function writeIPv4(value: string, b: Buffer, at: number): boolean {
  let octet = 0;
  let index = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 46) { // '.'
      b[at + index++] = octet;
      octet = 0;
    } else if (c >= 48 && c <= 57) octet = octet * 10 + c - 48;
    else return false;
  }
  if (index !== 3) return false;
  b[at + 3] = octet;
  return true;
}

function addressField(family: NftFamily): Field {
  const bytes = family === 'ip' ? 4 : 16;
  const fam = family === 'ip' ? 'IPv4' : 'IPv6';
  const bits = BigInt(bytes * 8);
  const number = (b: Buffer, at: number): bigint => BigInt(`0x${b.toString('hex', at, at + bytes)}`);
  return {
    length: bytes, size: bytes, type: family === 'ip' ? DATATYPE.ipv4 : DATATYPE.ipv6, number,
    text: family === 'ip' ? (b, at) => `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}` : ipv6Text,
    render: (start, end) => {
      if (start === end) return bigIntToIp(start, fam);
      const size = end - start + 1n;
      if ((size & (size - 1n)) === 0n && start % size === 0n) {
        let prefix = bytes * 8;
        for (let s = size; s > 1n; s >>= 1n) prefix--;
        return `${bigIntToIp(start, fam)}/${prefix}`;
      }
      return `${bigIntToIp(start, fam)}-${bigIntToIp(end, fam)}`;
    },
    write: (value, b, at, end) => {
      if (bytes === 4 && writeIPv4(value, b, at)) return; // the common case, kept off BigInt
      let start: bigint;
      let last: bigint;
      if (value.includes('/')) {
        const cidr = parseCidr(value);
        if (!cidr) throw new Error(`not a CIDR: ${value}`);
        start = ipToBigInt(cidr.network);
        last = start | ((1n << (bits - BigInt(cidr.prefix))) - 1n);
      } else if (value.includes('-')) {
        const [a = '', z = ''] = value.split('-');
        start = ipToBigInt(a);
        last = ipToBigInt(z);
      } else start = last = ipToBigInt(value);
      writeBig(end ? last : start, bytes, b, at);
    },
  };
}

const PROTOCOLS: Readonly<Record<number, string>> = { 6: 'tcp', 17: 'udp', 132: 'sctp' };
const PROTOCOL_NUMBERS: Readonly<Record<string, number>> = { tcp: 6, udp: 17, sctp: 132 };
const protocolName = (n: number): string => PROTOCOLS[n] ?? String(n);
const rangeOf = (text: (n: bigint) => string) => (start: bigint, end: bigint): string =>
  (start === end ? text(start) : `${text(start)}-${text(end)}`);
const hostU32 = (b: Buffer, at: number): number => (LITTLE ? b.readUInt32LE(at) : b.readUInt32BE(at));
const bounds = (value: string, end: boolean): string => {
  const dash = value.indexOf('-');
  return dash < 0 ? value : end ? value.slice(dash + 1) : value.slice(0, dash);
};

const PROTOCOL_FIELD: Field = {
  length: 4, size: 1, type: DATATYPE.inetProto,
  number: (b, at) => BigInt(b[at] ?? 0), text: (b, at) => protocolName(b[at] ?? 0), render: rangeOf((n) => protocolName(Number(n))),
  write: (value, b, at, end) => {
    const v = bounds(value, end);
    b[at] = PROTOCOL_NUMBERS[v] ?? Number(v);
  },
};
const PORT_FIELD: Field = {
  length: 4, size: 2, type: DATATYPE.inetService,
  number: (b, at) => BigInt(b.readUInt16BE(at)), text: (b, at) => String(b.readUInt16BE(at)), render: rangeOf(String),
  write: (value, b, at, end) => b.writeUInt16BE(Number(bounds(value, end)), at),
};
const hostIntegerField = (type: number): Field => ({
  length: 4, size: 4, type,
  number: (b, at) => BigInt(hostU32(b, at)), text: (b, at) => String(hostU32(b, at)), render: rangeOf(String),
  write: (value, b, at, end) => {
    const v = Number(bounds(value, end)) >>> 0;
    if (LITTLE) b.writeUInt32LE(v, at);
    else b.writeUInt32BE(v, at);
  },
});
const INTEGER_FIELD = hostIntegerField(DATATYPE.integer);
const MARK_FIELD = hostIntegerField(DATATYPE.mark);

export function fieldOf(expr: Expr, family: NftFamily): Field {
  switch (expr.kind) {
    case 'addr': return addressField(family);
    case 'l4proto': return PROTOCOL_FIELD;
    case 'dport': case 'port-value': return PORT_FIELD;
    case 'mark': return MARK_FIELD;
    case 'numgen': return INTEGER_FIELD;
  }
}

export const fieldsOf = (exprs: readonly Expr[], family: NftFamily): Field[] => exprs.map((e) => fieldOf(e, family));

/** The byte length of a key (or value) made of these expressions, as the kernel stores it. */
export function layoutLength(exprs: readonly Expr[], family: NftFamily): number {
  return exprs.reduce((n, e) => n + fieldOf(e, family).length, 0);
}

/** nft's type number of a concatenation (each field's type, 6 bits apiece). */
export function concatType(fields: readonly Field[]): number {
  let type = 0;
  for (const field of fields) type = type * 64 + field.type;
  return type;
}

export function fieldsText(b: Buffer, at: number, fields: readonly Field[]): string {
  let out = '';
  for (const field of fields) {
    out = out === '' ? field.text(b, at) : `${out} . ${field.text(b, at)}`;
    at += field.length;
  }
  return out;
}

export function rangesText(b: Buffer, start: number, end: number, fields: readonly Field[]): string {
  const parts: string[] = [];
  for (const field of fields) {
    parts.push(field.render(field.number(b, start), field.number(b, end)));
    start += field.length;
    end += field.length;
  }
  return parts.join(' . ');
}

export const fieldsLength = (fields: readonly Field[]): number => fields.reduce((n, f) => n + f.length, 0);

/**
 * Writes canonical text (a key or value) as the kernel's bytes at `at`, into fieldsLength bytes that are zero
 * (fields shorter than their registers leave the padding as it is); `end`: for ranges, their last value instead
 * of their first.
 */
export function writeFields(text: string, fields: readonly Field[], b: Buffer, at: number, end = false): void {
  let from = 0;
  for (let i = 0; i < fields.length; i++) {
    const field = fields[i] as Field;
    const to = i === fields.length - 1 ? text.length : text.indexOf(' . ', from);
    if (to < 0) throw new Error(`"${text}" does not have ${fields.length} fields`);
    field.write(text.slice(from, to), b, at, end);
    at += field.length;
    from = to + 3;
  }
}

export function encodeFields(text: string, fields: readonly Field[], end = false): Buffer {
  const b = Buffer.alloc(fieldsLength(fields));
  writeFields(text, fields, b, 0, end);
  return b;
}
