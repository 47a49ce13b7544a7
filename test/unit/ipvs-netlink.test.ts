// The IPVS netlink codec without a kernel: exact bytes of the messages kproxy sends, and decoding of the
// kernel's replies (built here the way the kernel lays them out). The same code against a real IPVS kernel:
// test/ipvs/netlink.guest.ts, in the VM.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeFamily, encodeFamilyRequest, GENL_ID_CTRL } from '../../modes/ipvs/netlink/genl.ts';
import {
  decodeDestination, decodeInfo, decodeService, decodeTimeouts, encodeDestinationDump, encodeRequest, encodeServiceDump,
  hostNetmask, SVC_FLAG, type AddressService, type Destination, type FwmarkService, type IpvsRequest, type VirtualService,
} from '../../modes/ipvs/netlink/ipvs.ts';
import { errnoName } from '../../modes/ipvs/netlink/errno.ts';
import {
  MessageWriter, NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_DUMP, NLM_F_REQUEST, NLMSG_ERROR, parseAcknowledgement,
  parseAttributes, parseMessages, type NetlinkMessage,
} from '../../modes/ipvs/netlink/wire.ts';

const FAMILY = 0x23;
const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const only = (bytes: Buffer): NetlinkMessage => {
  const messages = parseMessages(bytes);
  assert.equal(messages.length, 1);
  return messages[0] as NetlinkMessage;
};
const encode = (request: IpvsRequest, seq = 7): Buffer => {
  const writer = new MessageWriter(16);
  encodeRequest(writer, FAMILY, seq, request);
  return Buffer.from(writer.view());
};
/** A kernel reply: the same attribute layout under another command (dumps answer with NEW_SERVICE/NEW_DEST). */
const asReply = (bytes: Buffer): NetlinkMessage => only(bytes);

const svc: AddressService = {
  family: 'IPv4', protocol: 'TCP', address: '10.96.0.10', port: 80, scheduler: 'rr', flags: 0, timeout: 0, netmask: 0xffffffff,
};
const dest6: Destination = { address: 'fd00::2', port: 80, forwarding: 'masquerade', weight: 1, upperThreshold: 0, lowerThreshold: 0 };
const dest: Destination = { address: '10.244.1.2', port: 8080, forwarding: 'masquerade', weight: 1, upperThreshold: 0, lowerThreshold: 0 };

describe('netlink framing', () => {
  test('the IPVS family lookup, byte for byte', () => {
    const writer = new MessageWriter(8);
    encodeFamilyRequest(writer, 'IPVS', 0x01020304);
    assert.equal(hex(writer.view()), [
      '20000000', '1000', '0100', '04030201', '00000000', // nlmsghdr: length 32, GENL_ID_CTRL, REQUEST, seq, pid
      '03020000', // genlmsghdr: CTRL_CMD_GETFAMILY, version 2
      '0900', '0200', '4950565300', '000000', // CTRL_ATTR_FAMILY_NAME "IPVS\0", padded to 4
    ].join(''));
  });

  test('add-service, byte for byte: AF, protocol, 16-byte address, port in network order, scheduler, flags+mask, timeout, netmask', () => {
    const bytes = encode({ op: 'add-service', service: { ...svc, flags: SVC_FLAG.persistent, timeout: 10800 } });
    assert.equal(hex(bytes), [
      '68000000', '2300', '0100', '07000000', '00000000', // length 104, the IPVS family, REQUEST (no ack), seq 7
      '01010000', // IPVS_CMD_NEW_SERVICE, version 1
      '5400', '0180', // IPVS_CMD_ATTR_SERVICE, nested, 84 bytes
      '0600', '0100', '0200', '0000', // AF_INET
      '0600', '0200', '0600', '0000', // IPPROTO_TCP
      '1400', '0300', '0a60000a000000000000000000000000', // 10.96.0.10
      '0600', '0400', '0050', '0000', // port 80, big-endian
      '0700', '0600', '727200', '00', // "rr\0"
      '0c00', '0700', '01000000', 'fdffffff', // flags persistent; mask all but "hashed"
      '0800', '0800', '302a0000', // timeout 10800
      '0800', '0900', 'ffffffff', // netmask
    ].join(''));
  });

  test('messages are padded to 4 bytes and split back apart', () => {
    const writer = new MessageWriter(4);
    writer.beginMessage(0x30, NLM_F_REQUEST, 1).string(1, 'a').endMessage();
    writer.beginMessage(0x31, NLM_F_REQUEST | NLM_F_DUMP, 2).u8(2, 9).endMessage();
    const messages = parseMessages(Buffer.from(writer.view()));
    assert.deepEqual(messages.map((m) => [m.type, m.flags, m.seq, m.payload.length]), [[0x30, 1, 1, 8], [0x31, 0x301, 2, 8]]);
    assert.equal(parseAttributes(messages[1]!.payload).get(2)?.[0], 9);
  });

  test('only the last message of a batch asks for an ack', () => {
    const writer = new MessageWriter();
    encodeRequest(writer, FAMILY, 1, { op: 'add-service', service: svc });
    encodeRequest(writer, FAMILY, 2, { op: 'delete-service', service: svc });
    writer.flagLastMessage(NLM_F_ACK);
    assert.deepEqual(parseMessages(Buffer.from(writer.view())).map((m) => m.flags), [NLM_F_REQUEST, NLM_F_REQUEST | NLM_F_ACK]);
  });

  test('a malformed length is an error, not a loop', () => {
    const bad = Buffer.alloc(20);
    bad.writeUInt32LE(64, 0);
    assert.throws(() => parseMessages(bad), /malformed/);
    bad.writeUInt32LE(4, 0);
    assert.throws(() => parseMessages(bad), /malformed/);
  });

  test('nested and byte-order flags are stripped from attribute types; a truncated attribute ends the list', () => {
    const data = Buffer.from('0800018001000000' + '0600024000070000' + '2000030000', 'hex');
    const attributes = parseAttributes(data);
    assert.deepEqual([...attributes.keys()], [1, 2]);
    assert.equal(attributes.get(2)?.readUInt16BE(0), 7);
  });
});

