// Reads kproxy's table back from the kernel, in the canonical text the renderer writes, so the apply layer can
// compare it with what it wants. `nft list` is far too slow for this at scale (one map of 100k elements: ≈ 3 s of
// CPU and 200 MB in nft, see ../README.md); a netlink dump of the same map is read in a fraction of that.
import { hash } from 'node:crypto';
import type { Hook, NftFamily, SetSpec } from '../ruleset.ts';
import { fieldsOf, fieldsText, layoutLength, rangesText } from './fields.ts';
import { attrI32, attrMap, attrString, attrU32, NFPROTO, NFT_MSG, stringAttr } from './codec.ts';
import { NetlinkError, type NetfilterSocket } from './socket.ts';

// linux/netfilter/nf_tables.h attribute numbers
const TABLE = { name: 1 } as const;
const CHAIN = { table: 1, name: 3, hook: 4, policy: 5, type: 7 } as const;
const HOOK = { num: 1, priority: 2 } as const;
const RULE = { table: 1, chain: 2, expressions: 4, userdata: 7 } as const;
const SET = { table: 1, name: 2, flags: 3, keyLen: 5, dataType: 6, dataLen: 7 } as const;
const ELEM_LIST = { table: 1, set: 2, elements: 3 } as const;
const ELEM = { key: 1, data: 2, flags: 3, keyEnd: 10 } as const;
const DATA = { value: 1, verdict: 2 } as const;
const VERDICT = { code: 1, chain: 2 } as const;
const GEN_ID = 1;
const SET_FLAGS = { interval: 0x4, map: 0x8, timeout: 0x10, eval: 0x20 } as const;
const ELEM_INTERVAL_END = 0x1;
/** NFT_DATA_VERDICT: the data type of a verdict map. */
const DATA_VERDICT = 0xffffff00;
const UDATA_RULE_COMMENT = 0;
const HOOKS: readonly Hook[] = ['prerouting', 'input', 'forward', 'output', 'postrouting'];
const VERDICTS: Readonly<Record<number, string>> = { 0: 'drop', 1: 'accept', [-1]: 'continue', [-5]: 'return' };

export interface KernelRule {
  /** The comment kproxy wrote (human text then "#digest"), if any. */
  readonly comment?: string;
  /** A digest of the rule's expressions as the kernel holds them (changes when anyone edits the rule). */
  readonly expressions: string;
}

export interface KernelChain {
  readonly name: string;
  readonly base?: { readonly type: string; readonly hook: Hook | 'other'; readonly priority: number; readonly policy: 'accept' | 'drop' };
  readonly rules: KernelRule[];
}

export interface KernelSet {
  readonly name: string;
  readonly interval: boolean;
  readonly timeout: boolean;
  readonly keyLength: number;
  /** 'verdict' for a verdict map, the data length for a map, undefined for a set. */
  readonly data?: 'verdict' | number;
}

export interface KernelTable {
  readonly chains: ReadonlyMap<string, KernelChain>;
  readonly sets: ReadonlyMap<string, KernelSet>;
}

const tableFilter = (type: number, table: string): Buffer => stringAttr(type, table);

/** The nf_tables generation: it changes with every transaction committed in this network namespace. */
export async function readGeneration(socket: NetfilterSocket): Promise<number> {
  let generation: number | undefined;
  await socket.query(NFT_MSG.getGen, 0, [], false, (message) => {
    generation = attrU32(attrMap(message.attrs ?? Buffer.alloc(0)).get(GEN_ID));
  });
  if (generation === undefined) throw new Error('nf_tables did not report its generation');
  return generation;
}

/** Whether the table exists. */
export async function tableExists(socket: NetfilterSocket, family: NftFamily, table: string): Promise<boolean> {
  try {
    await socket.query(NFT_MSG.getTable, NFPROTO[family], [stringAttr(TABLE.name, table)], false, () => {});
    return true;
  } catch (error) {
    if (error instanceof NetlinkError && error.errno === 2) return false;
    throw error;
  }
}

/** One rule as the reader reports it. */
function kernelRule(a: Map<number, Buffer>): KernelRule {
  const expressions = hash('sha256', a.get(RULE.expressions) ?? Buffer.alloc(0), 'hex').slice(0, 16);
  const comment = ruleComment(a.get(RULE.userdata));
  return comment === undefined ? { expressions } : { comment, expressions };
}

