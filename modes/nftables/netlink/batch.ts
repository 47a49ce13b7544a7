// A transaction → one nfnetlink batch: the messages nft 1.0.6 would send for render.ts's text, in the same order,
// between a batch begin and end, applied by the kernel all or nothing. Pure. Sets carry the same user data as nft
// writes (their `typeof`), so `nft list ruleset` shows kproxy's table as if nft had written it.
import { elementKey, elementValue, type Chain, type Element, type Expr, type NftFamily, type SetSpec } from '../ruleset.ts';
import { ruleComment } from '../render.ts';
import type { Transaction } from '../transaction.ts';
import { attr, attrMap, attrString, batchBegin, batchEnd, MessageWriter, messageOf, nestedAttr, NFPROTO, NFT_MSG, NLM_F, nftType, parseAttrs, parseMessages, stringAttr, u32Attr } from './codec.ts';
import { VERDICT_CODE, writeRuleExpressions } from './expressions.ts';
import { concatType, encodeFields, fieldsLength, fieldsOf, fieldsText, writeFields, type Field } from './fields.ts';

const TABLE = { name: 1, flags: 2, userdata: 6 } as const;
const CHAIN = { table: 1, name: 3, hook: 4, policy: 5, type: 7 } as const;
const RULE = { table: 1, chain: 2, expressions: 4, userdata: 7 } as const;
const SET = { table: 1, name: 2, flags: 3, keyType: 4, keyLen: 5, dataType: 6, dataLen: 7, desc: 9, id: 10, userdata: 13 } as const;
const SET_FLAG = { interval: 0x4, map: 0x8, timeout: 0x10, eval: 0x20, concat: 0x80 } as const;
const ELEM_LIST = { table: 1, set: 2, elements: 3 } as const;
const ELEM = { key: 1, data: 2, flags: 3, keyEnd: 10 } as const;
const HOOKS = { prerouting: 0, input: 1, forward: 2, output: 3, postrouting: 4 } as const;
const NF_ACCEPT = 1;
const DATA_VERDICT = 0xffffff00;
const VERDICT_DATA_LEN = 16;
/** Elements per message: their list stays well under the 64 KiB an attribute can hold (IPv6 elements ~130 B). */
const ELEMENTS_PER_MESSAGE = 256;

// --- user data: type-length-value records with one-byte lengths (libnftnl's udata) ---------------------------
const ud = (type: number, value: Buffer): Buffer => Buffer.concat([Buffer.from([type, value.length]), value]);
const udU32 = (type: number, n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0, 0); // nft writes these in host order; every machine this runs on is little-endian
  return ud(type, b);
};
const udString = (type: number, text: string): Buffer => ud(type, Buffer.from(`${text}\0`, 'utf8'));

/** nft's expression types and payload protocol/field numbers, as it stores them in a set's `typeof`. */
const EXPR_TYPE = { verdict: 1, payload: 7, meta: 9, concat: 13, numgen: 23 } as const;
const PROTO_DESC = { ip: 12, ip6: 13, th: 11, tcp: 8, udp: 6, sctp: 10 } as const;

function typeofExpr(e: Expr, family: NftFamily): Buffer {
  const payload = (desc: number, field: number): Buffer => Buffer.concat([udU32(0, EXPR_TYPE.payload), ud(1, Buffer.concat([udU32(0, desc), udU32(1, field)]))]);
  switch (e.kind) {
    case 'addr':
      return family === 'ip' ? payload(PROTO_DESC.ip, e.dir === 'saddr' ? 11 : 12) : payload(PROTO_DESC.ip6, e.dir === 'saddr' ? 8 : 9);
    case 'dport': return payload(PROTO_DESC.th, 2);
    case 'port-value': return payload(PROTO_DESC[e.protocol], 2);
    case 'l4proto': return Buffer.concat([udU32(0, EXPR_TYPE.meta), ud(1, udU32(0, 16))]);
    case 'mark': return Buffer.concat([udU32(0, EXPR_TYPE.meta), ud(1, udU32(0, 3))]);
    case 'numgen': return Buffer.concat([udU32(0, EXPR_TYPE.numgen), ud(1, Buffer.concat([udU32(0, 1), udU32(1, e.mod), udU32(2, e.offset ?? 0)]))]);
  }
}

