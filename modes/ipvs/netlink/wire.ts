// Netlink framing (RFC 3549; linux/netlink.h): message headers, attributes, acknowledgements. Pure: bytes in,
// bytes out. Netlink speaks the host's byte order; every platform kproxy runs on is little-endian (socket.ts
// refuses the others), so the codec writes little-endian, and big-endian only where a field says so (ports).

export const NLMSG_HDRLEN = 16;
export const NLA_HDRLEN = 4;

export const NLMSG_NOOP = 1;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLMSG_OVERRUN = 4;

export const NLM_F_REQUEST = 0x1;
export const NLM_F_MULTI = 0x2;
export const NLM_F_ACK = 0x4;
export const NLM_F_DUMP_INTR = 0x10;
export const NLM_F_DUMP = 0x300;
/** On an NLMSG_ERROR: the echoed request was cut to its header (NETLINK_CAP_ACK). */
export const NLM_F_CAPPED = 0x100;
/** On an NLMSG_ERROR: extended-ack attributes follow. */
export const NLM_F_ACK_TLVS = 0x200;

export const NLA_F_NESTED = 0x8000;
export const NLA_F_NET_BYTEORDER = 0x4000;
const NLA_TYPE_MASK = ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER) & 0xffff;

/** Extended ack attribute: a human-readable reason the kernel gives with an error. */
const NLMSGERR_ATTR_MSG = 1;

export const align4 = (n: number): number => (n + 3) & ~3;

/**
 * Writes a stream of netlink messages into one growing buffer: many requests can go to the kernel in a single
 * send (the kernel handles them in order and answers each that fails, and each that asks for an ack).
 */
export class MessageWriter {
  private buffer: Buffer;
  private length = 0;
  private messageStart = -1;
  private lastMessageStart = -1;
  private readonly nests: number[] = [];

  constructor(initialSize = 4096) {
    this.buffer = Buffer.alloc(initialSize);
  }

  /** Bytes written so far (complete messages only when no message is open). */
  get size(): number {
    return this.length;
  }

  private reserve(bytes: number): number {
    const need = this.length + align4(bytes);
    if (need > this.buffer.length) {
      const grown = Buffer.alloc(Math.max(need, this.buffer.length * 2));
      this.buffer.copy(grown, 0, 0, this.length);
      this.buffer = grown;
    }
    const at = this.length;
    this.buffer.fill(0, at, need);
    this.length = need;
    return at;
  }

  beginMessage(type: number, flags: number, seq: number): this {
    if (this.messageStart >= 0) throw new Error('netlink: a message is already open');
    this.messageStart = this.reserve(NLMSG_HDRLEN);
    this.buffer.writeUInt16LE(type, this.messageStart + 4);
    this.buffer.writeUInt16LE(flags, this.messageStart + 6);
    this.buffer.writeUInt32LE(seq >>> 0, this.messageStart + 8);
    // nlmsg_pid 0: the kernel fills in this socket's port id.
    return this;
  }

  endMessage(): this {
    if (this.messageStart < 0 || this.nests.length > 0) throw new Error('netlink: no message (or an open nest) to end');
    this.buffer.writeUInt32LE(this.length - this.messageStart, this.messageStart);
    this.lastMessageStart = this.messageStart;
    this.messageStart = -1;
    return this;
  }

  /** Add header flags to the last message written (e.g. ask for an ack on the last of a batch only). */
  flagLastMessage(flags: number): this {
    if (this.lastMessageStart < 0) throw new Error('netlink: no message written');
    const at = this.lastMessageStart + 6;
    this.buffer.writeUInt16LE(this.buffer.readUInt16LE(at) | flags, at);
    return this;
  }

  /** Raw bytes in a message body (a family header such as genetlink's), padded to 4. */
  raw(bytes: Uint8Array): this {
    const at = this.reserve(bytes.length);
    this.buffer.set(bytes, at);
    return this;
  }

  private attribute(type: number, payloadLength: number): number {
    const at = this.reserve(NLA_HDRLEN + payloadLength);
    this.buffer.writeUInt16LE(NLA_HDRLEN + payloadLength, at);
    this.buffer.writeUInt16LE(type, at + 2);
    return at + NLA_HDRLEN;
  }

  // Each writer takes the payload offset first: attribute() may replace the buffer.
  u8(type: number, value: number): this {
    const at = this.attribute(type, 1);
    this.buffer.writeUInt8(value, at);
    return this;
  }

  u16(type: number, value: number): this {
    const at = this.attribute(type, 2);
    this.buffer.writeUInt16LE(value, at);
    return this;
  }

  /** A 16-bit value in network byte order (ports). */
  be16(type: number, value: number): this {
    const at = this.attribute(type, 2);
    this.buffer.writeUInt16BE(value, at);
    return this;
  }

  u32(type: number, value: number): this {
    const at = this.attribute(type, 4);
    this.buffer.writeUInt32LE(value >>> 0, at);
    return this;
  }

  bytes(type: number, value: Uint8Array): this {
    const at = this.attribute(type, value.length);
    this.buffer.set(value, at);
    return this;
  }

