// A rule's matches and statements → the kernel's expressions (the register machine nf_tables runs), as nft 1.0.6
// generates them for the same rule text: the kernel's dump of a rule written here is byte for byte the dump of the
// rule nft writes from render.ts's text (test/kernel/nftables-netlink.test.ts compares every rule of the layout).
// Written straight into the transaction's buffer. Pure.
import { endianness } from 'node:os';
import { ipToBigInt, parseCidr } from '../../../src/util/ip.ts';
import type { Expr, Match, NftFamily, Protocol4, SetSpec, Statement, Verdict } from '../ruleset.ts';
import type { MessageWriter } from './codec.ts';
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

function host32(n: number): Buffer {
  const b = Buffer.alloc(4);
  if (LITTLE) b.writeUInt32LE(n >>> 0, 0);
  else b.writeUInt32BE(n >>> 0, 0);
  return b;
}

/** The register nft loads a field at word offset `word` of a key into: a whole 16-byte register when aligned. */
const register = (word: number): number => (word % 4 === 0 ? REG_1 + word / 4 : 8 + word);

function addressOffset(dir: 'saddr' | 'daddr', family: NftFamily): { offset: number; len: number } {
  if (family === 'ip') return { offset: dir === 'saddr' ? 12 : 16, len: 4 };
  return { offset: dir === 'saddr' ? 8 : 24, len: 16 };
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

/** Writes expressions into a rule's NFTA_RULE_EXPRESSIONS. */
class Expressions {
  readonly #w: MessageWriter;
  readonly #family: NftFamily;
  readonly #sets: SetLookup;

  constructor(w: MessageWriter, family: NftFamily, sets: SetLookup) {
    this.#w = w;
    this.#family = family;
    this.#sets = sets;
  }

  #expr(name: string, body: (w: MessageWriter) => void): void {
    const w = this.#w;
    const elem = w.begin(LIST_ELEM);
    w.string(EXPR.name, name);
    const data = w.begin(EXPR.data);
    body(w);
    w.end(data);
    w.end(elem);
  }

  #value(type: number, bytes: Buffer): void {
    const nest = this.#w.begin(type);
    this.#w.bytes(DATA.value, bytes);
    this.#w.end(nest);
  }

  payload(reg: number, base: number, offset: number, len: number): void {
    this.#expr('payload', (w) => { w.u32(1, reg); w.u32(2, base); w.u32(3, offset); w.u32(4, len); });
  }
  meta(reg: number, key: number): void { this.#expr('meta', (w) => { w.u32(2, key); w.u32(1, reg); }); }
  metaSet(key: number, reg: number): void { this.#expr('meta', (w) => { w.u32(2, key); w.u32(3, reg); }); }
  cmp(reg: number, op: number, data: Buffer): void { this.#expr('cmp', (w) => { w.u32(1, reg); w.u32(2, op); this.#value(3, data); }); }
  bitwise(reg: number, len: number, mask: Buffer, xor: Buffer): void {
    this.#expr('bitwise', (w) => { w.u32(1, reg); w.u32(2, reg); w.u32(3, len); this.#value(4, mask); this.#value(5, xor); });
  }
  numgen(reg: number, mod: number, offset: number): void {
    this.#expr('numgen', (w) => { w.u32(1, reg); w.u32(2, mod); w.u32(3, 1); w.u32(4, offset); });
  }
  lookup(set: string, dreg: number | undefined, invert: boolean): void {
    this.#expr('lookup', (w) => {
      w.string(1, set);
      w.u32(2, REG_1);
      if (dreg !== undefined) w.u32(3, dreg);
      if (invert) w.u32(5, 1);
    });
  }
  immediate(reg: number, data: Buffer): void { this.#expr('immediate', (w) => { w.u32(1, reg); this.#value(2, data); }); }
  verdict(verdict: Verdict): void {
    this.#expr('immediate', (w) => {
      w.u32(1, REG_VERDICT);
      const data = w.begin(2);
      const v = w.begin(DATA.verdict);
      w.u32(VERDICT.code, VERDICT_CODE[verdict.kind] >>> 0);
      if (verdict.kind === 'jump' || verdict.kind === 'goto') w.string(VERDICT.chain, verdict.chain);
      w.end(v);
      w.end(data);
    });
  }

  load(e: Expr, reg: number): void {
    switch (e.kind) {
      case 'addr': {
        const { offset, len } = addressOffset(e.dir, this.#family);
        return this.payload(reg, PAYLOAD_BASE.network, offset, len);
      }
      case 'l4proto': return this.meta(reg, META_KEY.l4proto);
      case 'dport': case 'port-value': return this.payload(reg, PAYLOAD_BASE.transport, 2, 2);
      case 'mark': return this.meta(reg, META_KEY.mark);
      case 'numgen': return this.numgen(reg, e.mod, e.offset ?? 0);
    }
  }

  /**
   * Loads a (concatenated) key into the registers from reg 1 on. For a lookup in an interval concatenation, nft
   * turns host-order fields to network order (pipapo compares bytes).
   */
  key(key: readonly Expr[], intervalConcat: boolean): void {
    let word = 0;
    const fields = fieldsOf(key, this.#family);
    key.forEach((field, i) => {
      const reg = register(word);
      this.load(field, reg);
      if (intervalConcat && field.kind === 'l4proto') {
        this.#expr('byteorder', (w) => { w.u32(1, reg); w.u32(2, reg); w.u32(3, 1); w.u32(4, 1); w.u32(5, 2); });
      }
      word += (fields[i]?.length ?? 4) / 4;
    });
  }

  l4protoIs(protocol: Protocol4): void {
    this.meta(REG_1, META_KEY.l4proto);
    this.cmp(REG_1, CMP.eq, Buffer.from([PROTOCOL_NUMBER[protocol]]));
  }

  mark(mask: number, xor: number): void {
    this.meta(REG_1, META_KEY.mark);
    this.bitwise(REG_1, 4, host32(mask), host32(xor));
    this.metaSet(META_KEY.mark, REG_1);
  }

  match(match: Match): void {
    switch (match.kind) {
      case 'cmp': {
        const op = match.negate ? CMP.neq : CMP.eq;
        const v = match.value;
        if (v.kind === 'cidr' && match.left.kind === 'addr') {
          const cidr = parseCidr(v.value);
          if (!cidr) throw new Error(`bad CIDR ${v.value}`);
          const { offset } = addressOffset(match.left.dir, this.#family);
          const bytes = Math.ceil(cidr.prefix / 8);
          const network = addressBytes(cidr.network, this.#family).subarray(0, bytes);
          this.payload(REG_1, PAYLOAD_BASE.network, offset, bytes);
          if (cidr.prefix % 8 !== 0) {
            const mask = Buffer.alloc(bytes, 0xff);
            mask[bytes - 1] = (0xff << (8 - (cidr.prefix % 8))) & 0xff;
            this.bitwise(REG_1, bytes, mask, Buffer.alloc(bytes));
          }
          return this.cmp(REG_1, op, network);
        }
        if (v.kind === 'protocol') {
          this.load(match.left, REG_1);
          return this.cmp(REG_1, op, Buffer.from([PROTOCOL_NUMBER[v.value]]));
        }
        if (v.kind === 'number' && (match.left.kind === 'numgen' || match.left.kind === 'mark')) {
          this.load(match.left, REG_1);
          return this.cmp(REG_1, op, host32(v.value));
        }
        throw new Error(`no encoding for comparing ${match.left.kind} with ${v.kind}`);
      }
      case 'mark-clear':
        this.meta(REG_1, META_KEY.mark);
        this.bitwise(REG_1, 4, host32(match.mask), host32(0));
        return this.cmp(REG_1, match.negate ? CMP.neq : CMP.eq, host32(0));
      case 'lookup': {
        const spec = this.#sets(match.set);
        this.key(match.key, spec?.flags?.includes('interval') === true && match.key.length > 1);
        return this.lookup(match.set, undefined, match.negate === true);
      }
      case 'fib-local':
        this.#expr('fib', (w) => { w.u32(1, REG_1); w.u32(2, 3); w.u32(3, match.dir === 'saddr' ? 1 : 2); });
        return this.cmp(REG_1, CMP.eq, host32(RTN_LOCAL));
      case 'ct-dnat':
        this.#expr('ct', (w) => { w.u32(1, REG_1); w.u32(2, 2); });
        this.bitwise(REG_1, 4, host32(IPS_DST_NAT), host32(0));
        return this.cmp(REG_1, CMP.neq, host32(0));
    }
  }

  statement(statement: Statement): void {
    const family = this.#family;
    switch (statement.kind) {
      case 'mark-or': return this.mark(~statement.value >>> 0, statement.value);
      case 'mark-xor': return this.mark(0xffffffff, statement.value);
      case 'update':
        this.key(statement.key, false);
        return this.#expr('dynset', (w) => {
          w.string(1, statement.set);
          w.u32(3, 1);
          w.u32(4, REG_1);
          w.fill(6, 8, (b, at) => b.writeBigUInt64BE(BigInt(statement.timeoutSeconds) * 1000n, at));
        });
      case 'dnat': {
        const port = Buffer.alloc(2);
        port.writeUInt16BE(statement.port, 0);
        this.l4protoIs(statement.protocol);
        this.immediate(REG_1, addressBytes(statement.ip, family));
        this.immediate(REG_2, port);
        return this.#expr('nat', (w) => { w.u32(1, NAT_DNAT); w.u32(2, NFPROTO[family]); w.u32(3, REG_1); w.u32(5, REG_2); w.u32(7, NAT_PROTO_SPECIFIED); });
      }
      case 'dnat-map': {
        const portRegister = register(family === 'ip' ? 1 : 4);
        this.l4protoIs(statement.protocol);
        this.key(statement.key, false);
        this.lookup(statement.map, REG_1, false);
        return this.#expr('nat', (w) => { w.u32(1, NAT_DNAT); w.u32(2, NFPROTO[family]); w.u32(3, REG_1); w.u32(5, portRegister); });
      }
      case 'vmap':
        this.key(statement.key, false);
        return this.lookup(statement.map, REG_VERDICT, false);
      case 'masquerade': return this.#expr('masq', (w) => w.u32(1, 0x10));
      case 'reject': return this.#expr('reject', (w) => { w.u32(1, 0); w.bytes(2, Buffer.from([family === 'ip' ? 3 : 4])); });
      case 'verdict': return this.verdict(statement.verdict);
    }
  }
}

/** Writes a rule's NFTA_RULE_EXPRESSIONS list (the nested attribute's payload) at the writer's position. */
export function writeRuleExpressions(w: MessageWriter, matches: readonly Match[], statements: readonly Statement[], family: NftFamily, sets: SetLookup): void {
  const out = new Expressions(w, family, sets);
  for (const match of matches) out.match(match);
  for (const statement of statements) out.statement(statement);
}
