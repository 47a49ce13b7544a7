// The userspace relay against direct loopback TCP: throughput (1 and 8 streams), added request/response latency
// (p50/p99), RSS with 10k idle relayed connections, and whether a busy control thread stalls traffic.
// Every party is its own process (this file, started with a role): sink/echo backends, sender, relay (with its
// relay processes when workers > 0), idle-connection holders (several, to stay under each one's descriptor limit).
// Run: npm run bench userspace   (or node bench/userspace.bench.ts). No root: everything is on 127.0.0.0/8.
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const SELF = fileURLToPath(import.meta.url);
const BACKEND_IP = '127.0.31.1';
const VIP = '127.0.30.1';
const SINK_PORT = 39001;
const ECHO_PORT = 39002;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
/** Alternated direct/relayed throughput rounds per stream count; the medians are reported. */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
/** Relay placements to measure: 0 = the control thread, N = N relay processes. */
const WORKERS = (process.env.BENCH_WORKERS ?? '0,2').split(',').map(Number);
/** BENCH_ONLY=throughput skips the idle-connection, latency and stall parts. */
const ONLY = process.env.BENCH_ONLY;


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

/** STREAMS connections write 256 KiB chunks for SECONDS; prints the bytes the kernel accepted and its own CPU. */
async function send(host: string, port: number, streams: number, seconds: number): Promise<void> {
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
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  setTimeout(() => (stop = true), seconds * 1000);
  await Promise.all(Array.from({ length: streams }, one));
  const elapsed = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpu0);
  console.log(JSON.stringify({ gbits: (bytes * 8) / elapsed / 1e9, bytes, cpu: (cpu.user + cpu.system) / 1e6 }));
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

/** CPU seconds (user + system) a process and its descendants used so far. */
function treeCpuSeconds(root: number): number {
  const tick = 100; // USER_HZ
  const children = new Map<number, number[]>();
  const own = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      children.set(Number(f[1]), [...(children.get(Number(f[1])) ?? []), Number(entry)]);
      own.set(Number(entry), (Number(f[11]) + Number(f[12])) / tick);
    } catch {
      // exited meanwhile
    }
  }
  const walk = (pid: number): number => (own.get(pid) ?? 0) + (children.get(pid) ?? []).reduce((n, c) => n + walk(c), 0);
  return walk(root);
}

interface Run { gbits: number; bytes: number; cpu: { sender: number; receiver: number; relay: number; idle: number } }

/** One sender run; CPU seconds of sender, receiver (the sink backend) and relay (all its processes) during it. */
async function throughput(host: string, streams: number, pids: { backends: number; relay: number }, seconds = SECONDS): Promise<Run> {
  const idle0 = idleSeconds();
  const recv0 = treeCpuSeconds(pids.backends);
  const relay0 = treeCpuSeconds(pids.relay);
  const sender = child(['send', host, String(SINK_PORT), String(streams), String(seconds)]);
  const r = JSON.parse(await sender.line()) as { gbits: number; bytes: number; cpu: number };
  return { gbits: r.gbits, bytes: r.bytes, cpu: { sender: r.cpu, receiver: treeCpuSeconds(pids.backends) - recv0,
    relay: treeCpuSeconds(pids.relay) - relay0, idle: idleSeconds() - idle0 } };
}

/** Idle CPU seconds of the whole machine (both cores) so far: what the other tenants left us. */
function idleSeconds(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]?.trim().split(/\s+/) ?? [];
  return Number(f[4] ?? 0) / 100;
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] ?? NaN) : ((s[m - 1] ?? NaN) + (s[m] ?? NaN)) / 2;
};

