// A NETLINK_NETFILTER socket for nf_tables, through koffi (Node has no AF_NETLINK sockets): dumps and the ruleset
// generation, and transactions (one batch, one datagram). Replies are read on the thread pool, so a large dump or
// transaction never stalls the event loop (health probes).
import { loadLibcFunctions, type LibcFunctions } from '../../../src/util/ffi.ts';
import { NETLINK_NETFILTER, NLMSG_DONE, parseMessages, request, type Message } from './codec.ts';

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_SNDBUFFORCE = 32;
const SO_RCVBUF = 8;
const SOL_NETLINK = 270;
const NETLINK_CAP_ACK = 10;
const MSG_DONTWAIT = 0x40;
const EAGAIN = 11;
const RECV_BUFFER = 256 * 1024;
const ERRNO_NAMES: Readonly<Record<number, string>> = {
  1: 'EPERM', 2: 'ENOENT', 7: 'E2BIG', 12: 'ENOMEM', 13: 'EACCES', 16: 'EBUSY', 17: 'EEXIST', 22: 'EINVAL', 28: 'ENOSPC', 34: 'ERANGE',
  90: 'EMSGSIZE', 93: 'EPROTONOSUPPORT', 95: 'EOPNOTSUPP', 97: 'EAFNOSUPPORT',
};

export class NetlinkError extends Error {
  readonly errno: number;
  constructor(what: string, errno: number) {
    super(`${what}: ${ERRNO_NAMES[errno] ?? `errno ${errno}`}`);
    this.errno = errno;
  }
}

const DEFINITIONS = {
  socket: 'int socket(int, int, int)',
  bind: 'int bind(int, void *, unsigned int)',
  send: 'long send(int, void *, size_t, int)',
  recv: 'long recv(int, void *, size_t, int)',
  close: 'int close(int)',
  setsockopt: 'int setsockopt(int, int, int, void *, unsigned int)',
} as const;

type Calls = LibcFunctions<keyof typeof DEFINITIONS>;
let calls: Promise<Calls> | undefined;
const load = (): Promise<Calls> => (calls ??= loadLibcFunctions('the nftables reader', DEFINITIONS));

/** One socket, one request at a time. */
export class NetfilterSocket {
  readonly #calls: Calls;
  readonly #fd: number;
  #seq = 1;
  #buffer = Buffer.alloc(RECV_BUFFER);

  private constructor(calls: Calls, fd: number) {
    this.#calls = calls;
    this.#fd = fd;
  }

  static async open(): Promise<NetfilterSocket> {
    const c = await load();
    const fd = Number(c.call.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER));
    if (fd < 0) throw new NetlinkError('netlink socket', c.errno());
    const address = Buffer.alloc(12);
    address.writeUInt16LE(AF_NETLINK, 0);
    const size = Buffer.alloc(4);
    size.writeInt32LE(RECV_BUFFER * 4, 0);
    c.call.setsockopt(fd, SOL_SOCKET, SO_RCVBUF, size, 4); // best effort: a bigger queue for long dumps
    const one = Buffer.alloc(4);
    one.writeInt32LE(1, 0);
    c.call.setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, one, 4); // errors echo headers, not whole batches
    if (Number(c.call.bind(fd, address, address.length)) < 0) {
      const errno = c.errno();
      c.call.close(fd);
      throw new NetlinkError('netlink bind', errno);
    }
    return new NetfilterSocket(c, fd);
  }

  close(): void {
    this.#calls.call.close(this.#fd);
  }

  /** The sequence number the next message takes; a batch numbered from here must then call `used`. */
  get nextSeq(): number {
    return this.#seq;
  }

  /** A batch numbered up to `last` was sent. */
  used(last: number): void {
    this.#seq = Math.max(this.#seq, last + 1);
  }

  /**
   * Sends one request and calls `onMessage` for every reply message of it until the dump ends (or, for a plain
   * request, the one reply). `onMessage` must be done with the message when it returns (its buffer is reused).
   * A NLMSG_ERROR reply rejects with NetlinkError (ENOENT: no such table/set).
   */
  async query(msg: number, family: number, attrs: readonly Buffer[], dump: boolean, onMessage: (message: Message) => void): Promise<void> {
    const seq = this.#seq++;
    const packet = request(msg, family, seq, attrs, dump);
    if (Number(this.#calls.call.send(this.#fd, packet, packet.length, 0)) < 0) throw new NetlinkError('netlink send', this.#calls.errno());
    for (;;) {
      const length = await this.#recv();
      for (const message of parseMessages(this.#buffer.subarray(0, length))) {
        if (message.seq !== seq) continue; // a late reply to an earlier request
        if (message.error !== undefined) {
          if (message.error === 0) return;
          throw new NetlinkError('nf_tables', message.error);
        }
        if (message.type === NLMSG_DONE) return;
        onMessage(message);
        if (!dump) return; // the one reply

      }
    }
  }

  /**
   * Sends a transaction (one batch, one datagram) and waits for the kernel's verdict on it: resolves when the last
   * message is acknowledged, rejects with one line naming the first message the kernel refused.
   */
  async transact(batch: { readonly bytes: Buffer; readonly lastSeq: number; describe(seq: number): string }): Promise<void> {
    const c = this.#calls.call;
    const size = Buffer.alloc(4);
    size.writeInt32LE(batch.bytes.length + (1 << 16), 0);
    c.setsockopt(this.#fd, SOL_SOCKET, SO_SNDBUFFORCE, size, 4); // a batch must fit the send buffer whole
    if (Number(c.send(this.#fd, batch.bytes, batch.bytes.length, 0)) < 0) {
      throw new NetlinkError(`nf_tables transaction of ${batch.bytes.length} bytes: send`, this.#calls.errno());
    }
    const failures: Array<{ seq: number; errno: number }> = [];
    for (let done = false; !done;) {
      const length = failures.length > 0 ? this.#recvNow() : await this.#recv();
      if (length <= 0) break; // nothing more queued after a failure
      for (const message of parseMessages(this.#buffer.subarray(0, length))) {
        if (message.error === undefined) continue;
        if (message.error !== 0) failures.push({ seq: message.seq, errno: message.error });
        if (message.seq === batch.lastSeq) done = true;
      }
    }
    const first = failures[0];
    if (first) {
      const error = new NetlinkError(`nf_tables refused ${batch.describe(first.seq)}`, first.errno);
      throw error;
    }
  }

  /** A reply already queued, without waiting (0 when there is none). */
  #recvNow(): number {
    const n = Number(this.#calls.call.recv(this.#fd, this.#buffer, this.#buffer.length, MSG_DONTWAIT));
    if (n < 0 && this.#calls.errno() === EAGAIN) return 0;
    return n;
  }

  #recv(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#calls.call.recv.async(this.#fd, this.#buffer, this.#buffer.length, 0, (err: unknown, result: unknown) => {
        const n = Number(result);
        if (err) reject(err instanceof Error ? err : new Error(String(err)));
        else if (n < 0) reject(new NetlinkError('netlink recv', 0)); // errno stays on the pool thread
        else resolve(n);
      });
    });
  }
}
