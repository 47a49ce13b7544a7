// Netlink framing for nf_tables (read-only use): building dump requests and walking the attributes of replies.
// Pure; the socket is in socket.ts. Constants from linux/netfilter/nf_tables.h and linux/netlink.h.

export const NETLINK_NETFILTER = 12;
const NFNL_SUBSYS_NFTABLES = 10;

export const NFT_MSG = {
  newTable: 0, getTable: 1, delTable: 2, newChain: 3, getChain: 4, delChain: 5, newRule: 6, getRule: 7, delRule: 8,
  newSet: 9, getSet: 10, delSet: 11, newSetElem: 12, getSetElem: 13, delSetElem: 14, newGen: 15, getGen: 16,
} as const;

export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;

export const NFPROTO = { ip: 2, ip6: 10 } as const;

const NLA_TYPE_MASK = 0x3fff;
const HEADER = 16; // struct nlmsghdr
const NFGEN = 4; // struct nfgenmsg

const align4 = (n: number): number => (n + 3) & ~3;

/** One attribute: its type (flags stripped) and its payload (a view, not a copy). */
export interface Attr {
  readonly type: number;
  readonly data: Buffer;
}

/** The attributes laid out back to back in `data`. */
export function parseAttrs(data: Buffer): Attr[] {
  const out: Attr[] = [];
  let offset = 0;
  while (offset + 4 <= data.length) {
    const len = data.readUInt16LE(offset);
    const type = data.readUInt16LE(offset + 2) & NLA_TYPE_MASK;
    if (len < 4 || offset + len > data.length) break;
    out.push({ type, data: data.subarray(offset + 4, offset + len) });
    offset += align4(len);
  }
  return out;
}

/** Attributes by type (the last wins; nf_tables sends each at most once per level). */
export function attrMap(data: Buffer): Map<number, Buffer> {
  const map = new Map<number, Buffer>();
  for (const attr of parseAttrs(data)) map.set(attr.type, attr.data);
  return map;
}

export const attrString = (data: Buffer | undefined): string | undefined =>
  data === undefined ? undefined : data.toString('utf8', 0, data.indexOf(0) >= 0 ? data.indexOf(0) : data.length);
export const attrU32 = (data: Buffer | undefined): number | undefined => (data && data.length >= 4 ? data.readUInt32BE(0) : undefined);
export const attrI32 = (data: Buffer | undefined): number | undefined => (data && data.length >= 4 ? data.readInt32BE(0) : undefined);

export function attr(type: number, payload: Buffer): Buffer {
  const len = 4 + payload.length;
  const out = Buffer.alloc(align4(len));
  out.writeUInt16LE(len, 0);
  out.writeUInt16LE(type, 2);
  payload.copy(out, 4);
  return out;
}

export const stringAttr = (type: number, value: string): Buffer => attr(type, Buffer.from(`${value}\0`, 'utf8'));
const NLA_F_NESTED = 0x8000;
export const nestedAttr = (type: number, children: readonly Buffer[]): Buffer => attr(type | NLA_F_NESTED, Buffer.concat(children as Buffer[]));
export function u32Attr(type: number, value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value >>> 0, 0);
  return attr(type, b);
}
export function u64Attr(type: number, value: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(value, 0);
  return attr(type, b);
}

export const NLM_F = { request: 0x1, ack: 0x4, dump: 0x300, create: 0x400, append: 0x800 } as const;

/** One netlink message: header, nfgenmsg, attributes. `type` is the full nlmsg_type. */
export function message(type: number, flags: number, seq: number, family: number, attrs: readonly Buffer[], resId = 0): Buffer {
  const body = Buffer.concat(attrs as Buffer[]);
  const out = Buffer.alloc(HEADER + NFGEN + body.length);
  out.writeUInt32LE(out.length, 0);
  out.writeUInt16LE(type, 4);
  out.writeUInt16LE(flags, 6);
  out.writeUInt32LE(seq, 8);
  out.writeUInt32LE(0, 12);
  out.writeUInt8(family, HEADER); // nfgen_family
  out.writeUInt8(0, HEADER + 1); // NFNETLINK_V0
  out.writeUInt16BE(resId, HEADER + 2); // res_id
  body.copy(out, HEADER + NFGEN);
  return out;
}

/** The nlmsg_type of an nf_tables message. */
export const nftType = (msg: number): number => (NFNL_SUBSYS_NFTABLES << 8) | msg;

/** The markers around a transaction (one batch of nf_tables messages, applied all or nothing). */
export const batchBegin = (seq: number): Buffer => message(0x10, NLM_F.request, seq, 0, [], NFNL_SUBSYS_NFTABLES);
export const batchEnd = (seq: number): Buffer => message(0x11, NLM_F.request, seq, 0, [], NFNL_SUBSYS_NFTABLES);

/** A request for one nf_tables message type; `dump` asks for every object (filtered by the attributes). */
export function request(msg: number, family: number, seq: number, attrs: readonly Buffer[], dump: boolean): Buffer {
  return message(nftType(msg), NLM_F.request | (dump ? NLM_F.dump : 0), seq, family, attrs);
}

export interface Message {
  /** nlmsg_type: for nf_tables replies, (subsystem << 8) | message. */
  readonly type: number;
  readonly seq: number;
  /** NLMSG_ERROR: the errno (0 is an acknowledgement). */
  readonly error?: number;
  /** The attributes after the nfgenmsg header. */
  readonly attrs?: Buffer;
}

