// Round robin and ClientIP affinity decided in one place for every relay process. Relay host 0 owns the
// Balancer and answers the other hosts over a local stream socket; an answer is only where to start in the
// endpoint list, so the hosts need not agree on anything but service keys and endpoint ids. A host that
// cannot reach host 0 (starting, restarting, no answer within the timeout) decides alone until it can again.
import net from 'node:net';
import { Balancer, rotate } from './balancer.ts';
import type { BalanceKey, Chooser, Identified } from './balancer.ts';

/** One line of JSON each way. `i` present: a question (answered with {i, r}); absent: "this one worked". */
interface Question {
  readonly i?: number;
  /** service key, affinity timeout, client address */
  readonly s: string;
  readonly a?: number;
  readonly c: string;
  /** endpoint ids (a question) or the endpoint that answered (a report) */
  readonly e: readonly string[];
}

interface Answer {
  readonly i: number;
  readonly r: number;
}

const keyOf = (q: Question): BalanceKey => (q.a === undefined ? { serviceKey: q.s } : { serviceKey: q.s, affinityTimeoutMs: q.a });
const ids = (list: readonly string[]): Identified[] => list.map((id) => ({ id }));

/** Splits a stream into lines of JSON; a line that is not JSON is skipped (it never came from a relay host). */
function onLines(socket: net.Socket, each: (value: unknown) => void): void {
  let rest = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    rest += chunk;
    let nl = rest.indexOf('\n');
    while (nl >= 0) {
      const line = rest.slice(0, nl);
      rest = rest.slice(nl + 1);
      try {
        each(JSON.parse(line));
      } catch {
        // ignore
      }
      nl = rest.indexOf('\n');
    }
  });
}

/** Host 0: answer the other hosts with `balancer` (the one its own relay uses). */
export async function serveDecisions(balancer: Balancer, path: string): Promise<net.Server> {
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    socket.on('error', () => undefined);
    onLines(socket, (value) => {
      const q = value as Question;
      if (typeof q.s !== 'string' || typeof q.c !== 'string' || !Array.isArray(q.e)) return;
      if (q.i === undefined) {
        const [id] = q.e;
        if (id !== undefined) balancer.chosen(keyOf(q), q.c, { id });
        return;
      }
      socket.write(`${JSON.stringify({ i: q.i, r: balancer.start(keyOf(q), ids(q.e), q.c) } satisfies Answer)}\n`);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}

export interface RemoteChooserOptions {
  readonly path: string;
  /** An answer later than this is not waited for: this host decides alone. */
  readonly timeoutMs?: number;
  /** How often to try again to reach host 0. */
  readonly retryMs?: number;
}

interface Waiting {
  resolve(start: number | undefined): void;
  readonly timer: NodeJS.Timeout;
}

/** Hosts 1..n: ask host 0; decide alone while it cannot answer. */
export class RemoteChooser implements Chooser {
  readonly #path: string;
  readonly #timeoutMs: number;
  readonly #retryMs: number;
  readonly #local = new Balancer();
  readonly #waiting = new Map<number, Waiting>();
  #socket: net.Socket | undefined;
  #connected = false;
  #next = 1;
  #closed = false;
  #retry: NodeJS.Timeout | undefined;

  constructor(options: RemoteChooserOptions) {
    this.#path = options.path;
    this.#timeoutMs = options.timeoutMs ?? 1000;
    this.#retryMs = options.retryMs ?? 50;
    this.#connect();
  }

  get connected(): boolean {
    return this.#connected;
  }

  /** Resolves true once host 0 can be asked, false if it cannot within `timeoutMs`. */
  async ready(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.#connected && !this.#closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    return this.#connected;
  }

  #connect(): void {
    if (this.#closed) return;
    const socket = net.connect(this.#path);
    this.#socket = socket;
    socket.setNoDelay(true);
    socket.on('connect', () => (this.#connected = true));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.#connected = false;
      for (const w of this.#waiting.values()) w.resolve(undefined);
      if (this.#closed) return;
      this.#retry = setTimeout(() => this.#connect(), this.#retryMs);
      this.#retry.unref();
    });
    onLines(socket, (value) => {
      const a = value as Answer;
      const w = this.#waiting.get(a.i);
      if (w && typeof a.r === 'number') w.resolve(a.r);
    });
  }

  order<T extends Identified>(route: BalanceKey, endpoints: readonly T[], clientIp: string): T[] | Promise<T[]> {
    // One endpoint: nothing to decide (and no counter anyone could observe).
    if (endpoints.length <= 1 || !this.#connected || !this.#socket) return this.#local.order(route, endpoints, clientIp);
    const socket = this.#socket;
    const i = this.#next++;
    return new Promise<T[]>((resolve) => {
      const timer = setTimeout(() => waiting.resolve(undefined), this.#timeoutMs);
      const waiting: Waiting = {
        timer,
        resolve: (start) => {
          this.#waiting.delete(i);
          clearTimeout(timer);
          resolve(start === undefined ? this.#local.order(route, endpoints, clientIp) : rotate(endpoints, start));
        },
      };
      this.#waiting.set(i, waiting);
      socket.write(`${JSON.stringify({ i, ...question(route, clientIp, endpoints.map((e) => e.id)) })}\n`);
    });
  }

  chosen(route: BalanceKey, clientIp: string, endpoint: Identified): void {
    if (route.affinityTimeoutMs === undefined) return;
    this.#local.chosen(route, clientIp, endpoint);
    if (this.#connected) this.#socket?.write(`${JSON.stringify(question(route, clientIp, [endpoint.id]))}\n`);
  }

  sweep(liveServices: ReadonlySet<string>): void {
    this.#local.sweep(liveServices);
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#retry);
    this.#socket?.destroy();
  }
}

function question(route: BalanceKey, clientIp: string, endpointIds: readonly string[]): Question {
  return {
    s: route.serviceKey,
    c: clientIp,
    e: endpointIds,
    ...(route.affinityTimeoutMs !== undefined ? { a: route.affinityTimeoutMs } : {}),
  };
}
