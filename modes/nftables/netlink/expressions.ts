// A rule's matches and statements → the kernel's expressions (the register machine nf_tables runs), as nft 1.0.6
// generates them for the same rule text: the kernel's dump of a rule written here is byte for byte the dump of the
// rule nft writes from render.ts's text (test/kernel/nftables-netlink.test.ts checks every rule of the layout). Pure.
import { endianness } from 'node:os';
import { ipToBigInt, parseCidr } from '../../../src/util/ip.ts';
import type { Expr, Match, NftFamily, Protocol4, SetSpec, Statement, Verdict } from '../ruleset.ts';
import { attr, nestedAttr, stringAttr, u32Attr, u64Attr } from './codec.ts';
import { fieldsOf } from './fields.ts';

const LITTLE = endianness() === 'LE';
const LIST_ELEM = 1;
const EXPR = { name: 1, data: 2 } as const;
const DATA = { value: 1, verdict: 2 } as const;
const VERDICT = { code: 1, chain: 2 } as const;
const REG_VERDICT = 0;
const REG_1 = 1;
const REG_2 = 2;
const PAYLOAD_BASE = { network: 1, transport: 2 } as const;
const META_KEY = { mark: 3, l4proto: 16 } as const;
const CMP = { eq: 0, neq: 1 } as const;
const PROTOCOL_NUMBER: Readonly<Record<Protocol4, number>> = { tcp: 6, udp: 17, sctp: 132 };
export const VERDICT_CODE = { drop: 0, accept: 1, jump: -3, goto: -4, return: -5 } as const;
const NAT_DNAT = 1;
const NAT_PROTO_SPECIFIED = 0x2;
const NFPROTO: Readonly<Record<NftFamily, number>> = { ip: 2, ip6: 10 };
const RTN_LOCAL = 2;
const IPS_DST_NAT = 0x20;

/** What a rule needs to know about the sets it uses (interval concatenations need their fields byte-swapped). */
export type SetLookup = (name: string) => SetSpec | undefined;

function expr(name: string, attrs: readonly Buffer[]): Buffer {
  return nestedAttr(LIST_ELEM, [stringAttr(EXPR.name, name), nestedAttr(EXPR.data, attrs)]);
}

const value = (type: number, bytes: Buffer): Buffer => nestedAttr(type, [attr(DATA.value, bytes)]);

function host32(n: number): Buffer {
  const b = Buffer.alloc(4);
  if (LITTLE) b.writeUInt32LE(n >>> 0, 0);
  else b.writeUInt32BE(n >>> 0, 0);
  return b;
}

export function verdictData(type: number, verdict: Verdict): Buffer {
  const code = VERDICT_CODE[verdict.kind];
  const parts = [u32Attr(VERDICT.code, code >>> 0)];
  if (verdict.kind === 'jump' || verdict.kind === 'goto') parts.push(stringAttr(VERDICT.chain, verdict.chain));
  return nestedAttr(type, [nestedAttr(DATA.verdict, parts)]);
}

/** The register nft loads a field at word offset `word` of a key into: a whole 16-byte register when aligned. */
const register = (word: number): number => (word % 4 === 0 ? REG_1 + word / 4 : 8 + word);

function addressOffset(dir: 'saddr' | 'daddr', family: NftFamily): { offset: number; len: number } {
  if (family === 'ip') return { offset: dir === 'saddr' ? 12 : 16, len: 4 };
  return { offset: dir === 'saddr' ? 8 : 24, len: 16 };
}

const payload = (reg: number, base: number, offset: number, len: number): Buffer =>
  expr('payload', [u32Attr(1, reg), u32Attr(2, base), u32Attr(3, offset), u32Attr(4, len)]);
const meta = (reg: number, key: number): Buffer => expr('meta', [u32Attr(2, key), u32Attr(1, reg)]);
const metaSet = (key: number, reg: number): Buffer => expr('meta', [u32Attr(2, key), u32Attr(3, reg)]);
const cmp = (reg: number, op: number, data: Buffer): Buffer => expr('cmp', [u32Attr(1, reg), u32Attr(2, op), value(3, data)]);
const bitwise = (reg: number, len: number, mask: Buffer, xor: Buffer): Buffer =>
  expr('bitwise', [u32Attr(1, reg), u32Attr(2, reg), u32Attr(3, len), value(4, mask), value(5, xor)]);
