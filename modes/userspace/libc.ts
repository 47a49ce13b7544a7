// The few Linux system calls the splice relay needs (splice-loop.ts) and the listening sockets bound before their
// address exists (freebind.ts), called through koffi: a foreign-function library that ships prebuilt for each
// platform, since Node itself offers neither splice(2), epoll, nor a socket option before bind().
// Every call returns what the system call returns: -1 on failure, with the reason in errno().
import { loadLibcFunctions } from '../../src/util/ffi.ts';

/** Bytes for a pointer argument (the kernel reads or fills them). */
type Bytes = Uint8Array | Int32Array;

export interface Libc {
  epollCreate(): number;
  epollCtl(epfd: number, op: number, fd: number, event: Bytes | null): number;
  epollWait(epfd: number, events: Bytes, maxEvents: number, timeoutMs: number): number;
  /** epoll_wait on a thread of the pool; `done` runs on this thread with the count (or -1 and the errno). */
  epollWaitAsync(epfd: number, events: Bytes, maxEvents: number, timeoutMs: number, done: (n: number, errno: number) => void): void;
  /** splice(2) without offsets: both ends are sockets or pipes. */
  splice(fdIn: number, fdOut: number, length: number, flags: number): number;
  pipe2(fds: Int32Array, flags: number): number;
  fcntl(fd: number, command: number, arg: number): number;
  close(fd: number): number;
  shutdown(fd: number, how: number): number;
  eventfd(initial: number, flags: number): number;
  read(fd: number, buffer: Bytes, length: number): number;
  write(fd: number, buffer: Bytes, length: number): number;
  setsockopt(fd: number, level: number, name: number, value: Bytes, length: number): number;
  socket(domain: number, type: number, protocol: number): number;
  bind(fd: number, address: Bytes, length: number): number;
  listen(fd: number, backlog: number): number;
  errno(): number;
}

const DEFINITIONS = {
  epollCreate: 'int epoll_create1(int)',
  epollCtl: 'int epoll_ctl(int, int, int, void *)',
  epollWait: 'int epoll_wait(int, void *, int, int)',
  splice: 'long splice(int, void *, int, void *, size_t, unsigned int)',
  pipe2: 'int pipe2(int *, int)',
  fcntl: 'int fcntl(int, int, int)',
  close: 'int close(int)',
  shutdown: 'int shutdown(int, int)',
  eventfd: 'int eventfd(unsigned int, int)',
  read: 'long read(int, void *, size_t)',
  write: 'long write(int, void *, size_t)',
  setsockopt: 'int setsockopt(int, int, int, void *, unsigned int)',
  socket: 'int socket(int, int, int)',
  bind: 'int bind(int, void *, unsigned int)',
  listen: 'int listen(int, int)',
} as const;

/** Flag and level values shared by the callers (Linux, every architecture Node ships for). */
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;
export const SOL_SOCKET = 1;

let loaded: Promise<Libc> | undefined;

/** The C library of this process (one per thread that calls it); rejects with one line when it cannot be had. */
export function loadLibc(): Promise<Libc> {
  loaded ??= (async () => {
    const { call: f, errno } = await loadLibcFunctions('the relay\'s system calls (splice, IP_FREEBIND)', DEFINITIONS);
    // koffi answers 64-bit results as numbers (or bigints past 2^53, which these never reach).
    const n = (value: unknown): number => Number(value);
    return {
      epollCreate: () => n(f.epollCreate(O_CLOEXEC)),
      epollCtl: (epfd, op, fd, event) => n(f.epollCtl(epfd, op, fd, event)),
      epollWait: (epfd, events, maxEvents, timeoutMs) => n(f.epollWait(epfd, events, maxEvents, timeoutMs)),
      epollWaitAsync: (epfd, events, maxEvents, timeoutMs, done) => {
        // errno is per thread: the failing call's errno is lost on the way back, so an error reads as EINTR (retry).
        f.epollWait.async(epfd, events, maxEvents, timeoutMs, (err: unknown, result: unknown) =>
          done(err ? -1 : n(result), err ? 4 : 0));
      },
      splice: (fdIn, fdOut, length, flags) => n(f.splice(fdIn, null, fdOut, null, length, flags)),
      pipe2: (fds, flags) => n(f.pipe2(fds, flags)),
      fcntl: (fd, command, arg) => n(f.fcntl(fd, command, arg)),
      close: (fd) => n(f.close(fd)),
      shutdown: (fd, how) => n(f.shutdown(fd, how)),
      eventfd: (initial, flags) => n(f.eventfd(initial, flags)),
      read: (fd, buffer, length) => n(f.read(fd, buffer, length)),
      write: (fd, buffer, length) => n(f.write(fd, buffer, length)),
      setsockopt: (fd, level, name, value, length) => n(f.setsockopt(fd, level, name, value, length)),
      socket: (domain, type, protocol) => n(f.socket(domain, type, protocol)),
      bind: (fd, address, length) => n(f.bind(fd, address, length)),
      listen: (fd, backlog) => n(f.listen(fd, backlog)),
      errno,
    };
  })();
  return loaded;
}
