// The relay of one process: listening sockets for the listener table, TCP connections and UDP flows to the
// endpoints. Everything here is sockets; the choices (which endpoints, which order) come from pure modules.
import dgram from 'node:dgram';
import net from 'node:net';
import type { UserspaceConfig } from './config.ts';
import { Balancer } from './balancer.ts';
import type { Chooser } from './balancer.ts';
import { classifyClient, decide } from './decide.ts';
import { freebindSocket } from './freebind.ts';
import { loadLibc } from './libc.ts';
import type { Libc } from './libc.ts';
import { RateLimitedLog } from './rate-log.ts';
import type { LogSink } from './rate-log.ts';
import { SplicePump } from './splice.ts';
import type { SplicedConnection } from './splice.ts';
import { emptyServiceStats } from './stats.ts';
import type { RelayStats, ServiceStats } from './stats.ts';
import type { Listener, ListenerRoute, ListenerTable, RelayEndpoint } from './table.ts';
import { firstLineOf } from '../../src/util/errors.ts';
import { isLoopback } from '../../src/util/ip.ts';

export interface RelayOptions {
  readonly config: UserspaceConfig;
  readonly log: LogSink;
  /** Share listening ports with the other relay processes (SO_REUSEPORT). */
  readonly reusePort: boolean;
  /** This relay's share of config.maxConnections. */
  readonly maxConnections: number;
  readonly now?: () => number;
  /** Where endpoints are chosen; default a Balancer of this relay (relay processes share one: decider.ts). */
  readonly chooser?: Chooser;
}

export interface ApplyInput {
  readonly table: ListenerTable;
  /** Every address of this node (a client from one of them is internal). */
  readonly nodeAddresses: readonly string[];
  /**
   * Service addresses the node does not have yet: they are added after this apply, so their listeners bind
   * before the address exists (IP_FREEBIND) and no client ever finds the address without a listener.
   */
  readonly pendingAddresses?: readonly string[];
}

/** An apply opens and updates listeners; listeners that left the table stay open until prune(). */
export interface ApplyResult {
  opened: number;
  updated: number;
  /** Listeners open that the table no longer has (closed by the next prune). */
  stale: number;
  failed: { key: string; error: string }[];
}

export interface PruneResult {
  closed: number;
}

interface TcpConnection {
  readonly client: net.Socket;
  readonly listener: ListenerState;
  upstream?: net.Socket;
  endpointId?: string;
  drainTimer?: NodeJS.Timeout;
  /** Set once the splice loop owns the connection: `client` and `upstream` are then closed Node sockets. */
  spliced?: SplicedConnection;
  /** Bytes that came in full-size reads: past config.spliceAfterBytes the connection goes to the splice loop. */
  bulkBytes: number;
  handingOver?: boolean;
}

interface UdpFlow {
  readonly upstream: dgram.Socket;
  readonly endpointId: string;
  readonly serviceKey: string;
  lastActive: number;
  /** Datagrams that arrived before the upstream socket was connected. */
  pending: Buffer[] | undefined;
}

interface ListenerState {
  listener: Listener;
  tcp?: net.Server;
  udp?: dgram.Socket;
  readonly connections: Set<TcpConnection>;
  readonly flows: Map<string, UdpFlow>;
}

const MAX_PENDING_DATAGRAMS = 64;
const LISTEN_BACKLOG = 4096;
/** Listeners opened or compared between two turns of the event loop during an apply. */
const APPLY_CHUNK = 100;
const errorText = (err: unknown): string =>
  err instanceof Error ? ((err as NodeJS.ErrnoException).code ?? err.message) : String(err);

/** Node reads at most this much at once: a read this long means more was waiting (a bulk stream). */
const FULL_READ = 64 * 1024;
/** While a connection is handed to the splice loop, how often to check that Node's write queues emptied. */
const FLUSH_POLL_MS = 2;

/**
 * Bytes from one socket to the other with backpressure, and the end of the stream after them (half-close).
 * What pipe() does, with less work per chunk: no per-chunk events beyond 'data', no pipe bookkeeping.
 * `onFullRead` sees every full-size read. Returns a function that stops forwarding (listeners removed).
 */