const numgen = (reg: number, mod: number, offset: number): Buffer =>
  expr('numgen', [u32Attr(1, reg), u32Attr(2, mod), u32Attr(3, 1), u32Attr(4, offset)]);

function load(e: Expr, reg: number, family: NftFamily): Buffer {
  switch (e.kind) {
    case 'addr': {
      const { offset, len } = addressOffset(e.dir, family);
      return payload(reg, PAYLOAD_BASE.network, offset, len);
    }
    case 'l4proto': return meta(reg, META_KEY.l4proto);
    case 'dport': case 'port-value': return payload(reg, PAYLOAD_BASE.transport, 2, 2);
    case 'mark': return meta(reg, META_KEY.mark);
    case 'numgen': return numgen(reg, e.mod, e.offset ?? 0);
  }
}

function wordsOf(key: readonly Expr[], family: NftFamily): number[] {
  const words: number[] = [];
  let word = 0;
  for (const field of fieldsOf(key, family)) {
    words.push(word);
    word += field.length / 4;
  }
  return words;
}

/**
 * Loads a (concatenated) key into the registers from reg 1 on. For a lookup in an interval concatenation, nft
 * turns host-order fields to network order (pipapo compares bytes).
 */
function loadKeyAt(key: readonly Expr[], family: NftFamily, intervalConcat: boolean): Buffer[] {
  const words = wordsOf(key, family);
  const out: Buffer[] = [];
  key.forEach((field, i) => {
    const reg = register(words[i] ?? 0);
    out.push(load(field, reg, family));
    if (intervalConcat && field.kind === 'l4proto') {
      out.push(expr('byteorder', [u32Attr(1, reg), u32Attr(2, reg), u32Attr(3, 1), u32Attr(4, 1), u32Attr(5, 2)]));
    }
  });
  return out;
}

function lookup(set: string, dreg: number | undefined, invert: boolean): Buffer {
  const attrs = [stringAttr(1, set), u32Attr(2, REG_1)];
  if (dreg !== undefined) attrs.push(u32Attr(3, dreg));
  if (invert) attrs.push(u32Attr(5, 1));
  return expr('lookup', attrs);
}

