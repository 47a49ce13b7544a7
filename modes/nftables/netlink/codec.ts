// Netlink framing for nf_tables (read-only use): building dump requests and walking the attributes of replies.
// Pure; the socket is in socket.ts. Constants from linux/netfilter/nf_tables.h and linux/netlink.h.

export const NETLINK_NETFILTER = 12;
const NFNL_SUBSYS_NFTABLES = 10;

export const NFT_MSG = {
  getTable: 1, newChain: 3, getChain: 4, newRule: 6, getRule: 7, newSet: 9, getSet: 10,
  newSetElem: 12, getSetElem: 13, newGen: 15, getGen: 16,
} as const;

const NLM_F_REQUEST = 0x1;
const NLM_F_DUMP = 0x300;
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

function attr(type: number, payload: Buffer): Buffer {
  const len = 4 + payload.length;
  const out = Buffer.alloc(align4(len));
  out.writeUInt16LE(len, 0);
  out.writeUInt16LE(type, 2);
  payload.copy(out, 4);
  return out;
}

export const stringAttr = (type: number, value: string): Buffer => attr(type, Buffer.from(`${value}\0`, 'utf8'));

/** A request for one nf_tables message type; `dump` asks for every object (filtered by the attributes). */
export function request(msg: number, family: number, seq: number, attrs: readonly Buffer[], dump: boolean): Buffer {
  const body = Buffer.concat(attrs as Buffer[]);
  const out = Buffer.alloc(HEADER + NFGEN + body.length);
  out.writeUInt32LE(out.length, 0);
  out.writeUInt16LE((NFNL_SUBSYS_NFTABLES << 8) | msg, 4);
  out.writeUInt16LE(NLM_F_REQUEST | (dump ? NLM_F_DUMP : 0), 6);
  out.writeUInt32LE(seq, 8);
  out.writeUInt32LE(0, 12);
  out.writeUInt8(family, HEADER); // nfgen_family
  out.writeUInt8(0, HEADER + 1); // NFNETLINK_V0
  out.writeUInt16BE(0, HEADER + 2); // res_id
  body.copy(out, HEADER + NFGEN);
  return out;
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
