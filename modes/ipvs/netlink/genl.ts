// Generic netlink (linux/genetlink.h): the 4-byte family header, and the controller family that turns a
// family's name ("IPVS") into the message type its requests carry. Pure.
import {
  MessageWriter, NLM_F_REQUEST, parseAttributes, readString, readU16, readU32,
  type NetlinkMessage,
} from './wire.ts';

export const GENL_HDRLEN = 4;
/** The controller's fixed message type. */
export const GENL_ID_CTRL = 0x10;
const CTRL_CMD_GETFAMILY = 3;
const CTRL_VERSION = 2;
const CTRL_ATTR_FAMILY_ID = 1;
const CTRL_ATTR_FAMILY_NAME = 2;
const CTRL_ATTR_VERSION = 3;
const CTRL_ATTR_MAXATTR = 5;

/** Start a generic netlink request: the netlink header, then command and family version. */
export function beginGenlMessage(writer: MessageWriter, family: number, flags: number, seq: number, command: number, version: number): MessageWriter {
  return writer.beginMessage(family, flags | NLM_F_REQUEST, seq).raw(Uint8Array.of(command, version, 0, 0));
}

export interface GenlHeader {
  readonly command: number;
  readonly version: number;
}

export function genlHeader(message: NetlinkMessage): GenlHeader {
  if (message.payload.length < GENL_HDRLEN) throw new Error('genetlink: message shorter than its header');
  return { command: message.payload.readUInt8(0), version: message.payload.readUInt8(1) };
}

/** The attributes after the generic netlink header. */
export function genlAttributes(message: NetlinkMessage): ReturnType<typeof parseAttributes> {
  return parseAttributes(message.payload, GENL_HDRLEN);
}

/** CTRL_CMD_GETFAMILY for one family, by name. */
export function encodeFamilyRequest(writer: MessageWriter, name: string, seq: number): MessageWriter {
  return beginGenlMessage(writer, GENL_ID_CTRL, 0, seq, CTRL_CMD_GETFAMILY, CTRL_VERSION)
    .string(CTRL_ATTR_FAMILY_NAME, name)
    .endMessage();
}

export interface GenlFamily {
  readonly id: number;
  readonly name: string;
  readonly version: number;
  readonly maxAttribute: number;
}

export function decodeFamily(message: NetlinkMessage): GenlFamily {
  const attributes = genlAttributes(message);
  const id = readU16(attributes, CTRL_ATTR_FAMILY_ID);
  if (id === undefined) throw new Error('genetlink: the family reply carries no id');
  return {
    id,
    name: readString(attributes, CTRL_ATTR_FAMILY_NAME) ?? '',
    version: readU32(attributes, CTRL_ATTR_VERSION) ?? 0,
    maxAttribute: readU32(attributes, CTRL_ATTR_MAXATTR) ?? 0,
  };
}