/** Direct and relayed runs back to back, alternated (which goes first alternates too), after a warm-up of each. */
async function compareThroughput(streams: number, pids: { backends: number; relay: number }, note: (l: string) => void): Promise<void> {
  await throughput(BACKEND_IP, streams, pids, 1);
  await throughput(VIP, streams, pids, 1);
  const direct: Run[] = [];
  const relayed: Run[] = [];
  const ratios: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? [BACKEND_IP, VIP] : [VIP, BACKEND_IP];
    for (const host of order) (host === VIP ? relayed : direct).push(await throughput(host, streams, pids));
    ratios.push((relayed.at(-1)?.gbits ?? 0) / (direct.at(-1)?.gbits ?? 1));
  }
  const perGB = (runs: readonly Run[], k: keyof Run['cpu']): string => median(runs.map((r) => r.cpu[k] / (r.bytes / 1e9))).toFixed(2);
  const dg = median(direct.map((r) => r.gbits));
  const rg = median(relayed.map((r) => r.gbits));
  note(`throughput ${streams} stream(s), median of ${ROUNDS}: direct ${dg.toFixed(2)} Gbit/s, relayed ${rg.toFixed(2)} Gbit/s; ` +
    `ratio per round ${ratios.map((r) => r.toFixed(2)).join(' ')} (median ${median(ratios).toFixed(2)})`);
  note(`  CPU s/GB direct: sender ${perGB(direct, 'sender')} receiver ${perGB(direct, 'receiver')} idle ${perGB(direct, 'idle')}; ` +
    `relayed: sender ${perGB(relayed, 'sender')} receiver ${perGB(relayed, 'receiver')} relay ${perGB(relayed, 'relay')} idle ${perGB(relayed, 'idle')}`);
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

/** On a fresh relay: RSS with 10k idle relayed connections. In one process the descriptor limit caps it (two each). */
async function idleConnections(workers: number, pid: number, note: (l: string) => void): Promise<void> {
  const limit = Number(readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'))?.split(/\s+/)[3] ?? 1024);
  const count = workers > 0 ? 10_000 : Math.min(10_000, Math.floor((limit - 1000) / 2));
  const baseline = await relayRssMiB(pid);
  const holders = [0, 1].map(() => child(['hold', VIP, String(ECHO_PORT), String(count / 2)]));
  let held = 0;
  for (const h of holders) held += (JSON.parse(await h.line()) as { held: number }).held;
  await new Promise((r) => setTimeout(r, 500));
  const rss = await relayRssMiB(pid);
  const each = rss.each.map((m) => m.toFixed(0)).join(' + ');
  note(`RSS: ${baseline.total.toFixed(0)} MiB idle, ${rss.total.toFixed(0)} MiB (${each}) with ${held} idle relayed connections (${(((rss.total - baseline.total) * 1024) / held).toFixed(1)} KiB each)`);
  for (const h of holders) h.proc.stdin!.end();
}

async function main(): Promise<void> {
  const results: string[] = [];
  const note = (line: string): void => {
    results.push(line);
    console.log(line);
  };
  const back = child(['backends']);
  await back.line();
  try {
    for (const workers of WORKERS) {
      const relayProc = child(['relay', String(workers)]);
      await relayProc.line();
      const label = workers === 0 ? 'relay in the control thread' : `relay in ${workers} relay processes (SO_REUSEPORT)`;
      note(`### ${label}`);
      const pid = relayProc.proc.pid ?? 0;
      if (ONLY !== 'throughput') await idleConnections(workers, pid, note);
      const pids = { backends: back.proc.pid ?? 0, relay: pid };
      for (const streams of [1, 8]) await compareThroughput(streams, pids, note);
      if (ONLY === 'throughput') {
        relayProc.proc.stdin!.end();
        await new Promise((r) => relayProc.proc.once('exit', r));
        continue;
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
else if (role === 'send') await send(process.argv[3] ?? '', Number(process.argv[4]), Number(process.argv[5]), Number(process.argv[6] ?? SECONDS));
else if (role === 'relay') await relay(Number(process.argv[3] ?? 2));
else if (role === 'hold') await hold(process.argv[3] ?? '', Number(process.argv[4]), Number(process.argv[5]));
else await main();
