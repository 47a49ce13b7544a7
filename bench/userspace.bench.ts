// The userspace relay against direct loopback TCP: throughput (1 and 8 streams), added request/response latency
// (p50/p99), RSS with 10k idle relayed connections, and whether a busy control thread stalls traffic.
// Every party is its own process (this file, started with a role): sink/echo backends, sender, relay (with its
// relay processes when workers > 0), idle-connection holders (several, to stay under each one's descriptor limit).
// Run: npm run bench userspace   (or node bench/userspace.bench.ts). No root: everything is on 127.0.0.0/8.
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const SELF = fileURLToPath(import.meta.url);
const BACKEND_IP = '127.0.31.1';
const VIP = '127.0.30.1';
const SINK_PORT = 39001;
const ECHO_PORT = 39002;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);


// ---- roles ----

async function backends(): Promise<void> {
  const sink = net.createServer((s) => {
    s.on('data', () => undefined);
    s.on('error', () => undefined);
  });
  const echo = net.createServer({ noDelay: true }, (s) => {
    s.on('error', () => undefined);
    s.pipe(s);
  });
  await new Promise<void>((r) => sink.listen({ host: BACKEND_IP, port: SINK_PORT, backlog: 4096 }, r));
  await new Promise<void>((r) => echo.listen({ host: BACKEND_IP, port: ECHO_PORT, backlog: 4096 }, r));
  console.log('ready');
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
}

/** STREAMS connections write 256 KiB chunks for SECONDS; prints the bytes the kernel accepted. */
async function send(host: string, port: number, streams: number): Promise<void> {
  const chunk = Buffer.alloc(256 * 1024, 7);
  let bytes = 0;
  let stop = false;
  const one = (): Promise<void> => new Promise((resolve) => {
    const s = net.connect({ host, port });
    const pump = (): void => {
      while (!stop) {
        bytes += chunk.length;
        if (!s.write(chunk)) return void s.once('drain', pump);
      }
      s.end();
      resolve();
    };
    s.on('connect', pump);
    s.on('error', () => resolve());
  });
  const started = performance.now();
  setTimeout(() => (stop = true), SECONDS * 1000);
  await Promise.all(Array.from({ length: streams }, one));
  const seconds = (performance.now() - started) / 1000;
  console.log(JSON.stringify({ gbits: (bytes * 8) / seconds / 1e9 }));
}

/** The relay in its own process; commands on stdin: "rss", "busy MS" (block the control thread). */
async function relay(workers: number): Promise<void> {
  const { UserspaceProxy } = await import('../modes/userspace/proxy.ts');
  const { defaultConfig } = await import('../modes/userspace/config.ts');
  const { desiredState, memoryLogger } = await import('../test/userspace/helpers.ts');
  const proxy = new UserspaceProxy({ config: { ...defaultConfig, workers }, log: memoryLogger() });
  await proxy.sync(desiredState([
    { name: 'sink', clusterIP: VIP, port: SINK_PORT, endpoints: [[BACKEND_IP, SINK_PORT]] },
    { name: 'echo', clusterIP: VIP, port: ECHO_PORT, endpoints: [[BACKEND_IP, ECHO_PORT]] },
  ]), { full: true });
  console.log('ready');
  for await (const line of createInterface({ input: process.stdin })) {
    const [cmd, arg] = line.split(' ');
    if (cmd === 'rss') console.log(rssMiB(process.pid).toFixed(1));
    if (cmd === 'pids') console.log(JSON.stringify(proxy.relayPids()));
    if (cmd === 'busy') {
      const until = performance.now() + Number(arg);
      while (performance.now() < until) { /* a long sync in the control thread */ }
      console.log('done');
    }
  }
  await proxy.stop();
  process.exit(0);
}

async function hold(host: string, port: number, count: number): Promise<void> {
  const sockets: net.Socket[] = [];
  let errors = 0;
  for (let i = 0; i < count; i += 200) {
    await Promise.all(Array.from({ length: Math.min(200, count - i) }, () => new Promise<void>((resolve) => {
      const s = net.connect({ host, port }, () => resolve());
      s.on('error', () => { errors++; resolve(); });
      sockets.push(s);
    })));
  }
  console.log(JSON.stringify({ held: sockets.length - errors }));
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
}

// ---- driver ----

function rssMiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
}

/** The relay's whole memory: the control process and its relay processes. */
async function relayRssMiB(pid: number): Promise<{ total: number; each: number[] }> {
  const { treeRssKiB } = await import('../test/userspace/helpers.ts');
  const rss = treeRssKiB(pid);
  return { total: rss.total / 1024, each: rss.each.map((k) => k / 1024) };
}

interface Child { proc: ChildProcess; line(): Promise<string>; send(text: string): void }

