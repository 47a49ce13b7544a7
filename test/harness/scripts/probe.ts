// The test client, run inside a namespace. Prints one JSON line (and "ready" first in hold, serve and burst modes).
//   probe.ts tcp  HOST PORT COUNT [CONCURRENCY] [TIMEOUT_MS]      one new connection per request
//   probe.ts udp  HOST PORT COUNT [SRC_PORT] [TIMEOUT_MS]         one socket per request; SRC_PORT 0 = any
//   probe.ts hold HOST PORT DURATION_MS [INTERVAL_MS]             one connection, a request every interval
//   probe.ts http URL                                             GET, prints {"status":N}
//   probe.ts serve                                                one JSON request per stdin line, one JSON answer
//       per stdout line: {"id":…,"mode":"tcp"|"udp","host","port","count","concurrency"|"srcPort","timeoutMs"} →
//       {"id":…,"summary":{…}}; saves a process start per probe for tests that send thousands
//   probe.ts timeline HOST PORT DURATION_MS INTERVAL_MS TIMEOUT_MS a new connection every interval; each one's outcome
//   probe.ts burst JSON                                           wait for a signal (healthz, applied), then open
//                                                                  COUNT connections to every target at once
// Answers are "<backend> <peer seen by the backend>"; the summary counts backends, peers and error codes.
import { connect, type Socket } from 'node:net';
import { createSocket } from 'node:dgram';

interface Summary {
  answers: Record<string, number>;
  /** The longest TCP request (connect, send a line, read the answer), ms. */
  slowestMs: number;
  peers: Record<string, number>;
  /** "backend peer" → count: which source address each backend saw. */
  pairs: Record<string, number>;
  errors: Record<string, number>;
  ms: number;
}

const started = Date.now();
const newSummary = (): Summary => ({ answers: {}, slowestMs: 0, peers: {}, pairs: {}, errors: {}, ms: 0 });
/** The summary of the one-shot modes. */
const summary: Summary = newSummary();
const bump = (map: Record<string, number>, key: string): void => { map[key] = (map[key] ?? 0) + 1; };
const record = (into: Summary, line: string): void => {
  const [backend = '', peer = ''] = line.trim().split(' ');
  bump(into.answers, backend);
  bump(into.peers, peer);
  bump(into.pairs, `${backend} ${peer}`);
};
const finish = (): never => {
  summary.ms = Date.now() - started;
  process.stdout.write(JSON.stringify(summary) + '\n');
  process.exit(0);
};
const errorCode = (error: Error): string => (error as NodeJS.ErrnoException).code ?? error.message;

/** One request; resolves with its error code (undefined: answered). */
function tcpOnce(into: Summary, host: string, port: number, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const begun = performance.now();
    const socket = connect({ host, port, noDelay: true });
    let buffered = '';
    let settled = false;
    const settle = (error?: string): void => {
      if (settled) return;
      settled = true;
      into.slowestMs = Math.max(into.slowestMs, Math.round(performance.now() - begun));
      if (error) bump(into.errors, error);
      socket.destroy();
      resolve(error);
    };
    socket.setTimeout(timeoutMs, () => settle('TIMEOUT'));
    socket.on('connect', () => socket.write('hello\n'));
    socket.on('data', (data) => {
      buffered += data.toString();
      if (buffered.includes('\n')) {
        record(into, buffered);
        settle();
      }
    });
    socket.on('error', (error) => settle(errorCode(error)));
    socket.on('close', () => settle('CLOSED'));
  });
}

function udpOnce(into: Summary, host: string, port: number, srcPort: number, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = createSocket({ type: host.includes(':') ? 'udp6' : 'udp4', reuseAddr: true });
    let settled = false;
    const settle = (error?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error) bump(into.errors, error);
      socket.close();
      resolve();
    };
    const timer = setTimeout(() => settle('TIMEOUT'), timeoutMs);
    socket.on('message', (msg) => { record(into, msg.toString()); settle(); });
    socket.on('error', (error) => settle(errorCode(error)));
    socket.bind(srcPort, () => {
      // connected UDP sockets report ICMP port-unreachable as ECONNREFUSED
      socket.connect(port, host, () => socket.send('hello\n'));
    });
  });
}

