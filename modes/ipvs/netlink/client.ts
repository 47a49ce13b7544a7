// IPVS over generic netlink: resolve the family, read the kernel's tables, change them in batches. The only
// part of the ipvs mode that talks to the kernel's IPVS; everything it sends and reads is built and parsed by
// the pure codec (wire.ts, genl.ts, ipvs.ts).
import { joinHostPort } from '../../../src/util/ip.ts';
import { ERRNO, errnoName } from './errno.ts';
import { decodeFamily, encodeFamilyRequest } from './genl.ts';
import {
  decodeDestination, decodeInfo, decodeService, decodeTimeouts, encodeDestinationDump, encodeGetInfo,
  encodeGetTimeouts, encodeRequest, encodeServiceDump, IPVS_FAMILY_NAME, isFwmarkKey,
  type DestinationStatus, type IpvsInfo, type IpvsRequest, type ServiceKey, type Timeouts, type VirtualService,
} from './ipvs.ts';
import { NETLINK_GENERIC, openNetlinkSocket, type NetlinkSocket, type NetlinkSocketOptions } from './socket.ts';
import {
  MessageWriter, NLM_F_ACK, NLM_F_DUMP_INTR, NLMSG_DONE, NLMSG_ERROR, NLMSG_OVERRUN, parseAcknowledgement,
  parseMessages, type NetlinkMessage,
} from './wire.ts';

/** The kernel has no IPVS: the generic netlink family is not registered and could not be loaded. */
export class IpvsUnavailableError extends Error {
  readonly errno: number;
  constructor(errno: number) {
    super(`the kernel has no IPVS (generic netlink family "${IPVS_FAMILY_NAME}": ${errnoName(errno)}); `
      + 'load the ip_vs module or choose another --proxy-mode');
    this.name = 'IpvsUnavailableError';
    this.errno = errno;
  }
}

/** The kernel refused a request. */
export class IpvsRequestError extends Error {
  readonly errno: number;
  /** EEXIST, ENOENT, ESRCH, EINVAL, … */
  readonly code: string;
  constructor(what: string, errno: number, kernelMessage?: string) {
    super(`IPVS ${what}: ${errnoName(errno)}${kernelMessage === undefined ? '' : ` (${kernelMessage})`}`);
    this.name = 'IpvsRequestError';
    this.errno = errno;
    this.code = errnoName(errno);
  }
}

/** A request of a batch that the kernel refused. */
export interface RequestFailure {
  /** Position in the batch given to execute(). */
  readonly index: number;
  readonly request: IpvsRequest;
  readonly errno: number;
  readonly code: string;
  readonly message?: string;
}

export interface IpvsClientOptions {
  readonly socket?: NetlinkSocketOptions;
  /** Most bytes of requests sent in one datagram. */
  readonly batchBytes?: number;
}

/** What the client has sent since it opened (benchmarks and metrics read it). */
export interface IpvsClientCounters {
  /** Netlink messages (requests, dumps, lookups). */
  messages: number;
  /** Datagrams (send calls). */
  datagrams: number;
}

const DUMP_ATTEMPTS = 3;

export class IpvsClient {
  readonly counters: IpvsClientCounters = { messages: 0, datagrams: 0 };
  private readonly socket: NetlinkSocket;
  private readonly familyId: number;
  private readonly batchBytes: number;
  private readonly writer = new MessageWriter(64 << 10);
  private seq: number;

  private constructor(socket: NetlinkSocket, familyId: number, seq: number, batchBytes: number) {
    this.socket = socket;
    this.familyId = familyId;
    this.seq = seq;
    this.batchBytes = batchBytes;
  }

  /** Open a socket and resolve the IPVS family; IpvsUnavailableError when the kernel has none. */
  static async open(options: IpvsClientOptions = {}): Promise<IpvsClient> {
    const socket = await openNetlinkSocket(NETLINK_GENERIC, options.socket);
    const client = new IpvsClient(socket, 0, (Date.now() & 0x7fffffff) >>> 0, options.batchBytes ?? 96 << 10);
    try {
      const reply = client.transact('family lookup', (writer, seq) => encodeFamilyRequest(writer, IPVS_FAMILY_NAME, seq));
      const family = reply[0];
      if (family === undefined) throw new Error('genetlink: no answer to the IPVS family lookup');
      return new IpvsClient(socket, decodeFamily(family).id, client.seq, client.batchBytes);
    } catch (error) {
      socket.close();
      if (error instanceof IpvsRequestError && error.errno === ERRNO.ENOENT) throw new IpvsUnavailableError(error.errno);
      throw error;
    }
  }

  close(): void {
    this.socket.close();
  }

  info(): IpvsInfo {
    const [reply] = this.transact('get info', (writer, seq) => encodeGetInfo(writer, this.familyId, seq));
    if (reply === undefined) throw new Error('IPVS get info: no reply');
    return decodeInfo(reply);
  }

  timeouts(): Timeouts {
    const [reply] = this.transact('get timeouts', (writer, seq) => encodeGetTimeouts(writer, this.familyId, seq));
    if (reply === undefined) throw new Error('IPVS get timeouts: no reply');
    return decodeTimeouts(reply);
  }

  /** Every virtual service (of the families and protocols kproxy knows). */
  services(): VirtualService[] {
    return this.dump('list services', (writer, seq) => encodeServiceDump(writer, this.familyId, seq))
      .map(decodeService).filter((service): service is VirtualService => service !== undefined);
  }