function child(args: readonly string[]): Child {
  const proc = spawn(process.execPath, [SELF, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines: string[] = [];
  const waiting: ((l: string) => void)[] = [];
  createInterface({ input: proc.stdout! }).on('line', (l) => {
    const w = waiting.shift();
    if (w) w(l);
    else lines.push(l);
  });
  return {
    proc,
    line: () => new Promise((resolve) => {
      const l = lines.shift();
      if (l !== undefined) resolve(l);
      else waiting.push(resolve);
    }),
    send: (text) => proc.stdin!.write(`${text}\n`),
  };
}

async function throughput(host: string, streams: number): Promise<number> {
  const sender = child(['send', host, String(SINK_PORT), String(streams)]);
  return (JSON.parse(await sender.line()) as { gbits: number }).gbits;
}

/** Round trips of 64 bytes on one connection; returns microseconds per round trip, sorted. */
async function roundTrips(host: string, count: number): Promise<number[]> {
  const s = net.connect({ host, port: ECHO_PORT, noDelay: true });
  await new Promise<void>((r) => s.once('connect', () => r()));
  const msg = Buffer.alloc(64, 1);
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = process.hrtime.bigint();
    await new Promise<void>((resolve) => {
      let got = 0;
      const onData = (c: Buffer): void => {
        got += c.length;
        if (got >= msg.length) {
          s.off('data', onData);
          resolve();
        }
      };
      s.on('data', onData);
      s.write(msg);
    });
    times.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  s.destroy();
  return times.sort((a, b) => a - b);
}

const pct = (sorted: readonly number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN;

async function main(): Promise<void> {
  const results: string[] = [];
  const note = (line: string): void => {
    results.push(line);
    console.log(line);
  };
  const back = child(['backends']);
  await back.line();
  try {
    for (const workers of [0, 2]) {
      const relayProc = child(['relay', String(workers)]);
      await relayProc.line();
      const label = workers === 0 ? 'relay in the control thread' : `relay in ${workers} relay processes (SO_REUSEPORT)`;
      note(`### ${label}`);
      // First, on a fresh relay: 10k idle connections. In one process the descriptor limit caps it (two each).
      const limit = Number(readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'))?.split(/\s+/)[3] ?? 1024);
      const count = workers > 0 ? 10_000 : Math.min(10_000, Math.floor((limit - 1000) / 2));
      const pid = relayProc.proc.pid ?? 0;
      const baseline = await relayRssMiB(pid);
      const holders = [0, 1].map(() => child(['hold', VIP, String(ECHO_PORT), String(count / 2)]));
      let held = 0;
      for (const h of holders) held += (JSON.parse(await h.line()) as { held: number }).held;
      await new Promise((r) => setTimeout(r, 500));
      const rss = await relayRssMiB(pid);
      const each = rss.each.map((m) => m.toFixed(0)).join(' + ');
      note(`RSS: ${baseline.total.toFixed(0)} MiB idle, ${rss.total.toFixed(0)} MiB (${each}) with ${held} idle relayed connections (${(((rss.total - baseline.total) * 1024) / held).toFixed(1)} KiB each)`);
      for (const h of holders) h.proc.stdin!.end();
      for (const streams of [1, 8]) {
        const direct = await throughput(BACKEND_IP, streams);
        const relayed = await throughput(VIP, streams);
        note(`throughput ${streams} stream(s): direct ${direct.toFixed(2)} Gbit/s, relayed ${relayed.toFixed(2)} Gbit/s, ratio ${(relayed / direct).toFixed(2)}`);
      }
      await roundTrips(BACKEND_IP, 500);
      await roundTrips(VIP, 500);
      const direct = await roundTrips(BACKEND_IP, 5000);
      const relayed = await roundTrips(VIP, 5000);
      note(`request/response 64 B: direct p50 ${pct(direct, 0.5).toFixed(0)} µs p99 ${pct(direct, 0.99).toFixed(0)} µs; relayed p50 ${pct(relayed, 0.5).toFixed(0)} µs p99 ${pct(relayed, 0.99).toFixed(0)} µs; added p50 ${(pct(relayed, 0.5) - pct(direct, 0.5)).toFixed(0)} µs, p99 ${(pct(relayed, 0.99) - pct(direct, 0.99)).toFixed(0)} µs`);
      // A 500 ms busy control thread (what a sync of 10k services costs there) while requests flow.
      const during = roundTrips(VIP, 2000);
      relayProc.send('busy 500');
      await relayProc.line();
      const stalled = await during;
      note(`while the control thread is busy for 500 ms: max round trip ${(stalled[stalled.length - 1] ?? 0).toFixed(0)} µs`);
      relayProc.proc.stdin!.end();
      await new Promise((r) => relayProc.proc.once('exit', r));
    }
  } finally {
    back.proc.stdin!.end();
  }
  console.log(`\n(${SECONDS} s per throughput run, ${process.env.BENCH_SECONDS ? 'BENCH_SECONDS' : 'default'}; node ${process.version})`);
}

const role = process.argv[2];
if (role === 'backends') await backends();
else if (role === 'send') await send(process.argv[3] ?? '', Number(process.argv[4]), Number(process.argv[5]));
else if (role === 'relay') await relay(Number(process.argv[3] ?? 2));
else if (role === 'hold') await hold(process.argv[3] ?? '', Number(process.argv[4]), Number(process.argv[5]));
else await main();