function typeofKey(key: readonly Expr[], family: NftFamily): Buffer {
  if (key.length === 1 && key[0]) return typeofExpr(key[0], family);
  const parts = key.map((e, i) => ud(i, typeofExpr(e, family)));
  return Buffer.concat([udU32(0, EXPR_TYPE.concat), ud(1, Buffer.concat(parts))]);
}

function setUserdata(set: SetSpec, family: NftFamily): Buffer {
  const single = set.key.length === 1 && set.key[0]?.kind === 'addr';
  const parts = [udU32(0, single ? 2 : 0)];
  if (set.data !== undefined) parts.push(udU32(1, 0));
  parts.push(ud(3, typeofKey(set.key, family)));
  if (set.data !== undefined) {
    parts.push(ud(4, set.data === 'verdict' ? Buffer.concat([udU32(0, EXPR_TYPE.verdict), ud(1, Buffer.alloc(0))]) : typeofKey(set.data, family)));
    parts.push(udU32(6, 0));
  }
  return Buffer.concat(parts);
}

// --- objects ---------------------------------------------------------------------------------------------------

/** `id`: the set's number within the transaction (the kernel requires one). */
function setAttrs(table: string, set: SetSpec, family: NftFamily, id: number): Buffer[] {
  const keyFields = fieldsOf(set.key, family);
  const interval = set.flags?.includes('interval') === true;
  let flags = 0;
  if (set.data !== undefined) flags |= SET_FLAG.map;
  if (interval) flags |= SET_FLAG.interval;
  if (interval && keyFields.length > 1) flags |= SET_FLAG.concat;
  if (set.flags?.includes('timeout')) flags |= SET_FLAG.timeout;
  if (set.flags?.includes('dynamic')) flags |= SET_FLAG.eval;
  const attrs = [stringAttr(SET.table, table), stringAttr(SET.name, set.name)];
  if (flags !== 0) attrs.push(u32Attr(SET.flags, flags));
  attrs.push(u32Attr(SET.keyType, concatType(keyFields)), u32Attr(SET.keyLen, keyFields.reduce((n, f) => n + f.length, 0)));
  if (set.data === 'verdict') attrs.push(u32Attr(SET.dataType, DATA_VERDICT), u32Attr(SET.dataLen, VERDICT_DATA_LEN));
  else if (set.data !== undefined) {
    const dataFields = fieldsOf(set.data, family);
    attrs.push(u32Attr(SET.dataType, concatType(dataFields)), u32Attr(SET.dataLen, dataFields.reduce((n, f) => n + f.length, 0)));
  }
  const desc: Buffer[] = [];
  if (set.size !== undefined) desc.push(u32Attr(1, set.size));
  if (interval && keyFields.length > 1) desc.push(nestedAttr(2, keyFields.map((f) => nestedAttr(1, [u32Attr(1, f.size)]))));
  if (desc.length > 0) attrs.push(nestedAttr(SET.desc, desc));
  attrs.push(u32Attr(SET.id, id), attr(SET.userdata, setUserdata(set, family)));
  return attrs;
}

function chainAttrs(table: string, chain: Chain): Buffer[] {
  const attrs = [stringAttr(CHAIN.table, table), stringAttr(CHAIN.name, chain.name)];
  const base = chain.base;
  if (base) {
    const priority = Buffer.alloc(4);
    priority.writeInt32BE(base.priority, 0);
    attrs.push(nestedAttr(CHAIN.hook, [u32Attr(1, HOOKS[base.hook]), attr(2, priority)]), u32Attr(CHAIN.policy, NF_ACCEPT), stringAttr(CHAIN.type, base.type));
  }
  return attrs;
}


