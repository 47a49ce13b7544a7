// Hands relayed TCP connections to the splice loop (splice-loop.ts): at connect, or in mid-stream once a
// connection proved to be a bulk stream (relay.ts decides). Their descriptors are duplicated, the Node sockets
// closed, and the loop owns the connection to its end. Relaying without copying bytes through JavaScript halves
// the CPU per byte (docs/benchmarks.md). Where the loop cannot run, the relay forwards through Node.
import type net from 'node:net';
import { loadLibc } from './libc.ts';
import type { Libc } from './libc.ts';
import { SpliceLoop } from './splice-loop.ts';

export interface SplicedConnection {
  /** Bytes moved so far: client → upstream (in) and upstream → client (out). */
  bytes(): { in: number; out: number };
  /** Ends the connection (both sockets closed); onClosed follows at once. */
  close(): void;
}

export type OnSplicedClosed = (bytes: { in: number; out: number }, reset: boolean) => void;

const F_DUPFD_CLOEXEC = 1030;
/** The kernel's default limit for an unprivileged pipe; 16 times the default pipe. */
const PIPE_SIZE = 1024 * 1024;

const socketFd = (s: net.Socket): number => {
  // Node keeps the descriptor on its internal handle; there is no public accessor.
  const fd = (s as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === 'number' ? fd : -1;
};

export class SplicePump {
  readonly #libc: Libc;
  readonly #loop: SpliceLoop;
  /** Connection ids are slots: small numbers, reused only after the loop reported the end. */
  readonly #onClosed = new Map<number, OnSplicedClosed>();
  readonly #free: number[] = [];
  #next = 0;
  readonly #wakeOnExit = (): void => this.#loop.wakeUp();

  private constructor(libc: Libc) {
    this.#libc = libc;
    this.#loop = new SpliceLoop(libc, PIPE_SIZE, (id, bytes, reset) => {
      const done = this.#onClosed.get(id);
      this.#onClosed.delete(id);
      this.#free.push(id);
      done?.(bytes, reset);
    });
    // An exiting process waits for the pool's threads, and one may be in epoll_wait: wake it.
    process.once('exit', this.#wakeOnExit);
  }

  /** A running loop; rejects with one line when splice cannot run here. */
  static async start(): Promise<SplicePump> {
    return new SplicePump(await loadLibc());
  }

  /**
   * Takes over a connected client/upstream pair that Node no longer reads and whose write queues are empty.
   * Both Node sockets are closed when this returns a connection;
   * undefined (no descriptor left) leaves them untouched for the caller to relay.
   */
  adopt(client: net.Socket, upstream: net.Socket, onClosed: OnSplicedClosed): SplicedConnection | undefined {
    const a = this.#libc.fcntl(socketFd(client), F_DUPFD_CLOEXEC, 0);
    const b = a < 0 ? -1 : this.#libc.fcntl(socketFd(upstream), F_DUPFD_CLOEXEC, 0);
    if (b < 0) {
      if (a >= 0) this.#libc.close(a);
      return undefined;
    }
    // The caller made sure Node holds no bytes of either: nothing read and unsent, nothing queued to write.
    client.destroy();
    upstream.destroy();
    const id = this.#free.pop() ?? this.#next++;
    this.#onClosed.set(id, onClosed);
    try {
      this.#loop.add(id, a, b);
    } catch {
      // epoll refused the descriptors (out of memory, mostly): the connection is lost, and said so.
      this.#libc.close(a);
      this.#libc.close(b);
      this.#onClosed.delete(id);
      this.#free.push(id);
      onClosed({ in: 0, out: 0 }, true);
    }
    return {
      bytes: () => this.#loop.bytes(id),
      close: () => {
        if (this.#onClosed.get(id) === onClosed) this.#loop.close(id);
      },
    };
  }

  /** Ends every connection and the loop. */
  async stop(): Promise<void> {
    await this.#loop.stop();
    process.off('exit', this.#wakeOnExit);
  }
}