describe('acknowledgements', () => {
  const errorMessage = (errno: number, seq: number, flags: number, tlvs?: Buffer): NetlinkMessage => {
    const echoed = Buffer.alloc(16);
    echoed.writeUInt32LE(16, 0);
    echoed.writeUInt32LE(seq, 8);
    const head = Buffer.alloc(4);
    head.writeInt32LE(-errno, 0);
    return { type: NLMSG_ERROR, flags, seq, pid: 0, payload: Buffer.concat([head, echoed, tlvs ?? Buffer.alloc(0)]) };
  };

  test('errno, the sequence number it answers, and the kernel\'s message from extended-ack attributes', () => {
    assert.deepEqual(parseAcknowledgement(errorMessage(0, 9, 0)), { errno: 0, seq: 9 });
    assert.deepEqual(parseAcknowledgement(errorMessage(17, 10, NLM_F_CAPPED)), { errno: 17, seq: 10 });
    const text = Buffer.from('0d000100' + Buffer.from('bad thing\0').toString('hex') + '000000', 'hex');
    assert.deepEqual(parseAcknowledgement(errorMessage(22, 11, NLM_F_CAPPED | NLM_F_ACK_TLVS, text)), { errno: 22, seq: 11, message: 'bad thing' });
  });

  test('errno names', () => {
    assert.deepEqual([2, 3, 17, 22].map(errnoName), ['ENOENT', 'ESRCH', 'EEXIST', 'EINVAL']);
    assert.equal(errnoName(100_000), 'errno 100000');
  });
});