/** Writes the element records of `elements` (an interval set's ranges become what its kernel backend stores). */
function writeElements(w: MessageWriter, set: SetSpec, elements: readonly Element[], family: NftFamily, withData: boolean): void {
  const keyFields = fieldsOf(set.key, family);
  const keySize = fieldsLength(keyFields);
  const dataFields: Field[] = set.data === undefined || set.data === 'verdict' ? [] : fieldsOf(set.data, family);
  const dataSize = fieldsLength(dataFields);
  const interval = set.flags?.includes('interval') === true;
  const key = (type: number, text: string, end: boolean): void => {
    const nest = w.begin(type);
    const slot = w.reserve(1, keySize);
    writeFields(text, keyFields, slot.buffer, slot.at, end);
    w.end(nest);
  };
  const data = (e: Element): void => {
    const value = withData ? elementValue(e) : undefined;
    if (value === undefined) return;
    if (set.data === 'verdict') {
      const space = value.indexOf(' ');
      const kind = space < 0 ? value : value.slice(0, space);
      const code = VERDICT_CODE[kind as keyof typeof VERDICT_CODE];
      if (code === undefined) throw new Error(`not a verdict: ${value}`);
      const outer = w.begin(ELEM.data);
      const inner = w.begin(2);
      w.u32(1, code);
      if (space >= 0) w.string(2, value.slice(space + 1));
      w.end(inner);
      w.end(outer);
      return;
    }
    const nest = w.begin(ELEM.data);
    const slot = w.reserve(1, dataSize);
    writeFields(value, dataFields, slot.buffer, slot.at);
    w.end(nest);
  };
  if (!interval || keyFields.length > 1) {
    for (const e of elements) {
      const item = w.begin(1);
      const k = elementKey(e);
      key(ELEM.key, k, false);
      if (interval) key(ELEM.keyEnd, k, true);
      data(e);
      w.end(item);
    }
    return;
  }
  // One field: a start element and an end element one past the range (none when the range ends at the top);
  // as nft does, an end element at 0 when nothing starts there.
  const ranges = elements.map((e) => ({ start: encodeFields(elementKey(e), keyFields), end: encodeFields(elementKey(e), keyFields, true) }))
    .sort((a, b) => Buffer.compare(a.start, b.start));
  const bound = (bytes: Buffer, isEnd: boolean): void => {
    const item = w.begin(1);
    const nest = w.begin(ELEM.key);
    w.bytes(1, bytes);
    w.end(nest);
    if (isEnd) w.u32(ELEM.flags, 1);
    w.end(item);
  };
  const first = ranges[0];
  if (first && first.start.some((byte) => byte !== 0)) bound(Buffer.alloc(keySize), true);
  for (const { start, end } of ranges) {
    bound(start, false);
    const next = Buffer.from(end);
    let i = next.length - 1;
    while (i >= 0 && next[i] === 0xff) next[i--] = 0;
    if (i < 0) continue; // the range reaches the top: no end element
    next[i] = (next[i] ?? 0) + 1;
    bound(next, true);
  }
}

// --- the batch -------------------------------------------------------------------------------------------------

export interface Batch {
  /** Everything, one datagram: the kernel takes a batch only whole. */
  readonly bytes: Buffer;
  /** The sequence number of the last message (the only one acknowledged when all is well). */
  readonly lastSeq: number;
  /** What each message does, for the one line that names a failure. */
  describe(seq: number): string;
  /** Frees the bytes (once sent and answered). */
  release(): void;
}

/** Bytes an element of `spec` takes in a message, roughly (to size the buffer once). */
function elementBytes(spec: SetSpec | undefined, family: NftFamily): number {
  if (!spec) return 96;
  const key = fieldsLength(fieldsOf(spec.key, family));
  const interval = spec.flags?.includes('interval') === true;
  const data = spec.data === undefined ? 0 : spec.data === 'verdict' ? 64 : 12 + fieldsLength(fieldsOf(spec.data, family));
  return 16 + key * (interval ? 2 : 1) + data;
}