/** The rules of some chains of a table (a filtered dump per chain; a chain that does not exist has none). */
export async function readChainRules(socket: NetfilterSocket, family: NftFamily, table: string, chains: readonly string[]): Promise<Map<string, KernelRule[]>> {
  const out = new Map<string, KernelRule[]>();
  for (const chain of chains) {
    const rules: KernelRule[] = [];
    try {
      await socket.query(NFT_MSG.getRule, NFPROTO[family], [tableFilter(RULE.table, table), stringAttr(RULE.chain, chain)], true, (message) => {
        const a = attrMap(message.attrs ?? Buffer.alloc(0));
        if (attrString(a.get(RULE.chain)) === chain) rules.push(kernelRule(a));
      });
    } catch (error) {
      if (!(error instanceof NetlinkError && error.errno === 2)) throw error;
    }
    out.set(chain, rules);
  }
  return out;
}

/** Chains (with their rules) and sets of one table; undefined when the table does not exist. */
export async function readTable(socket: NetfilterSocket, family: NftFamily, table: string): Promise<KernelTable | undefined> {
  const proto = NFPROTO[family];
  if (!await tableExists(socket, family, table)) return undefined;
  const chains = new Map<string, KernelChain>();
  await socket.query(NFT_MSG.getChain, proto, [tableFilter(CHAIN.table, table)], true, (message) => {
    const a = attrMap(message.attrs ?? Buffer.alloc(0));
    if (attrString(a.get(CHAIN.table)) !== table) return;
    const name = attrString(a.get(CHAIN.name));
    if (name === undefined) return;
    const hookAttr = a.get(CHAIN.hook);
    let base: KernelChain['base'];
    if (hookAttr) {
      const h = attrMap(hookAttr);
      const num = attrU32(h.get(HOOK.num)) ?? -1;
      base = {
        type: attrString(a.get(CHAIN.type)) ?? '',
        hook: HOOKS[num] ?? 'other',
        priority: attrI32(h.get(HOOK.priority)) ?? 0,
        policy: attrU32(a.get(CHAIN.policy)) === 0 ? 'drop' : 'accept',
      };
    }
    chains.set(name, base ? { name, base, rules: [] } : { name, rules: [] });
  });
  await socket.query(NFT_MSG.getRule, proto, [tableFilter(RULE.table, table)], true, (message) => {
    const a = attrMap(message.attrs ?? Buffer.alloc(0));
    if (attrString(a.get(RULE.table)) !== table) return;
    chains.get(attrString(a.get(RULE.chain)) ?? '')?.rules.push(kernelRule(a));
  });
  const sets = new Map<string, KernelSet>();
  await socket.query(NFT_MSG.getSet, proto, [tableFilter(SET.table, table)], true, (message) => {
    const a = attrMap(message.attrs ?? Buffer.alloc(0));
    if (attrString(a.get(SET.table)) !== table) return;
    const name = attrString(a.get(SET.name));
    if (name === undefined || name.startsWith('__')) return; // anonymous sets belong to their rules
    const flags = attrU32(a.get(SET.flags)) ?? 0;
    const dataType = attrU32(a.get(SET.dataType));
    const data = (flags & SET_FLAGS.map) === 0 ? undefined
      : dataType === DATA_VERDICT ? 'verdict' as const : attrU32(a.get(SET.dataLen)) ?? 0;
    const set: KernelSet = {
      name, interval: (flags & SET_FLAGS.interval) !== 0, timeout: (flags & SET_FLAGS.timeout) !== 0,
      keyLength: attrU32(a.get(SET.keyLen)) ?? 0,
      ...(data === undefined ? {} : { data }),
    };
    sets.set(name, set);
  });
  return { chains, sets };
}

/** The comment in a rule's user data (a list of type, length, value records). */
function ruleComment(userdata: Buffer | undefined): string | undefined {
  if (!userdata) return undefined;
  for (let i = 0; i + 2 <= userdata.length;) {
    const type = userdata[i] ?? 0;
    const len = userdata[i + 1] ?? 0;
    if (type === UDATA_RULE_COMMENT) {
      const value = userdata.subarray(i + 2, i + 2 + len);
      const end = value.indexOf(0);
      return value.toString('utf8', 0, end >= 0 ? end : value.length);
    }
    i += 2 + len;
  }
  return undefined;
}

// --- elements -----------------------------------------------------------------------------------------------
// Decoded straight from the reply buffer by offset (a map of 100k elements is one dump): no per-element objects.

/** Calls `each(type, start, end)` for the attributes in b[from, to) (payload offsets). */
function walk(b: Buffer, from: number, to: number, each: (type: number, start: number, end: number) => void): void {
  while (from + 4 <= to) {
    const len = b.readUInt16LE(from);
    if (len < 4 || from + len > to) return;
    each(b.readUInt16LE(from + 2) & 0x3fff, from + 4, from + len);
    from += (len + 3) & ~3;
  }
}