/** The messages of one datagram. */
export function parseMessages(data: Buffer): Message[] {
  const out: Message[] = [];
  let offset = 0;
  while (offset + HEADER <= data.length) {
    const len = data.readUInt32LE(offset);
    if (len < HEADER || offset + len > data.length) break;
    const type = data.readUInt16LE(offset + 4);
    const seq = data.readUInt32LE(offset + 8);
    if (type === NLMSG_ERROR) out.push({ type, seq, error: -data.readInt32LE(offset + HEADER) });
    else if (type === NLMSG_DONE) out.push({ type, seq });
    else out.push({ type, seq, attrs: data.subarray(offset + HEADER + NFGEN, offset + len) });
    offset += align4(len);
  }
  return out;
}

/** The nf_tables message number of a reply's type. */
export const messageOf = (type: number): number => type & 0xff;

/**
 * Writes netlink messages into one growing buffer (a transaction at 10k services is ~20 MB of attributes:
 * one allocation per attribute would cost more than the kernel's work).
 */
export class MessageWriter {
  #buf: Buffer;
  #pos = 0;

  /** `expected`: the bytes it will likely hold (one allocation instead of a series of doublings and copies). */
  constructor(expected = 1 << 16) {
    // Not zeroed: pages of an over-estimate are never touched (RSS), and every byte written is written explicitly.
    this.#buf = Buffer.allocUnsafe(Math.max(1 << 12, expected));
  }

  get length(): number { return this.#pos; }

  #room(n: number): void {
    if (this.#pos + n <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.#pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.#buf.copy(next, 0, 0, this.#pos);
    this.#buf = next;
  }

  #pad(): void {
    const aligned = align4(this.#pos);
    this.#room(aligned - this.#pos);
    this.#buf.fill(0, this.#pos, aligned);
    this.#pos = aligned;
  }

  /** Starts a message; returns its offset for `endMessage`. */
  beginMessage(type: number, flags: number, seq: number, family: number, resId = 0): number {
    this.#room(HEADER + NFGEN);
    const start = this.#pos;
    const b = this.#buf;
    b.writeUInt32LE(0, start);
    b.writeUInt16LE(type, start + 4);
    b.writeUInt16LE(flags, start + 6);
    b.writeUInt32LE(seq, start + 8);
    b.writeUInt32LE(0, start + 12);
    b.writeUInt8(family, start + HEADER);
    b.writeUInt8(0, start + HEADER + 1);
    b.writeUInt16BE(resId, start + HEADER + 2);
    this.#pos += HEADER + NFGEN;
    return start;
  }

  endMessage(start: number): void {
    this.#buf.writeUInt32LE(this.#pos - start, start);
  }

  /** Adds NLM_F_* bits to the flags of the message at `start`. */
  addFlags(start: number, flags: number): void {
    this.#buf.writeUInt16LE(this.#buf.readUInt16LE(start + 6) | flags, start + 6);
  }

  /** Starts a nested attribute; returns its offset for `end`. */
  begin(type: number): number {
    this.#room(4);
    const start = this.#pos;
    this.#buf.writeUInt16LE(type | 0x8000, start + 2);
    this.#pos += 4;
    return start;
  }

  end(start: number): void {
    this.#buf.writeUInt16LE(this.#pos - start, start);
  }

  /** An attribute whose payload `fill` writes at the offset it is given (`size` bytes). */
  #attr(type: number, size: number, fill: (b: Buffer, at: number) => void): void {
    this.#room(4 + size + 3);
    const b = this.#buf;
    b.writeUInt16LE(4 + size, this.#pos);
    b.writeUInt16LE(type, this.#pos + 2);
    b.fill(0, this.#pos + 4, this.#pos + 4 + size);
    fill(b, this.#pos + 4);
    this.#pos += 4 + size;
    this.#pad();
  }

  u32(type: number, value: number): void { this.#attr(type, 4, (b, at) => b.writeUInt32BE(value >>> 0, at)); }
  string(type: number, value: string): void {
    const size = Buffer.byteLength(value) + 1;
    this.#attr(type, size, (b, at) => { b.write(value, at); b[at + size - 1] = 0; });
  }
  bytes(type: number, value: Buffer): void { this.#attr(type, value.length, (b, at) => { value.copy(b, at); }); }
  /** An attribute of `size` bytes that `fill` writes in place, into zeroes. */
  fill(type: number, size: number, fill: (b: Buffer, at: number) => void): void { this.#attr(type, size, fill); }

  /** An attribute of `size` zero bytes; returns where its payload starts, for the caller to write into. */
  reserve(type: number, size: number): { readonly buffer: Buffer; readonly at: number } {
    this.#room(4 + size + 3);
    const b = this.#buf;
    const at = this.#pos + 4;
    b.writeUInt16LE(4 + size, this.#pos);
    b.writeUInt16LE(type, this.#pos + 2);
    b.fill(0, at, at + size);
    this.#pos += 4 + size;
    this.#pad();
    return { buffer: this.#buf, at };
  }
  /** Already encoded attributes. */
  raw(encoded: Buffer): void {
    this.#room(encoded.length);
    encoded.copy(this.#buf, this.#pos);
    this.#pos += encoded.length;
  }

  /** The bytes written so far (a view). */
  view(): Buffer { return this.#buf.subarray(0, this.#pos); }

  /**
   * Frees the memory at once, rather than at the garbage collector's next major cycle (a table's batch is ~20 MB);
   * views of it become empty.
   */
  release(): void {
    const memory = this.#buf.buffer;
    // Only memory this writer owns alone (never a Buffer pool's): its buffers are at least 4 KiB, which Node never pools.
    if (memory instanceof ArrayBuffer && this.#buf.byteOffset === 0 && memory.byteLength === this.#buf.length) memory.transfer(0);
    this.#buf = Buffer.alloc(0);
    this.#pos = 0;
  }
}
