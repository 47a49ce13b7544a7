// A netlink socket through koffi (the FFI library the project already ships for the relay's splice loop): Node
// has no AF_NETLINK sockets. Calls are synchronous: the kernel handles a generic netlink request inside send()
// and queues its answers before send() returns, so receive() finds them at once; a receive timeout
// (SO_RCVTIMEO) bounds the wait if an answer ever fails to come.
import { endianness } from 'node:os';
import { loadLibcFunctions, type LibcFunctions } from '../../../src/util/ffi.ts';
import { ERRNO, errnoName } from './errno.ts';

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
export const NETLINK_GENERIC = 16;
const SOL_SOCKET = 1;
const SO_SNDBUF = 7;
const SO_RCVBUF = 8;
const SO_RCVTIMEO = 20;
const SO_SNDBUFFORCE = 32;
const SO_RCVBUFFORCE = 33;
const SOL_NETLINK = 270;
const NETLINK_CAP_ACK = 10;
const NETLINK_EXT_ACK = 11;
const MSG_TRUNC = 0x20;

/** A failed system call on the netlink socket. */
export class NetlinkSocketError extends Error {
  readonly errno: number;
  constructor(call: string, errno: number) {
    super(`netlink ${call} failed: ${errnoName(errno)}`);
    this.name = 'NetlinkSocketError';
    this.errno = errno;
  }
}

export interface NetlinkSocket {
  /** Send one datagram (one or more messages). */
  send(data: Uint8Array): void;
  /** The next datagram, or undefined when none came within the receive timeout. */
  receive(): Buffer | undefined;
  close(): void;
}

export interface NetlinkSocketOptions {
  /** Receive buffer (SO_RCVBUFFORCE when root, else capped by net.core.rmem_max). */
  readonly receiveBufferBytes?: number;
  /** Send buffer; a datagram may not be larger. */
  readonly sendBufferBytes?: number;
  readonly receiveTimeoutMs?: number;
}

const DEFINITIONS = {
  socket: 'int socket(int, int, int)',
  bind: 'int bind(int, void *, unsigned int)',
  send: 'long send(int, void *, size_t, int)',
  recv: 'long recv(int, void *, size_t, int)',
  setsockopt: 'int setsockopt(int, int, int, void *, unsigned int)',
  close: 'int close(int)',
} as const;

let loaded: Promise<LibcFunctions<keyof typeof DEFINITIONS>> | undefined;

function loadCalls(): Promise<LibcFunctions<keyof typeof DEFINITIONS>> {
  loaded ??= (async () => {
    if (endianness() !== 'LE') throw new Error('netlink: this codec writes little-endian; this machine is big-endian');
    return loadLibcFunctions('netlink', DEFINITIONS);
  })();
  return loaded;
}

const int32 = (value: number): Int32Array => Int32Array.of(value);

/** Open and bind a netlink socket of `protocol` (NETLINK_GENERIC for IPVS). */
export async function openNetlinkSocket(protocol: number, options: NetlinkSocketOptions = {}): Promise<NetlinkSocket> {
  const { call: calls, errno } = await loadCalls();
  const n = (value: unknown): number => Number(value);
  const fd = n(calls.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol));
  if (fd < 0) throw new NetlinkSocketError('socket', errno());
  const fail = (call: string): never => {
    const code = errno();
    calls.close(fd);
    throw new NetlinkSocketError(call, code);
  };
  const setInt = (level: number, name: number, value: number): boolean =>
    n(calls.setsockopt(fd, level, name, int32(value), 4)) === 0;

  // sockaddr_nl: family, padding, port id 0 (the kernel picks one), no multicast groups.
  const address = new Uint8Array(12);
  new DataView(address.buffer).setUint16(0, AF_NETLINK, true);
  if (n(calls.bind(fd, address, address.length)) !== 0) fail('bind');

  const receiveBuffer = options.receiveBufferBytes ?? 8 << 20;
  if (!setInt(SOL_SOCKET, SO_RCVBUFFORCE, receiveBuffer)) setInt(SOL_SOCKET, SO_RCVBUF, receiveBuffer);
  const sendBuffer = options.sendBufferBytes ?? 1 << 20;
  if (!setInt(SOL_SOCKET, SO_SNDBUFFORCE, sendBuffer)) setInt(SOL_SOCKET, SO_SNDBUF, sendBuffer);
  // Errors echo only the failed request's header, and carry the kernel's reason when it gives one.
  setInt(SOL_NETLINK, NETLINK_CAP_ACK, 1);
  setInt(SOL_NETLINK, NETLINK_EXT_ACK, 1);
  const timeoutMs = options.receiveTimeoutMs ?? 10_000;
  const timeval = new BigInt64Array([BigInt(Math.floor(timeoutMs / 1000)), BigInt((timeoutMs % 1000) * 1000)]);
  if (n(calls.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, timeval, 16)) !== 0) fail('setsockopt(SO_RCVTIMEO)');

  let buffer = Buffer.alloc(256 << 10);
  let open = true;
  return {
    send(data) {
      if (!open) throw new Error('netlink: the socket is closed');
      for (;;) {
        const sent = n(calls.send(fd, data, data.length, 0));
        if (sent === data.length) return;
        if (sent < 0 && errno() === ERRNO.EINTR) continue;
        throw new NetlinkSocketError('send', sent < 0 ? errno() : 0);
      }
    },
    receive() {
      if (!open) throw new Error('netlink: the socket is closed');
      for (;;) {
        const length = n(calls.recv(fd, buffer, buffer.length, MSG_TRUNC));
        if (length < 0) {
          const code = errno();
          if (code === ERRNO.EINTR) continue;
          if (code === ERRNO.EAGAIN) return undefined;
          throw new NetlinkSocketError('recv', code);
        }
        if (length > buffer.length) {
          // The datagram did not fit and is gone: grow for the next ones, and say so.
          buffer = Buffer.alloc(length * 2);
          throw new NetlinkSocketError('recv (datagram larger than the buffer)', ERRNO.EMSGSIZE);
        }
        return Buffer.from(buffer.subarray(0, length));
      }
    },
    close() {
      if (!open) return;
      open = false;
      calls.close(fd);
    },
  };
}