function forward(from: net.Socket, to: net.Socket, onFullRead: (bytes: number) => void): () => void {
  const onData = (chunk: Buffer): void => {
    if (!to.write(chunk)) from.pause();
    if (chunk.length >= FULL_READ) onFullRead(chunk.length);
  };
  const onDrain = (): void => void from.resume();
  const onEnd = (): void => void to.end();
  from.on('data', onData);
  to.on('drain', onDrain);
  from.once('end', onEnd);
  // An accepted client is paused (pauseOnConnect) until its upstream connects.
  from.resume();
  return () => {
    from.off('data', onData);
    to.off('drain', onDrain);
    from.off('end', onEnd);
  };
}

/** Stops Node reading from a socket at once (pause() alone lets it fill its buffer first). */
function stopReading(s: net.Socket): void {
  s.pause();
  // Node's handle keeps a `reading` flag next to libuv's state: cleared too, so that a resume() reads again.
  const handle = (s as unknown as { _handle?: { reading?: boolean; readStop?(): number } })._handle;
  if (handle?.readStop) {
    handle.readStop();
    handle.reading = false;
  }
}

export class Relay {
  readonly #config: UserspaceConfig;
  readonly #reusePort: boolean;
  readonly #max: number;
  readonly #now: () => number;
  readonly #log: RateLimitedLog;
  readonly #sink: LogSink;
  readonly #balancer: Chooser;
  readonly #listeners = new Map<string, ListenerState>();
  /** Keys of the last applied table: prune() closes every other listener. */
  #wanted = new Set<string>();
  /** libc for IP_FREEBIND, loaded at the first listener that needs it; undefined where it cannot load. */
  #libc: Promise<Libc | undefined> | undefined;
  /** Counters of finished connections (live ones are added when stats() is read). */
  readonly #stats = new Map<string, ServiceStats>();
  #active = 0;
  #nodeAddresses = new Set<string>();
  #internalCidrs: readonly string[] = [];
  #queue: Promise<unknown>;
  #closed: Promise<void> | undefined;
  #splice: SplicePump | undefined;
  #spliceStarting: Promise<void> | undefined;
  readonly #sweeper: NodeJS.Timeout;

  constructor(options: RelayOptions) {
    this.#config = options.config;
    this.#reusePort = options.reusePort;
    this.#max = options.maxConnections;
    this.#now = options.now ?? Date.now;
    this.#sink = options.log;
    this.#log = new RateLimitedLog({ sink: options.log, burst: options.config.logBurst, windowMs: options.config.logWindowMs });
    this.#balancer = options.chooser ?? new Balancer({ now: this.#now });
    const every = Math.max(50, Math.min(1000, Math.floor(options.config.udpIdleTimeoutMs / 4)));
    this.#sweeper = setInterval(() => this.#sweep(), every);
    this.#sweeper.unref();
    // Splicing at connect: listeners open (first apply) once the loop runs, or is known not to. Splicing bulk
    // connections only: the loop (and koffi, ~4 MiB) is loaded at the first bulk connection.
    const eager = options.config.splice && options.config.spliceAfterBytes === 0;
    this.#queue = eager ? this.#startSplice() : Promise.resolve();
  }

