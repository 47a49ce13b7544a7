// The test client, run inside a namespace. Prints one JSON line (and "ready" first in hold mode).
//   probe.ts tcp  HOST PORT COUNT [CONCURRENCY] [TIMEOUT_MS]      one new connection per request
//   probe.ts udp  HOST PORT COUNT [SRC_PORT] [TIMEOUT_MS]         one socket per request; SRC_PORT 0 = any
//   probe.ts hold HOST PORT DURATION_MS [INTERVAL_MS]             one connection, a request every interval
//   probe.ts http URL                                             GET, prints {"status":N}
//   probe.ts serve                                                one JSON request per stdin line, one JSON answer
//       per stdout line: {"id":…,"mode":"tcp"|"udp","host","port","count","concurrency"|"srcPort","timeoutMs"} →
//       {"id":…,"summary":{…}}; saves a process start per probe for tests that send thousands
// Answers are "<backend> <peer seen by the backend>"; the summary counts backends, peers and error codes.
import { connect, type Socket } from 'node:net';
import { createSocket } from 'node:dgram';

interface Summary {
  answers: Record<string, number>;
  peers: Record<string, number>;
  /** "backend peer" → count: which source address each backend saw. */
  pairs: Record<string, number>;
  errors: Record<string, number>;
  ms: number;
}

const started = Date.now();
const newSummary = (): Summary => ({ answers: {}, peers: {}, pairs: {}, errors: {}, ms: 0 });
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

function tcpOnce(into: Summary, host: string, port: number, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = connect({ host, port, noDelay: true });
    let buffered = '';
    let settled = false;
    const settle = (error?: string): void => {
      if (settled) return;
      settled = true;
      if (error) bump(into.errors, error);
      socket.destroy();
      resolve();
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
  socket.removeAllListeners('close');
  socket.end();
  if (Object.values(summary.answers).reduce((a, b) => a + b, 0) < sent) bump(summary.errors, 'MISSING');
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