/**
 * Writes one transaction of one table as a batch, message by message, in the order it is given (the caller keeps
 * declarations before references). `known` lays out sets that already exist (for their elements and lookups).
 */
export class BatchEncoder {
  readonly #family: NftFamily;
  readonly #table: string;
  readonly #proto: number;
  readonly #w: MessageWriter;
  readonly #sets: Map<string, SetSpec>;
  #seq: number;
  #lastStart = -1;
  /** Elements to add, gathered per set (in call order) until a message is full or another message comes. */
  readonly #pending = new Map<string, Element[]>();
  #pendingCount = 0;
  #setIds = 0;

  constructor(family: NftFamily, table: string, known: ReadonlyMap<string, SetSpec>, firstSeq: number, expectedBytes = 1 << 16) {
    this.#family = family;
    this.#table = table;
    this.#proto = NFPROTO[family];
    this.#sets = new Map(known);
    this.#seq = firstSeq;
    this.#w = new MessageWriter(expectedBytes);
    this.#w.raw(batchBegin(this.#seq++));
  }

  /** One message: `body` writes its attributes. Elements still pending go first (the order of calls is kept). */
  #send(msg: number, flags: number, body: () => void): void {
    if (this.#pendingCount > 0) this.#flushPending();
    this.#message(msg, flags, body);
  }

