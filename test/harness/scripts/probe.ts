// The test client, run inside a namespace. Prints one JSON line (and "ready" first in hold mode).
//   probe.ts tcp  HOST PORT COUNT [CONCURRENCY] [TIMEOUT_MS]      one new connection per request
//   probe.ts udp  HOST PORT COUNT [SRC_PORT] [TIMEOUT_MS]         one socket per request; SRC_PORT 0 = any
//   probe.ts hold HOST PORT DURATION_MS [INTERVAL_MS]             one connection, a request every interval
//   probe.ts http URL                                             GET, prints {"status":N}
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
const summary: Summary = { answers: {}, peers: {}, pairs: {}, errors: {}, ms: 0 };
const bump = (map: Record<string, number>, key: string): void => { map[key] = (map[key] ?? 0) + 1; };
const record = (line: string): void => {
  const [backend = '', peer = ''] = line.trim().split(' ');
  bump(summary.answers, backend);
  bump(summary.peers, peer);
  bump(summary.pairs, `${backend} ${peer}`);
};
const finish = (): never => {
  summary.ms = Date.now() - started;
  process.stdout.write(JSON.stringify(summary) + '\n');
  process.exit(0);
};
const errorCode = (error: Error): string => (error as NodeJS.ErrnoException).code ?? error.message;

function tcpOnce(host: string, port: number, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = connect({ host, port, noDelay: true });
    let buffered = '';
    let settled = false;
    const settle = (error?: string): void => {
      if (settled) return;
      settled = true;
      if (error) bump(summary.errors, error);
      socket.destroy();
      resolve();
    };
    socket.setTimeout(timeoutMs, () => settle('TIMEOUT'));
    socket.on('connect', () => socket.write('hello\n'));
    socket.on('data', (data) => {
      buffered += data.toString();
      if (buffered.includes('\n')) {
        record(buffered);
        settle();
      }
    });
    socket.on('error', (error) => settle(errorCode(error)));
    socket.on('close', () => settle('CLOSED'));
  });
}

function udpOnce(host: string, port: number, srcPort: number, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = createSocket({ type: host.includes(':') ? 'udp6' : 'udp4', reuseAddr: true });
    let settled = false;
    const settle = (error?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error) bump(summary.errors, error);
      socket.close();
      resolve();
    };
    const timer = setTimeout(() => settle('TIMEOUT'), timeoutMs);
    socket.on('message', (msg) => { record(msg.toString()); settle(); });
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
      record(buffered.slice(0, newline));
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

async function main(): Promise<void> {
  const [mode, a = '', b = '', c = '', d = '', e = ''] = process.argv.slice(2);
  if (mode === 'tcp') {
    const count = Number(c || 1);
    const concurrency = Number(d || 1);
    const timeoutMs = Number(e || 1000);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < count) {
        next++;
        await tcpOnce(a, Number(b), timeoutMs);
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  } else if (mode === 'udp') {
    const count = Number(c || 1);
    for (let i = 0; i < count; i++) await udpOnce(a, Number(b), Number(d || 0), Number(e || 1000));
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