describe('IPVS services and destinations', () => {
  const services: readonly AddressService[] = [
    svc,
    { ...svc, protocol: 'UDP', port: 53, scheduler: 'wrr' },
    { ...svc, protocol: 'SCTP', port: 3868, scheduler: 'mh', flags: SVC_FLAG.sched1 | SVC_FLAG.sched2 },
    { ...svc, address: '192.168.200.7', port: 65535, flags: SVC_FLAG.persistent, timeout: 600 },
    { ...svc, family: 'IPv6', address: 'fd00:96::a', netmask: hostNetmask('IPv6') },
    { ...svc, family: 'IPv6', address: '2001:db8::ffff:1:0', port: 1, scheduler: 'sh' },
  ];
  for (const service of services) {
    test(`round trip: ${service.protocol} ${service.address}:${service.port} ${service.scheduler}`, () => {
      assert.deepEqual(decodeService(asReply(encode({ op: 'add-service', service }))), service);
    });
  }

  test('the kernel\'s "hashed" flag never shows, and is never sent', () => {
    const bytes = encode({ op: 'add-service', service: { ...svc, flags: SVC_FLAG.hashed | SVC_FLAG.persistent } });
    // Decoding the request shows what was sent.
    assert.equal(decodeService(asReply(bytes))?.flags, SVC_FLAG.persistent);
  });

  test('firewall-mark services: the mark instead of protocol, address and port', () => {
    const marked: FwmarkService = { family: 'IPv6', fwmark: 0x20000001, scheduler: 'rr', flags: 0, timeout: 0, netmask: 128 };
    const bytes = encode({ op: 'add-service', service: marked });
    assert.deepEqual([...parseAttributes(parseAttributes(only(bytes).payload, 4).get(1)!).keys()], [1, 5, 6, 7, 8, 9]);
    assert.deepEqual(decodeService(asReply(bytes)), marked);
    const dest = encode({ op: 'add-destination', service: { ...marked, scheduler: 'wrr' } as VirtualService, destination: { ...dest6, port: 1 } });
    assert.deepEqual([...parseAttributes(parseAttributes(only(dest).payload, 4).get(1)!).keys()], [1, 5], 'the key only');
  });

  test('services of unknown families or protocols are not decoded', () => {
    const writer = new MessageWriter();
    writer.beginMessage(FAMILY, 0, 1).raw(Uint8Array.of(1, 1, 0, 0)).beginNested(1).u16(1, 7).u16(2, 6).endNested().endMessage();
    writer.beginMessage(FAMILY, 0, 1).raw(Uint8Array.of(1, 1, 0, 0)).beginNested(1).u16(1, 2).u16(2, 99).endNested().endMessage();
    for (const message of parseMessages(Buffer.from(writer.view()))) assert.equal(decodeService(message), undefined);
  });

  const destinations: readonly [string, Destination][] = [
    ['IPv4', dest],
    ['IPv4', { ...dest, weight: 0, port: 1 }],
    ['IPv6', { ...dest, address: 'fd00:244:1::2', forwarding: 'masquerade', weight: 7, upperThreshold: 100, lowerThreshold: 10 }],
    ['IPv4', { ...dest, forwarding: 'route' }],
  ];
  for (const [family, destination] of destinations) {
    test(`destination round trip: ${destination.address}:${destination.port} weight ${destination.weight}`, () => {
      const bytes = encode({ op: 'add-destination', service: { ...svc, family: family as 'IPv4' | 'IPv6' }, destination });
      const decoded = decodeDestination(asReply(bytes), 'IPv4');
      assert.deepEqual(decoded, { ...destination, family, activeConnections: 0, inactiveConnections: 0, persistentConnections: 0 });
    });
  }

  test('a destination request names its service by key only (no scheduler), and a delete carries no weight', () => {
    const message = asReply(encode({ op: 'delete-destination', service: { ...svc, scheduler: 'wrr' } as VirtualService, destination: { address: '10.1.1.1', port: 9 } }));
    const top = parseAttributes(message.payload, 4);
    assert.deepEqual([...parseAttributes(top.get(1)!).keys()], [1, 2, 3, 4]);
    assert.deepEqual([...parseAttributes(top.get(2)!).keys()], [1, 2, 11]);
  });

  test('a destination without an address family (old kernels) takes the service\'s', () => {
    const writer = new MessageWriter();
    writer.beginMessage(FAMILY, 0, 1).raw(Uint8Array.of(5, 1, 0, 0)).beginNested(2)
      .bytes(1, Buffer.from('fd000000000000000000000000000001', 'hex')).be16(2, 443).u32(4, 2).endNested().endMessage();
    const decoded = decodeDestination(only(Buffer.from(writer.view())), 'IPv6');
    assert.equal(decoded?.address, 'fd00::1');
    assert.equal(decoded?.family, 'IPv6');
    assert.equal(decoded?.port, 443);
  });

  test('dumps: services with the dump flag, destinations of one service', () => {
    const writer = new MessageWriter();
    encodeServiceDump(writer, FAMILY, 1);
    encodeDestinationDump(writer, FAMILY, 2, svc);
    const [services, dests] = parseMessages(Buffer.from(writer.view()));
    assert.equal(services?.flags, NLM_F_REQUEST | NLM_F_DUMP);
    assert.equal(services?.payload.length, 4);
    assert.equal(dests?.payload[0], 8, 'IPVS_CMD_GET_DEST');
    const service = parseAttributes(parseAttributes(dests!.payload, 4).get(1)!);
    assert.deepEqual([...service.keys()], [1, 2, 3, 4], 'the service by its key');
  });

  test('timeouts and info', () => {
    const timeouts = encode({ op: 'set-timeouts', timeouts: { tcp: 900, tcpFin: 120, udp: 300 } });
    assert.deepEqual(decodeTimeouts(asReply(timeouts)), { tcp: 900, tcpFin: 120, udp: 300 });
    const writer = new MessageWriter();
    writer.beginMessage(FAMILY, 0, 1).raw(Uint8Array.of(15, 1, 0, 0)).u32(1, 0x010201).u32(2, 4096).endMessage();
    assert.deepEqual(decodeInfo(only(Buffer.from(writer.view()))), { version: '1.2.1', connectionTableSize: 4096 });
  });
});

describe('generic netlink family', () => {
  test('decodes the controller\'s answer', () => {
    const writer = new MessageWriter();
    writer.beginMessage(GENL_ID_CTRL, 0, 1).raw(Uint8Array.of(1, 2, 0, 0)).string(2, 'IPVS').u16(1, 0x1c).u32(3, 1).u32(5, 6).endMessage();
    assert.deepEqual(decodeFamily(only(Buffer.from(writer.view()))), { id: 0x1c, name: 'IPVS', version: 1, maxAttribute: 6 });
  });
});