  #message(msg: number, flags: number, body: () => void): void {
    this.#lastStart = this.#w.beginMessage(nftType(msg), NLM_F.request | flags, this.#seq++, this.#proto);
    body();
    this.#w.endMessage(this.#lastStart);
  }

  #push(msg: number, flags: number, attrs: readonly Buffer[]): void {
    this.#send(msg, flags, () => { for (const a of attrs) this.#w.raw(a); });
  }

  deleteTable(): void {
    this.#push(NFT_MSG.delTable, 0, [stringAttr(TABLE.name, this.#table)]);
  }

  addTable(comment: string): void {
    this.#push(NFT_MSG.newTable, NLM_F.create, [stringAttr(TABLE.name, this.#table), u32Attr(TABLE.flags, 0), attr(TABLE.userdata, udString(0, comment))]);
  }

  addSet(set: SetSpec): void {
    this.#sets.set(set.name, set);
    this.#push(NFT_MSG.newSet, NLM_F.create, setAttrs(this.#table, set, this.#family, ++this.#setIds));
  }

  addChain(chain: Chain): void {
    this.#push(NFT_MSG.newChain, NLM_F.create, chainAttrs(this.#table, chain));
  }

  flushChain(name: string): void {
    this.#push(NFT_MSG.delRule, 0, [stringAttr(RULE.table, this.#table), stringAttr(RULE.chain, name)]);
  }

  /** Appends the chain's rules (the chain exists, or was added before in this batch). */
  fillChain(chain: Chain): void {
    const w = this.#w;
    const setOf = (name: string): SetSpec | undefined => this.#sets.get(name);
    for (const rule of chain.rules) {
      this.#send(NFT_MSG.newRule, NLM_F.create | NLM_F.append, () => {
        w.string(RULE.table, this.#table);
        w.string(RULE.chain, chain.name);
        const expressions = w.begin(RULE.expressions);
        writeRuleExpressions(w, rule.matches, rule.statements, this.#family, setOf);
        w.end(expressions);
        w.bytes(RULE.userdata, udString(0, ruleComment(rule, this.#family)));
      });
    }
  }

  #listHeader(set: string): void {
    this.#w.string(ELEM_LIST.table, this.#table);
    this.#w.string(ELEM_LIST.set, set);
  }

  flushSet(name: string): void {
    this.#send(NFT_MSG.delSetElem, 0, () => this.#listHeader(name));
  }

  #elements(msg: number, flags: number, set: string, elements: readonly Element[], withData: boolean): void {
    const spec = this.#sets.get(set);
    if (!spec) throw new Error(`no layout known for set ${set}`);
    for (let i = 0; i < elements.length; i += ELEMENTS_PER_MESSAGE) {
      const chunk = elements.length <= ELEMENTS_PER_MESSAGE ? elements : elements.slice(i, i + ELEMENTS_PER_MESSAGE);
      this.#message(msg, flags, () => {
        this.#listHeader(set);
        const nest = this.#w.begin(ELEM_LIST.elements);
        writeElements(this.#w, spec, chunk, this.#family, withData);
        this.#w.end(nest);
      });
    }
  }

  /**
   * Adds elements. Consecutive calls (a table written service by service) are gathered per set into full messages
   * (a message per call cost ~56 bytes of headers each: 3 MB at 10k services); any other message sends them first.
   */
  addElements(set: string, elements: readonly Element[]): void {
    if (elements.length === 0) return;
    if (!this.#sets.has(set)) throw new Error(`no layout known for set ${set}`);
    let list = this.#pending.get(set);
    if (!list) this.#pending.set(set, list = []);
    for (const e of elements) list.push(e);
    this.#pendingCount += elements.length;
    if (list.length >= ELEMENTS_PER_MESSAGE) {
      const full = list.length - (list.length % ELEMENTS_PER_MESSAGE);
      this.#elements(NFT_MSG.newSetElem, NLM_F.create, set, list.slice(0, full), true);
      list.splice(0, full);
      this.#pendingCount -= full;
    }
  }

  #flushPending(): void {
    const pending = [...this.#pending];
    this.#pending.clear();
    this.#pendingCount = 0;
    for (const [set, list] of pending) if (list.length > 0) this.#elements(NFT_MSG.newSetElem, NLM_F.create, set, list, true);
  }

  deleteElements(set: string, keys: readonly string[]): void {
    if (keys.length === 0) return;
    if (this.#pendingCount > 0) this.#flushPending();
    this.#elements(NFT_MSG.delSetElem, 0, set, keys, false);
  }

  /** Empties, then deletes chains (emptied first, so chains that jump to each other can go in any order). */
  deleteChains(names: readonly string[]): void {
    for (const name of names) this.flushChain(name);
    for (const name of names) this.#push(NFT_MSG.delChain, 0, [stringAttr(CHAIN.table, this.#table), stringAttr(CHAIN.name, name)]);
  }

  deleteSet(name: string): void {
    this.#push(NFT_MSG.delSet, 0, [stringAttr(SET.table, this.#table), stringAttr(SET.name, name)]);
  }

  /** Whether any message was written. */
  get empty(): boolean { return this.#lastStart < 0 && this.#pendingCount === 0; }

  finish(): Batch {
    if (this.#pendingCount > 0) this.#flushPending();
    const w = this.#w;
    const lastSeq = this.#seq - 1;
    // Only the last message asks for an acknowledgement; a failing one is reported whatever its flags.
    if (this.#lastStart >= 0) w.addFlags(this.#lastStart, NLM_F.ack);
    w.raw(batchEnd(this.#seq));
    const bytes = w.view();
    const sets = this.#sets;
    const family = this.#family;
    // Nothing is kept per message (60k descriptions at 10k services were 16 MiB): a refusal decodes its message.
    return { bytes, lastSeq, describe: (n) => describeMessage(bytes, n, family, sets), release: () => w.release() };
  }
}

const MESSAGE_VERBS: Readonly<Record<number, string>> = {
  [NFT_MSG.newTable]: 'add table', [NFT_MSG.delTable]: 'delete table', [NFT_MSG.newChain]: 'add chain',
  [NFT_MSG.delChain]: 'delete chain', [NFT_MSG.delRule]: 'flush chain',
  [NFT_MSG.newSet]: 'add set', [NFT_MSG.delSet]: 'delete set', [NFT_MSG.newSetElem]: 'add', [NFT_MSG.delSetElem]: 'delete',
};

/**
 * What message `seq` of a batch does, for the one line that names a refusal: decoded from the bytes (its object's
 * name; for elements, how many and the first one's key, in the set's own layout).
 */
export function describeMessage(bytes: Buffer, seq: number, family: NftFamily, sets: ReadonlyMap<string, SetSpec>): string {
  const messages = parseMessages(bytes);
  const index = messages.findIndex((m) => m.seq === seq && m.attrs !== undefined);
  const message = messages[index];
  if (!message?.attrs) return `message ${seq}`;
  const msg = messageOf(message.type);
  const attrs = attrMap(message.attrs);
  const verb = MESSAGE_VERBS[msg] ?? `message type ${msg}`;
  switch (msg) {
    case NFT_MSG.newTable: case NFT_MSG.delTable: return `${verb} ${family} ${attrString(attrs.get(TABLE.name)) ?? '?'}`;
    case NFT_MSG.newChain: case NFT_MSG.delChain: return `${verb} ${attrString(attrs.get(CHAIN.name)) ?? '?'}`;
    case NFT_MSG.delRule: return `${verb} ${attrString(attrs.get(RULE.chain)) ?? '?'}`;
    case NFT_MSG.newRule: {
      const chain = attrString(attrs.get(RULE.chain));
      const sameChain = (m: (typeof messages)[number]): boolean => m.attrs !== undefined && attrString(attrMap(m.attrs).get(RULE.chain)) === chain;
      let n = 1;
      for (let i = index - 1; i >= 0; i--) {
        const m = messages[i];
        if (!m || !sameChain(m)) continue;
        if (messageOf(m.type) !== NFT_MSG.newRule) break; // the chain's flush or creation
        n++;
      }
      return `add rule ${n} of chain ${chain ?? '?'}`;
    }
    case NFT_MSG.newSet: case NFT_MSG.delSet: return `${verb} ${attrString(attrs.get(SET.name)) ?? '?'}`;
    case NFT_MSG.newSetElem: case NFT_MSG.delSetElem: {
      const set = attrString(attrs.get(ELEM_LIST.set)) ?? '?';
      const list = attrs.get(ELEM_LIST.elements);
      if (!list) return `flush set ${set}`;
      const items = parseAttrs(list);
      const spec = sets.get(set);
      const key = items[0] && spec ? attrMap(attrMap(items[0].data).get(ELEM.key) ?? Buffer.alloc(0)).get(1) : undefined;
      const first = key && spec ? ` (${fieldsText(key, 0, fieldsOf(spec.key, family))}, …)` : '';
      return `${verb} ${items.length} elements of ${set}${first}`;
    }
    default: return verb;
  }
}

/**
 * Encodes `tx`, in the order render.ts writes it. `known` tells how sets that already exist in the kernel are laid
 * out (for elements of sets this transaction does not create, and for rules that look them up).
 */
export function encodeTransaction(tx: Transaction, known: ReadonlyMap<string, SetSpec>, firstSeq: number): Batch {
  const { family } = tx;
  const sets = new Map(known);
  for (const set of tx.addSets) sets.set(set.name, set);
  let expected = 1 << 16;
  for (const chain of [...tx.addChains, ...tx.replaceChains]) expected += chain.rules.length * 640;
  for (const [name, list] of [...tx.addElements, ...tx.deleteElements]) expected += list.length * elementBytes(sets.get(name), family);
  const out = new BatchEncoder(family, tx.table, known, firstSeq, expected);
  if (tx.deleteTable) out.deleteTable();
  if (tx.ensureTable) out.addTable(tx.ensureTable.comment);
  for (const set of tx.addSets) out.addSet(set);
  for (const chain of tx.addChains) out.addChain(chain);
  for (const chain of tx.addChains) out.fillChain(chain);
  for (const chain of tx.replaceChains) {
    out.flushChain(chain.name);
    out.fillChain(chain);
  }
  for (const name of tx.flushSets) out.flushSet(name);
  for (const [set, keys] of tx.deleteElements) out.deleteElements(set, keys);
  for (const [set, elements] of tx.addElements) out.addElements(set, elements);
  out.deleteChains(tx.deleteChains);
  for (const name of tx.deleteSets) out.deleteSet(name);
  return out.finish();
}