  /** A NUL-terminated string. */
  string(type: number, value: string): this {
    const encoded = Buffer.from(`${value}\0`, 'utf8');
    return this.bytes(type, encoded);
  }

  beginNested(type: number): this {
    const payload = this.attribute(type | NLA_F_NESTED, 0);
    this.nests.push(payload - NLA_HDRLEN);
    return this;
  }

  endNested(): this {
    const at = this.nests.pop();
    if (at === undefined) throw new Error('netlink: no nested attribute to end');
    this.buffer.writeUInt16LE(this.length - at, at);
    return this;
  }

  /** The bytes written (a view: valid until the next write). */
  view(): Buffer {
    if (this.messageStart >= 0) throw new Error('netlink: a message is still open');
    return this.buffer.subarray(0, this.length);
  }

  reset(): this {
    this.length = 0;
    this.messageStart = -1;
    this.lastMessageStart = -1;
    this.nests.length = 0;
    return this;
  }
}

export interface NetlinkMessage {
  readonly type: number;
  readonly flags: number;
  readonly seq: number;
  readonly pid: number;
  /** The body after the 16-byte header. */
  readonly payload: Buffer;
}

/** Split a datagram into its messages. Throws on a malformed header (the kernel never sends one). */
export function parseMessages(data: Buffer): NetlinkMessage[] {
  const messages: NetlinkMessage[] = [];
  let offset = 0;
  while (offset + NLMSG_HDRLEN <= data.length) {
    const length = data.readUInt32LE(offset);
    if (length < NLMSG_HDRLEN || offset + length > data.length) {
      throw new Error(`netlink: malformed message (length ${length} at offset ${offset} of ${data.length})`);
    }
    messages.push({
      type: data.readUInt16LE(offset + 4),
      flags: data.readUInt16LE(offset + 6),
      seq: data.readUInt32LE(offset + 8),
      pid: data.readUInt32LE(offset + 12),
      payload: data.subarray(offset + NLMSG_HDRLEN, offset + length),
    });
    offset += align4(length);
  }
  return messages;
}

/** Attributes by type (flags stripped); views into the message, no copies. A repeated type keeps the last. */
export type Attributes = ReadonlyMap<number, Buffer>;

export function parseAttributes(data: Buffer, start = 0): Attributes {
  const attributes = new Map<number, Buffer>();
  let offset = start;
  while (offset + NLA_HDRLEN <= data.length) {
    const length = data.readUInt16LE(offset);
    if (length < NLA_HDRLEN || offset + length > data.length) break;
    attributes.set(data.readUInt16LE(offset + 2) & NLA_TYPE_MASK, data.subarray(offset + NLA_HDRLEN, offset + length));
    offset += align4(length);
  }
  return attributes;
}

export const readU8 = (attributes: Attributes, type: number): number | undefined => {
  const value = attributes.get(type);
  return value && value.length >= 1 ? value.readUInt8(0) : undefined;
};
export const readU16 = (attributes: Attributes, type: number): number | undefined => {
  const value = attributes.get(type);
  return value && value.length >= 2 ? value.readUInt16LE(0) : undefined;
};
export const readBe16 = (attributes: Attributes, type: number): number | undefined => {
  const value = attributes.get(type);
  return value && value.length >= 2 ? value.readUInt16BE(0) : undefined;
};
export const readU32 = (attributes: Attributes, type: number): number | undefined => {
  const value = attributes.get(type);
  return value && value.length >= 4 ? value.readUInt32LE(0) : undefined;
};
export const readU64 = (attributes: Attributes, type: number): bigint | undefined => {
  const value = attributes.get(type);
  return value && value.length >= 8 ? value.readBigUInt64LE(0) : undefined;
};
export const readString = (attributes: Attributes, type: number): string | undefined => {
  const value = attributes.get(type);
  if (!value) return undefined;
  const end = value.indexOf(0);
  return value.toString('utf8', 0, end < 0 ? value.length : end);
};

/** An NLMSG_ERROR: error 0 is an acknowledgement, otherwise the (positive) errno of the failed request. */
export interface Acknowledgement {
  readonly errno: number;
  /** Sequence number of the request it answers. */
  readonly seq: number;
  /** The kernel's own words, when it gave any (extended ack). */
  readonly message?: string;
}

export function parseAcknowledgement(message: NetlinkMessage): Acknowledgement {
  const { payload } = message;
  if (payload.length < 4 + NLMSG_HDRLEN) throw new Error('netlink: truncated error message');
  const code = payload.readInt32LE(0);
  const errno = code === 0 ? 0 : -code;
  const seq = payload.readUInt32LE(4 + 8);
  if ((message.flags & NLM_F_ACK_TLVS) === 0) return { errno, seq };
  // The echoed request: its header only when capped, else the whole request.
  const echoed = (message.flags & NLM_F_CAPPED) !== 0 ? NLMSG_HDRLEN : payload.readUInt32LE(4);
  const text = readString(parseAttributes(payload, 4 + align4(echoed)), NLMSGERR_ATTR_MSG);
  return text === undefined || text === '' ? { errno, seq } : { errno, seq, message: text };
}