  /** Starts the splice loop once; connections that need it meanwhile stay with Node for now. */
  #startSplice(): Promise<void> {
    this.#spliceStarting ??= SplicePump.start().then(
      (pump) => void (this.#closed ? pump.stop() : (this.#splice = pump)),
      (err: unknown) => this.#sink('warn', { err: firstLineOf(err) }, 'splice is not available; TCP is relayed through Node'),
    );
    return this.#spliceStarting;
  }

  /** Open and update the listeners of `input.table`; applies and prunes run one after another. */
  apply(input: ApplyInput): Promise<ApplyResult> {
    return this.#enqueue(() => this.#apply(input));
  }

  /** Close the listeners (and their connections) that the last applied table does not have. */
  prune(): Promise<PruneResult> {
    return this.#enqueue(() => this.#prune());
  }

  #enqueue<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(work);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  stats(): RelayStats {
    const services: Record<string, ServiceStats> = {};
    for (const [key, s] of this.#stats) services[key] = { ...s };
    for (const state of this.#listeners.values()) {
      const s = (services[state.listener.route.serviceKey] ??= emptyServiceStats());
      for (const c of state.connections) {
        const bytes = c.spliced?.bytes() ?? { in: c.client.bytesRead, out: c.client.bytesWritten };
        s.bytesIn += bytes.in;
        s.bytesOut += bytes.out;
      }
    }
    return { listeners: this.#listeners.size, active: this.#active, services };
  }

  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    clearInterval(this.#sweeper);
    await this.#queue;
    await Promise.all([...this.#listeners.values()].map((s) => this.#closeListener(s)));
    this.#listeners.clear();
    await this.#spliceStarting;
    await this.#splice?.stop();
  }

  async #apply(input: ApplyInput): Promise<ApplyResult> {
    this.#nodeAddresses = new Set(input.nodeAddresses);
    this.#internalCidrs = input.table.internalCidrs;
    const result: ApplyResult = { opened: 0, updated: 0, stale: 0, failed: [] };
    const wanted = new Map(input.table.listeners.map((l) => [l.key, l]));
    this.#wanted = new Set(wanted.keys());
    const pending = new Set(input.pendingAddresses ?? []);
    const opening: Promise<void>[] = [];
    let work = 0;
    for (const listener of wanted.values()) {
      // A listener joins its SO_REUSEPORT group (and takes its share of new connections) when it is bound, but
      // this process accepts only between turns of its event loop: give it turns while opening thousands.
      if (++work % APPLY_CHUNK === 0) await new Promise<void>((resolve) => setImmediate(resolve));
      const state = this.#listeners.get(listener.key);
      if (!state) {
        opening.push(
          this.#open(listener, pending.has(listener.ip)).then(
            () => void result.opened++,
            (err: unknown) => void result.failed.push({ key: listener.key, error: errorText(err) }),
          ),
        );
      } else if (JSON.stringify(state.listener.route) !== JSON.stringify(listener.route)) {
        this.#updateRoute(state, listener);
        result.updated++;
      } else {
        state.listener = listener;
      }
    }
    await Promise.all(opening);
    for (const key of this.#listeners.keys()) if (!wanted.has(key)) result.stale++;
    return result;
  }

  async #prune(): Promise<PruneResult> {
    const closing: Promise<void>[] = [];
    for (const [key, state] of this.#listeners) {
      if (this.#wanted.has(key)) continue;
      this.#listeners.delete(key);
      closing.push(this.#closeListener(state));
    }
    await Promise.all(closing);
    const liveServices = new Set([...this.#listeners.values()].map((s) => s.listener.route.serviceKey));
    for (const key of this.#stats.keys()) if (!liveServices.has(key)) this.#stats.delete(key);
    return { closed: closing.length };
  }

  /** libc for IP_FREEBIND; where it cannot load, one warning, and listeners wait for their address instead. */
  #freebindLibc(): Promise<Libc | undefined> {
    this.#libc ??= loadLibc().catch((err: unknown) => {
      this.#sink('warn', { err: firstLineOf(err) },
        'cannot bind before a service address exists (IP_FREEBIND); new addresses get their listeners after they are added');
      return undefined;
    });
    return this.#libc;
  }

  /** A descriptor bound with IP_FREEBIND when the listener's address is not on the node yet (and libc loads). */
  async #freebindFd(listener: Listener, beforeAddress: boolean): Promise<number | undefined> {
    if (!beforeAddress || !this.#config.freebind) return undefined;
    const libc = await this.#freebindLibc();
    if (!libc) return undefined;
    return freebindSocket(libc, { protocol: listener.protocol === 'TCP' ? 'TCP' : 'UDP', ip: listener.ip, port: listener.port,
      reusePort: this.#reusePort, backlog: LISTEN_BACKLOG });
  }

  async #open(listener: Listener, beforeAddress: boolean): Promise<void> {
    const state: ListenerState = { listener, connections: new Set(), flows: new Map() };
    const fd = await this.#freebindFd(listener, beforeAddress);
    return new Promise<void>((resolve, reject) => {
      if (listener.protocol === 'TCP') {
        const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true });
        server.on('connection', (socket) => this.#onConnection(state, socket));
        server.once('error', reject);
        const where = fd === undefined
          ? { host: listener.ip, port: listener.port, reusePort: this.#reusePort, backlog: LISTEN_BACKLOG }
          : { fd, backlog: LISTEN_BACKLOG };
        server.listen(where, () => {
          server.off('error', reject);
          server.on('error', (err) => this.#sink('error', { listener: listener.key, err: errorText(err) }, 'listener failed'));
          state.tcp = server;
          this.#listeners.set(listener.key, state);
          resolve();
        });
      } else {
        const socket = dgram.createSocket({ type: listener.family === 'IPv4' ? 'udp4' : 'udp6', reusePort: this.#reusePort });
        socket.on('message', (msg, rinfo) => this.#onDatagram(state, msg, rinfo));
        socket.once('error', reject);
        socket.bind(fd === undefined ? { address: listener.ip, port: listener.port } : { fd }, () => {
          socket.off('error', reject);
          socket.on('error', (err) => this.#sink('error', { listener: listener.key, err: errorText(err) }, 'listener failed'));
          state.udp = socket;
          this.#listeners.set(listener.key, state);
          resolve();
        });
      }
    });
  }

  async #closeListener(state: ListenerState): Promise<void> {
    for (const c of state.connections) this.#destroy(c);
    for (const key of [...state.flows.keys()]) this.#closeFlow(state, key);
    if (state.tcp) {
      const server = state.tcp;
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    if (state.udp) {
      const socket = state.udp;
      await new Promise<void>((resolve) => socket.close(() => resolve()));
    }
  }

  /** New endpoints for a listener: new clients use them; clients of endpoints that left drain or go. */
  #updateRoute(state: ListenerState, listener: Listener): void {
    state.listener = listener;
    const ids = new Set([...listener.route.internal, ...listener.route.external].map((e) => e.id));
    for (const [key, flow] of state.flows) if (!ids.has(flow.endpointId)) this.#closeFlow(state, key);
    const grace = this.#config.drainGraceMs;
    if (grace === undefined) return;
    for (const c of state.connections) {
      if (c.endpointId === undefined || ids.has(c.endpointId) || c.drainTimer) continue;
      c.drainTimer = setTimeout(() => {
        const now = state.listener.route;
        if (c.endpointId !== undefined && [...now.internal, ...now.external].some((e) => e.id === c.endpointId)) {
          c.drainTimer = undefined;
          return;
        }
        this.#destroy(c);
      }, grace);
      c.drainTimer.unref();
    }
  }

  #statsOf(serviceKey: string): ServiceStats {
    let s = this.#stats.get(serviceKey);
    if (!s) this.#stats.set(serviceKey, (s = emptyServiceStats()));
    return s;
  }

  #decide(route: ListenerRoute, clientIp: string): ReturnType<typeof decide> {
    const isNodeAddress = (ip: string): boolean => isLoopback(ip) || this.#nodeAddresses.has(ip);
    return decide(route, clientIp, classifyClient(clientIp, { internalCidrs: this.#internalCidrs, isNodeAddress }));
  }

  #refuse(listener: Listener, clientIp: string, reason: string): void {
    this.#statsOf(listener.route.serviceKey).refused++;
    this.#log.log('warn', `${reason}|${listener.route.serviceKey}`,
      { service: listener.route.serviceKey, listener: listener.key, client: clientIp, reason }, 'connection refused');
  }

  // ---- TCP ----

  #onConnection(state: ListenerState, client: net.Socket): void {
    const listener = state.listener;
    const clientIp = client.remoteAddress ?? '';
    client.on('error', () => undefined);
    if (this.#active >= this.#max) {
      this.#refuse(listener, clientIp, 'connection limit reached');
      client.resetAndDestroy();
      return;
    }
    const decision = this.#decide(listener.route, clientIp);
    if (decision.kind !== 'forward') {
      this.#refuse(listener, clientIp, decision.kind === 'reject' ? 'no endpoints' : 'not allowed for this client');
      if (decision.kind === 'reject') client.resetAndDestroy();
      // A drop closes without a reset: read what the client sent first (close() with unread bytes sends a reset),
      // and give up on a client that never closes its side.
      else client.setTimeout(this.#config.connectTimeoutMs, () => client.destroy()).resume().end();
      return;
    }
    const conn: TcpConnection = { client, listener: state, bulkBytes: 0 };
    const onClose = (hadError: boolean): void => {
      if (!conn.spliced) this.#clientClosed(conn, hadError);
    };
    state.connections.add(conn);
    this.#active++;
    this.#statsOf(listener.route.serviceKey).active++;
    client.once('close', onClose);
    const attempts = this.#config.maxConnectAttempts;
    const order = this.#balancer.order(listener.route, decision.endpoints, clientIp);
    // The client stays paused (pauseOnConnect) while another relay process decides.
    if (Array.isArray(order)) this.#connect(conn, order.slice(0, attempts), [], clientIp);
    else void order.then((o) => (conn.client.destroyed ? undefined : this.#connect(conn, o.slice(0, attempts), [], clientIp)));
  }

  #connect(conn: TcpConnection, candidates: RelayEndpoint[], errors: string[], clientIp: string): void {
    const route = conn.listener.listener.route;
    const endpoint = candidates[errors.length];
    if (!endpoint) {
      this.#statsOf(route.serviceKey).failed++;
      this.#log.log('warn', `failed|${route.serviceKey}`,
        { service: route.serviceKey, client: clientIp, tried: errors }, 'no endpoint answered; connection reset');
      conn.client.resetAndDestroy();
      return;
    }
    const upstream = net.connect({ host: endpoint.ip, port: endpoint.port, allowHalfOpen: true, noDelay: true });
    conn.upstream = upstream;
    conn.endpointId = endpoint.id;
    const timer = setTimeout(() => upstream.destroy(new Error('connect timeout')), this.#config.connectTimeoutMs);
    const failed = (err: Error): void => {
      clearTimeout(timer);
      if (conn.client.destroyed) return;
      errors.push(`${endpoint.id}: ${errorText(err)}`);
      this.#connect(conn, candidates, errors, clientIp);
    };
    upstream.once('error', failed);
    upstream.once('connect', () => {
      clearTimeout(timer);
      upstream.off('error', failed);
      upstream.on('error', () => undefined);
      if (conn.client.destroyed) {
        upstream.destroy();
        return;
      }
      this.#balancer.chosen(route, clientIp, endpoint);
      this.#statsOf(route.serviceKey).relayed++;
      if (this.#splice && this.#config.spliceAfterBytes === 0 && this.#handOver(conn, upstream)) return;
      // A reset from the backend becomes a reset to the client; a clean close travels through the pipes.
      upstream.once('close', (hadError) => {
        if (hadError && !conn.client.destroyed) conn.client.resetAndDestroy();
      });
      const stops: (() => void)[] = [];
      const onFullRead = (bytes: number): void => {
        conn.bulkBytes += bytes;
        if (!this.#config.splice || conn.bulkBytes < this.#config.spliceAfterBytes) return;
        if (this.#splice) this.#promote(conn, upstream, stops);
        else void this.#startSplice();
      };
      stops.push(forward(conn.client, upstream, onFullRead), forward(upstream, conn.client, onFullRead));
    });
  }

  /**
   * A bulk connection moves from Node's sockets to the splice loop: Node stops reading both sockets, its write
   * queues empty into the kernel, and then the loop takes both descriptors. Small request/response traffic stays
   * with Node, which answers a readable socket without the loop's hand-off between threads.
   */
  #promote(conn: TcpConnection, upstream: net.Socket, stops: readonly (() => void)[]): void {
    const { client } = conn;
    const open = (s: net.Socket): boolean => !s.destroyed && !s.readableEnded && !s.writableEnded;
    // Only a connection open both ways with nothing buffered unread; otherwise a later full read tries again.
    if (conn.handingOver || !open(client) || !open(upstream) || client.readableLength > 0 || upstream.readableLength > 0) return;
    conn.handingOver = true;
    for (const stop of stops) stop();
    stopReading(client);
    stopReading(upstream);
    const flushed = (): void => {
      if (client.destroyed || upstream.destroyed) return; // an error closed it meanwhile; the close handlers ran
      if (client.writableLength > 0 || upstream.writableLength > 0) return void setTimeout(flushed, FLUSH_POLL_MS);
      const s = this.#statsOf(conn.listener.listener.route.serviceKey);
      const bytesIn = client.bytesRead;
      const bytesOut = client.bytesWritten;
      if (!this.#handOver(conn, upstream)) {
        // No descriptor for the loop: Node goes on relaying.
        forward(client, upstream, () => undefined);
        forward(upstream, client, () => undefined);
        return;
      }
      // What Node relayed before counts now; the loop counts the rest.
      s.bytesIn += bytesIn;
      s.bytesOut += bytesOut;
    };
    flushed();
  }

  /** The splice loop takes the connection when it can; the Node sockets are closed then. */
  #handOver(conn: TcpConnection, upstream: net.Socket): boolean {
    const spliced = this.#splice?.adopt(conn.client, upstream, (bytes) => {
      clearTimeout(conn.drainTimer);
      this.#ended(conn, bytes.in, bytes.out);
    });
    if (!spliced) return false;
    conn.spliced = spliced;
    this.#statsOf(conn.listener.listener.route.serviceKey).spliced++;
    return true;
  }

  #destroy(c: TcpConnection): void {
    if (c.spliced) return c.spliced.close();
    c.upstream?.destroy();
    c.client.destroy();
  }

  #clientClosed(conn: TcpConnection, hadError: boolean): void {
    const { client, upstream } = conn;
    clearTimeout(conn.drainTimer);
    this.#ended(conn, client.bytesRead, client.bytesWritten);
    if (!upstream || upstream.destroyed) return;
    if (hadError) upstream.resetAndDestroy();
    // A clean close: the upstream was ended by the pipe and closes once its queued bytes are written.
    else if (upstream.connecting) upstream.destroy();
  }

  #ended(conn: TcpConnection, bytesIn: number, bytesOut: number): void {
    conn.listener.connections.delete(conn);
    this.#active--;
    const s = this.#statsOf(conn.listener.listener.route.serviceKey);
    s.active--;
    s.bytesIn += bytesIn;
    s.bytesOut += bytesOut;
  }

  // ---- UDP ----

  #onDatagram(state: ListenerState, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const key = `${rinfo.address}|${rinfo.port}`;
    const flow = state.flows.get(key) ?? this.#openFlow(state, key, rinfo);
    if (!flow) return;
    flow.lastActive = this.#now();
    this.#statsOf(flow.serviceKey).bytesIn += msg.length;
    if (flow.pending) {
      if (flow.pending.length < MAX_PENDING_DATAGRAMS) flow.pending.push(msg);
    } else flow.upstream.send(msg);
  }

  #openFlow(state: ListenerState, key: string, rinfo: dgram.RemoteInfo): UdpFlow | undefined {
    const listener = state.listener;
    if (this.#active >= this.#max) {
      this.#refuse(listener, rinfo.address, 'connection limit reached');
      return undefined;
    }
    const decision = this.#decide(listener.route, rinfo.address);
    if (decision.kind !== 'forward') {
      this.#refuse(listener, rinfo.address, decision.kind === 'reject' ? 'no endpoints' : 'not allowed for this client');
      return undefined;
    }
    // UDP listeners live in relay host 0 only, whose chooser answers at once.
    const order = this.#balancer.order(listener.route, decision.endpoints, rinfo.address);
    const [endpoint] = Array.isArray(order) ? order : [];
    if (!endpoint) return undefined;
    this.#balancer.chosen(listener.route, rinfo.address, endpoint);
    const serviceKey = listener.route.serviceKey;
    const upstream = dgram.createSocket(net.isIPv6(endpoint.ip) ? 'udp6' : 'udp4');
    const flow: UdpFlow = { upstream, endpointId: endpoint.id, serviceKey, lastActive: this.#now(), pending: [] };
    state.flows.set(key, flow);
    this.#active++;
    const s = this.#statsOf(serviceKey);
    s.active++;
    s.relayed++;
    upstream.on('error', (err) => {
      this.#log.log('warn', `udp|${serviceKey}`,
        { service: serviceKey, client: rinfo.address, endpoint: endpoint.id, err: errorText(err) }, 'UDP flow failed');
      if (state.flows.get(key) === flow) this.#closeFlow(state, key);
    });
    // Replies leave through the listening socket, so the client sees them come from the service address.
    upstream.on('message', (reply) => {
      flow.lastActive = this.#now();
      this.#statsOf(serviceKey).bytesOut += reply.length;
      state.udp?.send(reply, rinfo.port, rinfo.address);
    });
    upstream.connect(endpoint.port, endpoint.ip, () => {
      const pending = flow.pending ?? [];
      flow.pending = undefined;
      for (const m of pending) upstream.send(m);
    });
    return flow;
  }

  #closeFlow(state: ListenerState, key: string): void {
    const flow = state.flows.get(key);
    if (!flow) return;
    state.flows.delete(key);
    this.#active--;
    this.#statsOf(flow.serviceKey).active--;
    try {
      flow.upstream.close();
    } catch {
      // already closed after an error
    }
  }

  #sweep(): void {
    const idleBefore = this.#now() - this.#config.udpIdleTimeoutMs;
    const live = new Set<string>();
    for (const state of this.#listeners.values()) {
      live.add(state.listener.route.serviceKey);
      for (const [key, flow] of state.flows) if (flow.lastActive <= idleBefore) this.#closeFlow(state, key);
    }
    this.#balancer.sweep(live);
  }
}
