// The splice loop of a relay: it owns the relayed TCP connections that splice.ts hands over (both sockets, as
// duplicated descriptors) and moves their bytes socket → pipe → socket with splice(2), so they never enter this
// process's memory. One epoll set, edge-triggered. While connections are busy the loop polls it on this thread
// between turns of Node's event loop; when all is quiet it waits in epoll_wait on a thread of the pool, so that
// neither a busy thread nor a second JavaScript thread (~20 MiB each) is spent on it.
import { O_CLOEXEC, O_NONBLOCK, SOL_SOCKET } from './libc.ts';
import type { Libc } from './libc.ts';

export type OnLoopClosed = (id: number, bytes: { in: number; out: number }, reset: boolean) => void;

const EPOLLIN = 0x1;
const EPOLLOUT = 0x4;
const EPOLLERR = 0x8;
const EPOLLRDHUP = 0x2000;
const EPOLLET = 0x80000000;
const EPOLL_CTL_ADD = 1;
const EPOLL_CTL_DEL = 2;
const SPLICE_FLAGS = 0x1 | 0x2; // SPLICE_F_MOVE | SPLICE_F_NONBLOCK
const SPLICE_F_MORE = 0x4;
const EAGAIN = 11;
const F_SETPIPE_SZ = 1031;
const SO_LINGER = 13;
const SHUT_WR = 1;
const EFD_FLAGS = 0o2000000 | 0o4000; // EFD_CLOEXEC | EFD_NONBLOCK
/** struct epoll_event is packed on x86-64 (12 bytes) and naturally aligned elsewhere (16). */
const EVENT_SIZE = process.arch === 'x64' ? 12 : 16;
const DATA_OFFSET = process.arch === 'x64' ? 4 : 8;
const MAX_EVENTS = 256;
/** Splices per direction before other connections get their turn. */
const BURST = 16;
/** Polls per turn of the event loop while busy; then accepts and connects get their turn. */
const POLLS_PER_TURN = 32;
/** Empty pipes kept for the next busy direction; a direction holds a pipe only while bytes are in flight. */
const SPARE_PIPES = 32;
const WAKE = 0xffffffff;
/** What wakeUp() adds to the eventfd's counter: 1, as the 8 bytes of a native-endian uint64. */
const WAKE_COUNT = new Uint8Array(new BigUint64Array([1n]).buffer);
/** The pool thread's wait returns at least this often, so that a process exit never waits long for it. */
const IDLE_WAIT_MS = 1000;

class Direction {
  pipeRead = -1;
  pipeWrite = -1;
  /** Bytes in the pipe, read from `from` and not yet written to `to`. */
  pending = 0;
  /** Bytes written to `to` so far. */
  moved = 0;
  eof = false;
  done = false;
  readonly from: number;
  readonly to: number;
  constructor(from: number, to: number) {
    this.from = from;
    this.to = to;
  }
}

interface Connection {
  readonly id: number;
  readonly client: number;
  readonly upstream: number;
  readonly up: Direction;
  readonly down: Direction;
  failed: boolean;
}

export class SpliceLoop {
  readonly #libc: Libc;
  readonly #pipeSize: number;
  readonly #onClosed: OnLoopClosed;
  readonly #epfd: number;
  readonly #wakeFd: number;
  readonly #event = new Uint8Array(EVENT_SIZE);
  /** Filled by the pool thread while a wait is out; only read once it is back. */
  readonly #waitEvents = new Uint8Array(EVENT_SIZE * MAX_EVENTS);
  readonly #pollEvents = new Uint8Array(EVENT_SIZE * MAX_EVENTS);
  readonly #live = new Map<number, Connection>();
  readonly #spare: [number, number][] = [];
  readonly #pipeFds = new Int32Array(2);
  /** The eventfd's counter, read back (and so reset) when the wake-up arrives. */
  readonly #wakeRead = new Uint8Array(8);
  /** Connections that stopped at BURST with bytes left: served again before the loop sleeps. */
  #again = new Set<Connection>();
  #waiting = false;
  #scheduled = false;
  #stopped: (() => void) | undefined;
  #closed = false;