/** The payload offset of the first nested attribute of `type` in b[from, to), or -1. */
function find(b: Buffer, from: number, to: number, type: number): number {
  let found = -1;
  walk(b, from, to, (t, start) => { if (found < 0 && t === type) found = start; });
  return found;
}

function verdictText(b: Buffer, from: number, to: number): string {
  let code = 0;
  let chain = '';
  walk(b, from, to, (type, start, end) => {
    if (type === VERDICT.code) code = b.readInt32BE(start);
    else if (type === VERDICT.chain) chain = b.toString('utf8', start, b.indexOf(0, start) >= 0 && b.indexOf(0, start) < end ? b.indexOf(0, start) : end);
  });
  if (code === -3) return `jump ${chain}`;
  if (code === -4) return `goto ${chain}`;
  return VERDICTS[code] ?? `verdict ${code}`;
}

/**
 * Every element of a set, as `onElement(key, value)` in the renderer's canonical text (see ruleset.ts Element),
 * decoded with the layout of `spec`. Interval sets come back as ranges (CIDRs where they are prefixes).
 * Throws NetlinkError ENOENT when the set does not exist.
 */
export async function readElements(socket: NetfilterSocket, family: NftFamily, table: string, spec: SetSpec,
  onElement: (key: string, value: string | undefined) => void): Promise<void> {
  const keyFields = fieldsOf(spec.key, family);
  const dataFields = spec.data === undefined || spec.data === 'verdict' ? [] : fieldsOf(spec.data, family);
  const interval = spec.flags?.includes('interval') === true;
  const single = interval && keyFields.length === 1 ? keyFields[0] : undefined;
  // Single-field interval sets list start and end elements separately (the end one past the range): pair them up.
  const bounds: Array<{ value: bigint; end: boolean }> = [];
  const request = [stringAttr(ELEM_LIST.table, table), stringAttr(ELEM_LIST.set, spec.name)];
  await socket.query(NFT_MSG.getSetElem, NFPROTO[family], request, true, (message) => {
    const b = message.attrs;
    if (!b) return;
    const list = find(b, 0, b.length, ELEM_LIST.elements);
    if (list < 0) return;
    walk(b, list, list + b.readUInt16LE(list - 4) - 4, (_item, itemStart, itemEnd) => {
      let key = -1;
      let keyEnd = -1;
      let flags = 0;
      let value: string | undefined;
      walk(b, itemStart, itemEnd, (type, start, end) => {
        if (type === ELEM.key) key = find(b, start, end, DATA.value);
        else if (type === ELEM.keyEnd) keyEnd = find(b, start, end, DATA.value);
        else if (type === ELEM.flags) flags = b.readUInt32BE(start);
        else if (type === ELEM.data) {
          walk(b, start, end, (t, s, e) => {
            if (t === DATA.verdict) value = verdictText(b, s, e);
            else if (t === DATA.value) value = fieldsText(b, s, dataFields);
          });
        }
      });
      if (key < 0) return;
      if (single) bounds.push({ value: single.number(b, key), end: (flags & ELEM_INTERVAL_END) !== 0 });
      else onElement(interval && keyEnd >= 0 ? rangesText(b, key, keyEnd, keyFields) : fieldsText(b, key, keyFields), value);
    });
  });
  if (!single) return;
  bounds.sort((a, b) => (a.value < b.value ? -1 : a.value > b.value ? 1 : a.end === b.end ? 0 : a.end ? -1 : 1));
  let start: bigint | undefined;
  for (const bound of bounds) {
    if (!bound.end) start ??= bound.value;
    else if (start !== undefined) {
      onElement(single.render(start, bound.value - 1n), undefined);
      start = undefined;
    }
  }
  if (start !== undefined) onElement(single.render(start, (1n << BigInt(single.length * 8)) - 1n), undefined);
}

/** What a kernel set must look like to hold `spec`'s elements (else it is recreated). */
export function setMatches(kernel: KernelSet, spec: SetSpec, family: NftFamily): boolean {
  if (kernel.interval !== (spec.flags?.includes('interval') === true)) return false;
  if (kernel.timeout !== (spec.flags?.includes('timeout') === true)) return false;
  if (kernel.keyLength !== layoutLength(spec.key, family)) return false;
  if (spec.data === undefined) return kernel.data === undefined;
  if (spec.data === 'verdict') return kernel.data === 'verdict';
  return kernel.data === layoutLength(spec.data, family);
}

export { layoutLength };
