// Listening sockets bound to a service address before the node has it (IP_FREEBIND). The relay binds first and
// only then is the address added to kproxy's interface, so a client never finds the address without a listener
// (the kernel would answer with a reset: "connection refused"). Node binds and listens in one call with no
// socket option in between, so the socket is made here through libc (libc.ts) and handed to Node by descriptor.
import { isIPv6 } from 'node:net';
import { constants, endianness } from 'node:os';
import { O_CLOEXEC, O_NONBLOCK, SOL_SOCKET } from './libc.ts';
import type { Libc } from './libc.ts';

const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_STREAM = 1;
const SOCK_DGRAM = 2;
// socket(2) takes O_NONBLOCK and O_CLOEXEC as SOCK_NONBLOCK and SOCK_CLOEXEC.
const SOCK_FLAGS = O_NONBLOCK | O_CLOEXEC;
const SO_REUSEADDR = 2;
const SO_REUSEPORT = 15;
// SOL_IP options apply to IPv6 sockets too (ipv6_setsockopt passes them on), on every kernel that has IP_FREEBIND.
const SOL_IP = 0;
const IP_FREEBIND = 15;

export interface FreebindSocket {
  readonly protocol: 'TCP' | 'UDP';
  readonly ip: string;
  readonly port: number;
  /** Join the port's SO_REUSEPORT group (relay processes). */
  readonly reusePort: boolean;
  /** TCP only. */
  readonly backlog: number;
}

const errnoNames = new Map(Object.entries(constants.errno).map(([name, value]) => [value, name]));

/** An Error whose `code` is the errno's name (EADDRINUSE…), as Node's own socket errors. */
function systemError(call: string, errno: number): Error {
  const code = errnoNames.get(errno) ?? `errno ${errno}`;
  return Object.assign(new Error(`${call}: ${code}`), { code });
}

function ipv6Bytes(ip: string): number[] {
  const [head = '', tail] = ip.split('::');
  const groups = (part: string): number[] => part === '' ? [] : part.split(':').flatMap((g) => {
    if (!g.includes('.')) return [Number.parseInt(g, 16)];
    const [a = 0, b = 0, c = 0, d = 0] = g.split('.').map(Number); // an embedded IPv4 tail is two groups
    return [(a << 8) | b, (c << 8) | d];
  });
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const all = [...left, ...Array<number>(8 - left.length - right.length).fill(0), ...right];
  return all.flatMap((g) => [g >> 8, g & 0xff]);
}

/** struct sockaddr_in / sockaddr_in6 for ip:port. */
export function sockaddr(ip: string, port: number): Uint8Array {
  const v6 = isIPv6(ip);
  const bytes = new Uint8Array(v6 ? 28 : 16);
  const view = new DataView(bytes.buffer);
  view.setUint16(0, v6 ? AF_INET6 : AF_INET, endianness() === 'LE');
  view.setUint16(2, port); // network order
  if (v6) bytes.set(ipv6Bytes(ip), 8);
  else bytes.set(ip.split('.').map(Number), 4);
  return bytes;
}

/**
 * A non-blocking socket bound (and, for TCP, listening) on ip:port whether or not the node has ip yet. Returns
 * its descriptor, for `net.Server.listen({ fd })` or `dgram.Socket.bind({ fd })`, which then own it.
 */
export function freebindSocket(libc: Libc, request: FreebindSocket): number {
  const tcp = request.protocol === 'TCP';
  const fd = libc.socket(isIPv6(request.ip) ? AF_INET6 : AF_INET, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_FLAGS, 0);
  if (fd < 0) throw systemError('socket', libc.errno());
  const one = new Int32Array([1]);
  const step = (call: string, result: number): void => {
    if (result >= 0) return;
    const errno = libc.errno();
    libc.close(fd);
    throw systemError(call, errno);
  };
  // What Node sets on its own listeners: SO_REUSEADDR on TCP, SO_REUSEPORT when asked.
  if (tcp) step('setsockopt SO_REUSEADDR', libc.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, one, 4));
  if (request.reusePort) step('setsockopt SO_REUSEPORT', libc.setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, one, 4));
  step('setsockopt IP_FREEBIND', libc.setsockopt(fd, SOL_IP, IP_FREEBIND, one, 4));
  const address = sockaddr(request.ip, request.port);
  step('bind', libc.bind(fd, address, address.length));
  if (tcp) step('listen', libc.listen(fd, request.backlog));
  return fd;
}