  constructor(libc: Libc, pipeSize: number, onClosed: OnLoopClosed) {
    this.#libc = libc;
    this.#pipeSize = pipeSize;
    this.#onClosed = onClosed;
    this.#epfd = libc.epollCreate();
    if (this.#epfd < 0) throw new Error(`epoll_create1 failed (errno ${libc.errno()})`);
    this.#wakeFd = libc.eventfd(0, EFD_FLAGS);
    if (this.#wakeFd < 0) {
      libc.close(this.#epfd);
      throw new Error(`eventfd failed (errno ${libc.errno()})`);
    }
    this.#watch(this.#wakeFd, WAKE, EPOLLIN);
    this.#wait();
  }

  /** Takes two connected, non-blocking socket descriptors; from now on the loop closes them. */
  add(id: number, client: number, upstream: number): void {
    const c: Connection = { id, client, upstream, failed: false,
      up: new Direction(client, upstream), down: new Direction(upstream, client) };
    this.#live.set(id, c);
    this.#watch(client, 2 * id, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET);
    this.#watch(upstream, 2 * id + 1, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET);
    // Bytes may be waiting already (a client that spoke first).
    this.#serve(c);
    this.#poll();
  }

  /** Ends a connection: both sockets closed (unread bytes make the kernel send a reset). */
  close(id: number): void {
    const c = this.#live.get(id);
    if (c) this.#end(c, false);
  }

  bytes(id: number): { in: number; out: number } {
    const c = this.#live.get(id);
    return { in: c?.up.moved ?? 0, out: c?.down.moved ?? 0 };
  }

  /** Ends every connection and releases the loop's descriptors once the pool thread is back. */
  stop(): Promise<void> {
    for (const c of [...this.#live.values()]) this.#end(c, false);
    return new Promise<void>((resolve) => {
      this.#stopped = resolve;
      if (this.#waiting) this.wakeUp();
      else this.#release();
    });
  }

  /** Makes a wait in progress return now (a process about to exit must not wait for the pool thread). */
  wakeUp(): void {
    if (!this.#closed) this.#libc.write(this.#wakeFd, WAKE_COUNT, 8);
  }

  #release(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const [r, w] of this.#spare.splice(0)) this.#closePipe(r, w);
    this.#libc.close(this.#wakeFd);
    this.#libc.close(this.#epfd);
    this.#stopped?.();
  }

  /** Quiet: wait on a pool thread; whatever it reports is served here, then the loop polls while busy. */
  #wait(): void {
    if (this.#waiting || this.#closed) return;
    this.#waiting = true;
    this.#libc.epollWaitAsync(this.#epfd, this.#waitEvents, MAX_EVENTS, IDLE_WAIT_MS, (n) => {
      this.#waiting = false;
      if (this.#stopped) return this.#release();
      this.#handle(this.#waitEvents, n, this.#again);
      this.#poll();
    });
  }

  /** Busy: serve what is due and poll again without sleeping, a bounded number of times per event-loop turn. */
  #poll(): void {
    if (this.#waiting || this.#closed || this.#scheduled) return;
    for (let i = 0; i < POLLS_PER_TURN; i++) {
      const due = this.#again;
      this.#again = new Set();
      for (const c of due) this.#serve(c);
      const n = this.#libc.epollWait(this.#epfd, this.#pollEvents, MAX_EVENTS, 0);
      if (n <= 0 && this.#again.size === 0) return this.#wait();
      this.#handle(this.#pollEvents, n, this.#again);
    }
    // Still busy: let Node accept and connect, then go on.
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#poll();
    });
  }

  /** Marks the connections of `n` events as due. */
  #handle(events: Uint8Array, n: number, due: Set<Connection>): void {
    const view = new DataView(events.buffer);
    for (let i = 0; i < n; i++) {
      const flags = view.getUint32(i * EVENT_SIZE, true);
      const data = view.getUint32(i * EVENT_SIZE + DATA_OFFSET, true);
      if (data === WAKE) {
        this.#libc.read(this.#wakeFd, this.#wakeRead, 8);
        continue;
      }
      const c = this.#live.get(data >>> 1);
      if (!c) continue;
      if (flags & EPOLLERR) c.failed = true;
      due.add(c);
    }
  }

  #watch(fd: number, data: number, flags: number): void {
    const view = new DataView(this.#event.buffer);
    view.setUint32(0, flags >>> 0, true);
    view.setUint32(DATA_OFFSET, data, true);
    view.setUint32(DATA_OFFSET + 4, 0, true);
    if (this.#libc.epollCtl(this.#epfd, EPOLL_CTL_ADD, fd, this.#event) < 0) {
      throw new Error(`epoll_ctl(ADD, ${fd}) failed (errno ${this.#libc.errno()})`);
    }
  }

  #serve(c: Connection): void {
    if (this.#live.get(c.id) !== c) return;
    this.#pump(c, c.up);
    if (this.#live.get(c.id) === c) this.#pump(c, c.down);
    if (this.#live.get(c.id) !== c) return;
    // An error on either socket (a reset, mostly) resets the other one, once whatever was readable has moved.
    if (c.failed) this.#end(c, true);
    else if (c.up.done && c.down.done) this.#end(c, false);
  }

  /**
   * Moves what `d.from` has to `d.to`, until one of them would block, BURST splices, or the end of the stream.
   * It reads until the source is empty or the pipe full before it writes: the write then knows whether more
   * follows (SPLICE_F_MORE lets the kernel fill whole segments; without it a partial segment leaves at once).
   */
  #pump(c: Connection, d: Direction): void {
    const libc = this.#libc;
    const size = this.#pipeSize;
    let drained = false;
    for (let i = 0; i < BURST && !d.done; i++) {
      if (!drained && !d.eof && d.pending < size) {
        if (d.pipeRead < 0 && !this.#takePipe(d)) return this.#end(c, true);
        const got = libc.splice(d.from, d.pipeWrite, size - d.pending, SPLICE_FLAGS);
        if (got < 0) {
          if (libc.errno() !== EAGAIN) return this.#end(c, true);
          drained = true;
        } else if (got === 0) d.eof = true;
        else d.pending += got;
        continue;
      }
      if (d.pending > 0) {
        const more = !drained && !d.eof ? SPLICE_F_MORE : 0;
        const moved = libc.splice(d.pipeRead, d.to, d.pending, SPLICE_FLAGS | more);
        if (moved < 0) return libc.errno() === EAGAIN ? undefined : this.#end(c, true);
        d.pending -= moved;
        d.moved += moved;
        continue;
      }
      if (d.eof) {
        // Half-close: the peer's end of stream travels on, the other direction keeps going.
        libc.shutdown(d.to, SHUT_WR);
        d.done = true;
      }
      this.#releasePipe(d);
      return;
    }
    if (!d.done) this.#again.add(c);
  }

  #takePipe(d: Direction): boolean {
    const spare = this.#spare.pop();
    if (spare) {
      [d.pipeRead, d.pipeWrite] = spare;
      return true;
    }
    if (this.#libc.pipe2(this.#pipeFds, O_NONBLOCK | O_CLOEXEC) < 0) return false;
    d.pipeRead = this.#pipeFds[0] ?? -1;
    d.pipeWrite = this.#pipeFds[1] ?? -1;
    // A bigger pipe moves more per call; when the system refuses (its pipe-size limits), the default is fine.
    this.#libc.fcntl(d.pipeWrite, F_SETPIPE_SZ, this.#pipeSize);
    return true;
  }

  /** An empty pipe goes back to the spares; one that still holds bytes (a connection cut short) is closed. */
  #releasePipe(d: Direction): void {
    if (d.pipeRead < 0) return;
    if (d.pending === 0 && this.#spare.length < SPARE_PIPES) this.#spare.push([d.pipeRead, d.pipeWrite]);
    else this.#closePipe(d.pipeRead, d.pipeWrite);
    d.pipeRead = d.pipeWrite = -1;
    d.pending = 0;
  }

  #closePipe(r: number, w: number): void {
    this.#libc.close(r);
    this.#libc.close(w);
  }

  /** Closes both sockets (with a reset: SO_LINGER 0) and reports the connection's end. */
  #end(c: Connection, reset: boolean): void {
    this.#live.delete(c.id);
    this.#again.delete(c);
    this.#releasePipe(c.up);
    this.#releasePipe(c.down);
    const linger = new Int32Array([1, 0]);
    for (const fd of [c.client, c.upstream]) {
      this.#libc.epollCtl(this.#epfd, EPOLL_CTL_DEL, fd, null);
      if (reset) this.#libc.setsockopt(fd, SOL_SOCKET, SO_LINGER, linger, 8);
      this.#libc.close(fd);
    }
    this.#onClosed(c.id, { in: c.up.moved, out: c.down.moved }, reset);
  }
}