  destinations(service: ServiceKey): DestinationStatus[] {
    return this.dump(`list destinations of ${describeService(service)}`, (writer, seq) => encodeDestinationDump(writer, this.familyId, seq, service))
      .map((message) => decodeDestination(message, service.family))
      .filter((destination): destination is DestinationStatus => destination !== undefined);
  }

  /** One change; throws IpvsRequestError when the kernel refuses it. */
  perform(request: IpvsRequest): void {
    const [failure] = this.execute([request]);
    if (failure !== undefined) throw new IpvsRequestError(describeRequest(request), failure.errno, failure.message);
  }

  /**
   * Many changes, sent in as few datagrams as fit `batchBytes`; only the last message of each datagram asks for
   * an acknowledgement, so a batch that succeeds costs one answer. The kernel carries on after a failed request:
   * every failure is returned, in order; everything else was applied.
   */
  execute(requests: readonly IpvsRequest[]): RequestFailure[] {
    const failures: RequestFailure[] = [];
    let start = 0;
    while (start < requests.length) {
      this.writer.reset();
      const firstSeq = this.seq;
      let end = start;
      while (end < requests.length && (end === start || this.writer.size < this.batchBytes)) {
        encodeRequest(this.writer, this.familyId, (firstSeq + (end - start)) >>> 0, requests[end] as IpvsRequest);
        end++;
      }
      this.writer.flagLastMessage(NLM_F_ACK);
      this.seq = (firstSeq + (end - start)) >>> 0;
      this.sendWriter(end - start);
      const lastSeq = (firstSeq + (end - start - 1)) >>> 0;
      this.receiveUntil(`batch of ${end - start}`, (message) => {
        if (message.type !== NLMSG_ERROR) return false;
        const ack = parseAcknowledgement(message);
        const index = start + ((ack.seq - firstSeq) >>> 0);
        if (ack.errno !== 0 && index >= start && index < end) {
          failures.push({
            index, request: requests[index] as IpvsRequest, errno: ack.errno, code: errnoName(ack.errno),
            ...(ack.message === undefined ? {} : { message: ack.message }),
          });
        }
        return ack.seq === lastSeq;
      });
      start = end;
    }
    return failures;
  }

  private nextSeqBlock(size: number): number {
    const first = this.seq;
    this.seq = (this.seq + size) >>> 0;
    return first;
  }

  private sendWriter(messages: number): void {
    this.socket.send(this.writer.view());
    this.counters.messages += messages;
    this.counters.datagrams++;
  }

  /** One request that answers with data messages and an acknowledgement. */
  private transact(what: string, write: (writer: MessageWriter, seq: number) => void): NetlinkMessage[] {
    const seq = this.nextSeqBlock(1);
    this.writer.reset();
    write(this.writer, seq);
    this.writer.flagLastMessage(NLM_F_ACK);
    this.sendWriter(1);
    const replies: NetlinkMessage[] = [];
    this.receiveUntil(what, (message) => {
      if (message.seq !== seq) return false;
      if (message.type !== NLMSG_ERROR) {
        replies.push(message);
        return false;
      }
      const ack = parseAcknowledgement(message);
      if (ack.errno !== 0) throw new IpvsRequestError(what, ack.errno, ack.message);
      return true;
    });
    return replies;
  }

  /** A dump, repeated when the kernel says its tables changed while it was being read. */
  private dump(what: string, write: (writer: MessageWriter, seq: number) => void): NetlinkMessage[] {
    for (let attempt = 1; ; attempt++) {
      const seq = this.nextSeqBlock(1);
      this.writer.reset();
      write(this.writer, seq);
      this.sendWriter(1);
      const replies: NetlinkMessage[] = [];
      let interrupted = false;
      this.receiveUntil(what, (message) => {
        if (message.seq !== seq) return false;
        if ((message.flags & NLM_F_DUMP_INTR) !== 0) interrupted = true;
        if (message.type === NLMSG_DONE) return true;
        if (message.type === NLMSG_ERROR) {
          const ack = parseAcknowledgement(message);
          if (ack.errno !== 0) throw new IpvsRequestError(what, ack.errno, ack.message);
          return true;
        }
        replies.push(message);
        return false;
      });
      if (!interrupted || attempt >= DUMP_ATTEMPTS) return replies;
    }
  }

  /** Read datagrams until `done` says the awaited message came. */
  private receiveUntil(what: string, done: (message: NetlinkMessage) => boolean): void {
    for (;;) {
      const datagram = this.socket.receive();
      if (datagram === undefined) throw new Error(`IPVS ${what}: the kernel did not answer`);
      for (const message of parseMessages(datagram)) {
        if (message.type === NLMSG_OVERRUN) throw new IpvsRequestError(what, ERRNO.ENOBUFS);
        if (done(message)) return;
      }
    }
  }
}

/** "TCP 10.96.0.10:80", "UDP [fd00::1]:53", "FWM 0x20000001 IPv4" */
export function describeService(service: ServiceKey): string {
  if (isFwmarkKey(service)) return `FWM 0x${service.fwmark.toString(16)} ${service.family}`;
  return `${service.protocol} ${joinHostPort(service.address, service.port)}`;
}

export function describeRequest(request: IpvsRequest): string {
  switch (request.op) {
    case 'add-service':
    case 'update-service':
    case 'delete-service':
      return `${request.op} ${describeService(request.service)}`;
    case 'add-destination':
    case 'update-destination':
    case 'delete-destination': {
      const d = request.destination;
      return `${request.op} ${joinHostPort(d.address, d.port)} of ${describeService(request.service)}`;
    }
    case 'set-timeouts':
      return 'set timeouts';
  }
}