function addressBytes(ip: string, family: NftFamily): Buffer {
  const b = Buffer.alloc(family === 'ip' ? 4 : 16);
  let v = ipToBigInt(ip);
  for (let i = b.length - 1; i >= 0; i--) {
    b[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return b;
}

function matchExprs(match: Match, family: NftFamily, sets: SetLookup): Buffer[] {
  switch (match.kind) {
    case 'cmp': {
      const op = match.negate ? CMP.neq : CMP.eq;
      const v = match.value;
      if (v.kind === 'cidr' && match.left.kind === 'addr') {
        const cidr = parseCidr(v.value);
        if (!cidr) throw new Error(`bad CIDR ${v.value}`);
        const { offset } = addressOffset(match.left.dir, family);
        const bytes = Math.ceil(cidr.prefix / 8);
        const network = addressBytes(cidr.network, family).subarray(0, bytes);
        const out = [payload(REG_1, PAYLOAD_BASE.network, offset, bytes)];
        if (cidr.prefix % 8 !== 0) {
          const mask = Buffer.alloc(bytes, 0xff);
          mask[bytes - 1] = (0xff << (8 - (cidr.prefix % 8))) & 0xff;
          out.push(bitwise(REG_1, bytes, mask, Buffer.alloc(bytes)));
        }
        out.push(cmp(REG_1, op, network));
        return out;
      }
      if (v.kind === 'protocol') return [load(match.left, REG_1, family), cmp(REG_1, op, Buffer.from([PROTOCOL_NUMBER[v.value]]))];
      if (v.kind === 'number' && (match.left.kind === 'numgen' || match.left.kind === 'mark')) {
        return [load(match.left, REG_1, family), cmp(REG_1, op, host32(v.value))];
      }
      throw new Error(`no encoding for comparing ${match.left.kind} with ${v.kind}`);
    }
    case 'mark-clear':
      return [meta(REG_1, META_KEY.mark), bitwise(REG_1, 4, host32(match.mask), host32(0)), cmp(REG_1, match.negate ? CMP.neq : CMP.eq, host32(0))];
    case 'lookup': {
      const spec = sets(match.set);
      const intervalConcat = spec?.flags?.includes('interval') === true && match.key.length > 1;
      return [...loadKeyAt(match.key, family, intervalConcat), lookup(match.set, undefined, match.negate === true)];
    }
    case 'fib-local':
      return [expr('fib', [u32Attr(1, REG_1), u32Attr(2, 3), u32Attr(3, match.dir === 'saddr' ? 1 : 2)]), cmp(REG_1, CMP.eq, host32(RTN_LOCAL))];
    case 'ct-dnat':
      return [expr('ct', [u32Attr(1, REG_1), u32Attr(2, 2)]), bitwise(REG_1, 4, host32(IPS_DST_NAT), host32(0)), cmp(REG_1, CMP.neq, host32(0))];
  }
}

const markStatement = (mask: number, xor: number): Buffer[] =>
  [meta(REG_1, META_KEY.mark), bitwise(REG_1, 4, host32(mask), host32(xor)), metaSet(META_KEY.mark, REG_1)];

function l4protoIs(protocol: Protocol4): Buffer[] {
  return [meta(REG_1, META_KEY.l4proto), cmp(REG_1, CMP.eq, Buffer.from([PROTOCOL_NUMBER[protocol]]))];
}

function statementExprs(statement: Statement, family: NftFamily): Buffer[] {
  switch (statement.kind) {
    case 'mark-or': return markStatement(~statement.value >>> 0, statement.value);
    case 'mark-xor': return markStatement(0xffffffff, statement.value);
    case 'update':
      return [...loadKeyAt(statement.key, family, false), expr('dynset', [
        stringAttr(1, statement.set), u32Attr(3, 1), u32Attr(4, REG_1), u64Attr(6, BigInt(statement.timeoutSeconds) * 1000n),
      ])];
    case 'dnat': {
      const port = Buffer.alloc(2);
      port.writeUInt16BE(statement.port, 0);
      return [
        ...l4protoIs(statement.protocol),
        expr('immediate', [u32Attr(1, REG_1), value(2, addressBytes(statement.ip, family))]),
        expr('immediate', [u32Attr(1, REG_2), value(2, port)]),
        expr('nat', [u32Attr(1, NAT_DNAT), u32Attr(2, NFPROTO[family]), u32Attr(3, REG_1), u32Attr(5, REG_2), u32Attr(7, NAT_PROTO_SPECIFIED)]),
      ];
    }
    case 'dnat-map': {
      const portWord = family === 'ip' ? 1 : 4;
      return [
        ...l4protoIs(statement.protocol),
        ...loadKeyAt(statement.key, family, false),
        lookup(statement.map, REG_1, false),
        expr('nat', [u32Attr(1, NAT_DNAT), u32Attr(2, NFPROTO[family]), u32Attr(3, REG_1), u32Attr(5, register(portWord))]),
      ];
    }
    case 'vmap': return [...loadKeyAt(statement.key, family, false), lookup(statement.map, REG_VERDICT, false)];
    case 'masquerade': return [expr('masq', [u32Attr(1, 0x10)])];
    case 'reject': return [expr('reject', [u32Attr(1, 0), attr(2, Buffer.from([family === 'ip' ? 3 : 4]))])];
    case 'verdict': return [expr('immediate', [u32Attr(1, REG_VERDICT), verdictData(2, statement.verdict)])];
  }
}

/** The NFTA_RULE_EXPRESSIONS list of a rule. */
export function ruleExpressions(matches: readonly Match[], statements: readonly Statement[], family: NftFamily, sets: SetLookup): Buffer[] {
  return [...matches.flatMap((m) => matchExprs(m, family, sets)), ...statements.flatMap((s) => statementExprs(s, family))];
}