async function hold(host: string, port: number, durationMs: number, intervalMs: number): Promise<void> {
  const socket: Socket = connect({ host, port, noDelay: true });
  let buffered = '';
  let sent = 0;
  let announced = false;
  socket.on('error', (error) => { bump(summary.errors, errorCode(error)); finish(); });
  socket.on('close', () => { bump(summary.errors, 'CLOSED'); finish(); });
  socket.setTimeout(Math.max(2000, intervalMs * 4), () => { bump(summary.errors, 'TIMEOUT'); finish(); });
  socket.on('data', (data) => {
    buffered += data.toString();
    let newline = buffered.indexOf('\n');
    while (newline >= 0) {
      record(summary, buffered.slice(0, newline));
      buffered = buffered.slice(newline + 1);
      newline = buffered.indexOf('\n');
      if (!announced) {
        announced = true;
        process.stdout.write('ready\n');
      }
    }
  });
  await new Promise<void>((resolve) => socket.on('connect', resolve));
  const deadline = Date.now() + durationMs;
  while (Date.now() < deadline) {
    socket.write('hello\n');
    sent++;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  // The last request's answer may still be on its way (a loaded machine): give it the timeout the socket has.
  const answered = (): number => Object.values(summary.answers).reduce((a, b) => a + b, 0);
  const waitUntil = Date.now() + Math.max(2000, intervalMs * 4);
  while (answered() < sent && Date.now() < waitUntil) await new Promise((r) => setTimeout(r, 10));
  socket.removeAllListeners('close');
  socket.end();
  if (answered() < sent) bump(summary.errors, 'MISSING');
  finish();
}

async function tcpMany(into: Summary, host: string, port: number, count: number, concurrency: number, timeoutMs: number): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      next++;
      await tcpOnce(into, host, port, timeoutMs);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

async function udpMany(into: Summary, host: string, port: number, count: number, srcPort: number, timeoutMs: number): Promise<void> {
  for (let i = 0; i < count; i++) await udpOnce(into, host, port, srcPort, timeoutMs);
}

interface ServeRequest {
  readonly id: number;
  readonly mode: 'tcp' | 'udp';
  readonly host: string;
  readonly port: number;
  readonly count: number;
  readonly concurrency?: number;
  readonly srcPort?: number;
  readonly timeoutMs?: number;
}

/** Serve requests from stdin, one at a time per line, answering in order of completion. */
function serve(): void {
  let buffered = '';
  process.stdin.on('data', (data: Buffer) => {
    buffered += data.toString();
    let newline = buffered.indexOf('\n');
    while (newline >= 0) {
      const request = JSON.parse(buffered.slice(0, newline)) as ServeRequest;
      buffered = buffered.slice(newline + 1);
      newline = buffered.indexOf('\n');
      const into = newSummary();
      const begun = Date.now();
      const done = request.mode === 'tcp'
        ? tcpMany(into, request.host, request.port, request.count, request.concurrency ?? 1, request.timeoutMs ?? 1000)
        : udpMany(into, request.host, request.port, request.count, request.srcPort ?? 0, request.timeoutMs ?? 1000);
      void done.then(() => {
        into.ms = Date.now() - begun;
        process.stdout.write(JSON.stringify({ id: request.id, summary: into }) + '\n');
      });
    }
  });
  process.stdin.on('end', () => process.exit(0));
  process.stdout.write('ready\n');
}

/**
 * A new connection every `intervalMs` for `durationMs` (each on its own, not waiting for the one before), as a
 * client sees a restart: prints {"attempts":[[startEpochMs, durationMs, error | null], …]}.
 */
async function timeline(host: string, port: number, durationMs: number, intervalMs: number, timeoutMs: number): Promise<void> {
  const attempts: [number, number, string | null][] = [];
  const runs: Promise<void>[] = [];
  const end = Date.now() + durationMs;
  while (Date.now() < end) {
    const at = Date.now();
    runs.push(tcpOnce(newSummary(), host, port, timeoutMs).then((error) => void attempts.push([at, Date.now() - at, error ?? null])));
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  await Promise.all(runs);
  attempts.sort((x, y) => x[0] - y[0]);
  process.stdout.write(`${JSON.stringify({ attempts })}\n`);
  process.exit(0);
}

/** What `burst` waits for before it opens its connections. */
type Wait =
  | { readonly kind: 'none' }
  /** GET url until it answers 200. */
  | { readonly kind: 'healthz'; readonly url: string }
  /**
   * The metrics at url show that the agent saw a Service change after the probe's first reading (the counter
   * kubeproxy_sync_proxy_rules_service_changes_total went up) and that a sync which began after every change it
   * saw has succeeded (kubeproxy_sync_proxy_rules_service_changes_pending is 0).
   */
  | { readonly kind: 'applied'; readonly url: string };

interface Burst {
  readonly wait: Wait;
  readonly count: number;
  readonly timeoutMs: number;
  /** "host:port" or "[v6]:port" */
  readonly targets: readonly string[];
  /** Give up waiting after this long. */
  readonly waitTimeoutMs: number;
  /** Connections made before waiting, so that the probe's own first-run slowness is not measured. */
  readonly warmup?: string;
  /** `count` more connections spread over these, opened with the others: results.direct, the moment's reference. */
  readonly control?: readonly string[];
}

const metric = (text: string, name: string): number | undefined => {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
};

/** A poll of the signal: true once it is there. `applied` takes its first reading as the baseline. */
function signal(wait: Wait): { poll(): Promise<boolean>; readonly armed: () => boolean } {
  let baseline: number | undefined;
  const poll = async (): Promise<boolean> => {
    if (wait.kind === 'none') return true;
    try {
      const response = await fetch(wait.url, { signal: AbortSignal.timeout(1000) });
      const text = await response.text();
      if (wait.kind === 'healthz') return response.status === 200;
      const seen = metric(text, 'kubeproxy_sync_proxy_rules_service_changes_total') ?? 0;
      if (baseline === undefined) {
        baseline = seen;
        return false;
      }
      return seen > baseline && metric(text, 'kubeproxy_sync_proxy_rules_service_changes_pending') === 0;
    } catch {
      return false;
    }
  };
  return { poll, armed: () => wait.kind !== 'applied' || baseline !== undefined };
}

const splitTarget = (target: string): [string, number] => {
  const colon = target.lastIndexOf(':');
  return [target.slice(0, colon).replace(/^\[|\]$/g, ''), Number(target.slice(colon + 1))];
};

/** Prints "ready" once it watches the signal, waits for it, then opens `count` connections to every target at once. */
async function burst(spec: Burst): Promise<void> {
  if (spec.warmup) {
    const [host, port] = splitTarget(spec.warmup);
    for (let i = 0; i < 20; i++) await tcpOnce(newSummary(), host, port, spec.timeoutMs);
  }
  const begunWaiting = Date.now();
  const deadline = begunWaiting + spec.waitTimeoutMs;
  const { poll, armed } = signal(spec.wait);
  let polls = 0;
  let announced = false;
  for (;;) {
    polls++;
    const now = await poll();
    if (!announced && armed()) {
      announced = true;
      process.stdout.write('ready\n');
    }
    if (now) break;
    if (Date.now() > deadline) {
      process.stdout.write(`${JSON.stringify({ waitedMs: Date.now() - begunWaiting, polls, signalled: false, results: {} })}\n`);
      process.exit(0);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  const signalledAt = Date.now();
  const waitedMs = signalledAt - begunWaiting;
  const results: Record<string, Summary> = {};
  const runs: Promise<unknown>[] = [];
  for (const target of spec.targets) {
    const [host, port] = splitTarget(target);
    const into = (results[target] = newSummary());
    for (let i = 0; i < spec.count; i++) runs.push(tcpOnce(into, host, port, spec.timeoutMs));
  }
  const control = spec.control ?? [];
  if (control.length > 0) {
    const into = (results.direct = newSummary());
    for (let i = 0; i < spec.count; i++) runs.push(tcpOnce(into, ...splitTarget(control[i % control.length] ?? ''), spec.timeoutMs));
  }
  const begun = Date.now();
  await Promise.all(runs);
  for (const r of Object.values(results)) r.ms = Date.now() - begun;
  process.stdout.write(`${JSON.stringify({ waitedMs, signalledAt, polls, signalled: true, results })}\n`);
  process.exit(0);
}

async function main(): Promise<void> {
  const [mode, a = '', b = '', c = '', d = '', e = ''] = process.argv.slice(2);
  if (mode === 'serve') {
    serve();
    return;
  }
  if (mode === 'tcp') {
    await tcpMany(summary, a, Number(b), Number(c || 1), Number(d || 1), Number(e || 1000));
  } else if (mode === 'udp') {
    await udpMany(summary, a, Number(b), Number(c || 1), Number(d || 0), Number(e || 1000));
  } else if (mode === 'hold') {
    await hold(a, Number(b), Number(c || 1000), Number(d || 100));
  } else if (mode === 'timeline') {
    await timeline(a, Number(b), Number(c || 5000), Number(d || 10), Number(e || 1000));
  } else if (mode === 'burst') {
    await burst(JSON.parse(a) as Burst);
  } else if (mode === 'http') {
    try {
      const response = await fetch(a, { signal: AbortSignal.timeout(1000) });
      bump(summary.answers, String(response.status));
    } catch (error) {
      bump(summary.errors, errorCode(error as Error));
    }
  } else {
    process.stderr.write(`probe: unknown mode ${mode}\n`);
    process.exit(2);
  }
  finish();
}

void main();
