// The userspace relay against direct loopback TCP: throughput (1 and 8 streams), added request/response latency
// (p50/p99), RSS with 10k idle relayed connections, and whether a busy control thread stalls traffic.
// Every party is its own process (this file, started with a role): sink/echo backends, sender, relay (with its
// relay processes when workers > 0), idle-connection holders (several, to stay under each one's descriptor limit).
// Run: npm run bench userspace   (or node bench/userspace.bench.ts). No root: everything is on 127.0.0.0/8.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const SELF = fileURLToPath(import.meta.url);
const BACKEND_IP = '127.0.31.1';
const VIP = '127.0.30.1';
const SINK_PORT = 39001;
const ECHO_PORT = 39002;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
/** Alternated direct/relayed throughput rounds per stream count; the medians are reported. */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
/**
 * Relay placements to measure: 0 = the control thread, N = N relay processes; a suffix "-node" turns splice off
 * (bytes through Node's sockets), to compare both in one run: BENCH_WORKERS=2,2-node.
 */
const WORKERS = (process.env.BENCH_WORKERS ?? '0,2').split(',').map((w) => ({ workers: parseInt(w, 10), splice: !w.endsWith('-node') }));
/** A userspace proxy written in C, measured in the same rounds when installed (apt-get install haproxy). */
const HAPROXY_IP = '127.0.32.1';
/** BENCH_ONLY=throughput skips the idle-connection, latency and stall parts; BENCH_ONLY=latency runs only latency. */
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
async function relay(workers: number, splice: boolean): Promise<void> {
  const { UserspaceProxy } = await import('../modes/userspace/proxy.ts');
  const { defaultConfig } = await import('../modes/userspace/config.ts');
  const { desiredState, memoryLogger } = await import('../test/userspace/helpers.ts');
  const proxy = new UserspaceProxy({ config: { ...defaultConfig, workers, splice }, log: memoryLogger() });
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

interface Target { readonly name: string; readonly host: string; readonly pid: number }

/**
 * Direct and relayed runs back to back, alternated (the order rotates each round), after a warm-up of each; when
 * HAProxy is there, its runs take turns too. Ratios are to the direct run of the same round.
 */
async function compareThroughput(streams: number, backends: number, targets: readonly Target[], note: (l: string) => void): Promise<void> {
  const all: Target[] = [{ name: 'direct', host: BACKEND_IP, pid: 0 }, ...targets];
  for (const t of all) await throughput(t.host, streams, { backends, relay: t.pid }, 1);
  const runs = new Map<string, Run[]>(all.map((t) => [t.name, []]));
  const ratios = new Map<string, number[]>(targets.map((t) => [t.name, []]));
  for (let round = 0; round < ROUNDS; round++) {
    const order = [...all.slice(round % all.length), ...all.slice(0, round % all.length)];
    for (const t of order) runs.get(t.name)?.push(await throughput(t.host, streams, { backends, relay: t.pid }));
    const direct = runs.get('direct')?.at(-1)?.gbits ?? 1;
    for (const t of targets) ratios.get(t.name)?.push((runs.get(t.name)?.at(-1)?.gbits ?? 0) / direct);
  }
  const perGB = (name: string, k: keyof Run['cpu']): string =>
    median((runs.get(name) ?? []).map((r) => r.cpu[k] / (r.bytes / 1e9))).toFixed(2);
  const gbits = (name: string): string => median((runs.get(name) ?? []).map((r) => r.gbits)).toFixed(2);
  note(`throughput ${streams} stream(s), median of ${ROUNDS}: direct ${gbits('direct')} Gbit/s ` +
    `(CPU s/GB: sender ${perGB('direct', 'sender')} receiver ${perGB('direct', 'receiver')} idle ${perGB('direct', 'idle')})`);
  for (const t of targets) {
    const r = ratios.get(t.name) ?? [];
    note(`  ${t.name}: ${gbits(t.name)} Gbit/s, ratio per round ${r.map((x) => x.toFixed(2)).join(' ')} (median ${median(r).toFixed(2)}); ` +
      `CPU s/GB sender ${perGB(t.name, 'sender')} receiver ${perGB(t.name, 'receiver')} proxy ${perGB(t.name, 'relay')} idle ${perGB(t.name, 'idle')}`);
  }
}

/** HAProxy on HAPROXY_IP:SINK_PORT to the sink, 2 threads (one per core, like the 2 relay processes), splice on. */
async function startHaproxy(): Promise<{ proc: ChildProcess; version: string } | undefined> {
  const probe = spawnSync('haproxy', ['-v'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) return undefined;
  const version = /version (\S+)/.exec(probe.stdout)?.[1] ?? '?';
  const config = [
    'global', '  nbthread 2', 'defaults', '  mode tcp', '  timeout connect 5s', '  timeout client 60s', '  timeout server 60s',
    'frontend sink', `  bind ${HAPROXY_IP}:${SINK_PORT}`, '  option splice-auto', '  default_backend sink',
    'backend sink', '  option splice-auto', `  server sink ${BACKEND_IP}:${SINK_PORT}`,
  ].join('\n');
  const dir = mkdtempSync(join(tmpdir(), 'kproxy-bench-haproxy-'));
  const file = join(dir, 'haproxy.cfg');
  writeFileSync(file, `${config}\n`);
  const proc = spawn('haproxy', ['-db', '-f', file], { stdio: ['ignore', 'ignore', 'inherit'] });
  proc.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  for (let i = 0; i < 50; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: HAPROXY_IP, port: SINK_PORT }, () => resolve(true));
      s.on('error', () => resolve(false));
      s.on('connect', () => s.destroy());
    });
    if (up) return { proc, version };
    await new Promise((r) => setTimeout(r, 100));
  }
  proc.kill();
  return undefined;
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
  const haproxy = await startHaproxy();
  note(haproxy ? `reference: HAProxy ${haproxy.version} (2 threads, option splice-auto) on ${HAPROXY_IP}`
    : 'reference: HAProxy is not installed (apt-get install haproxy), so only direct and relayed are measured');
  try {
    for (const { workers, splice } of WORKERS) {
      const relayProc = child(['relay', String(workers), splice ? 'splice' : 'node']);
      await relayProc.line();
      const label = (workers === 0 ? 'relay in the control thread' : `relay in ${workers} relay processes (SO_REUSEPORT)`) +
        (splice ? ', splice' : ', bytes through Node (splice: false)');
      note(`### ${label}`);
      const pid = relayProc.proc.pid ?? 0;
      if (ONLY === undefined) await idleConnections(workers, pid, note);
      const targets: Target[] = [{ name: 'kproxy', host: VIP, pid }];
      if (haproxy?.proc.pid) targets.push({ name: 'HAProxy', host: HAPROXY_IP, pid: haproxy.proc.pid });
      if (ONLY !== 'latency') for (const streams of [1, 8]) await compareThroughput(streams, back.proc.pid ?? 0, targets, note);
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
    haproxy?.proc.kill();
  }
  console.log(`\n(${SECONDS} s per throughput run, ${process.env.BENCH_SECONDS ? 'BENCH_SECONDS' : 'default'}; node ${process.version})`);
}

const role = process.argv[2];
if (role === 'backends') await backends();
else if (role === 'send') await send(process.argv[3] ?? '', Number(process.argv[4]), Number(process.argv[5]), Number(process.argv[6] ?? SECONDS));
else if (role === 'relay') await relay(Number(process.argv[3] ?? 2), process.argv[4] !== 'node');
else if (role === 'hold') await hold(process.argv[3] ?? '', Number(process.argv[4]), Number(process.argv[5]));
else await main();
