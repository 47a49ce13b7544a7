// The relay on loopback addresses (127.0.0.0/8 needs no interface and no root).
import { test, describe, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { defaultConfig } from '../../modes/userspace/config.ts';
import type { UserspaceConfig } from '../../modes/userspace/config.ts';
import { UserspaceProxy } from '../../modes/userspace/proxy.ts';
import { countBy, desiredState, fetchText, freePort, memoryLogger, nameServer, sleep, udpAsk, udpNameEcho } from './helpers.ts';
import type { ServiceSpec } from './helpers.ts';

const net3 = `127.88.${process.pid % 250}`;
const VIP = `${net3}.1`;
const BACKENDS = [`${net3}.11`, `${net3}.12`, `${net3}.13`];
const PARENT = fileURLToPath(new URL('./scripts/relay-parent.ts', import.meta.url));
const closers: (() => unknown)[] = [];
after(async () => {
  for (const close of closers.reverse()) await close();
});

async function until(check: () => Promise<boolean>, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await sleep(20);
  }
}

const noInterface = async (): Promise<string> => {
  throw new Error('the loopback relay must not touch interfaces');
};

/** Each suite runs twice: TCP bytes moved by the splice loop, and through Node's sockets (splice: false). */
let splice = true;

async function startProxy(overrides: Partial<UserspaceConfig> = {}) {
  const log = memoryLogger();
  // splice: every TCP connection goes to the splice loop at connect (spliceAfterBytes 0), so that each test below
  // runs on it; the hand-over of a bulk connection in mid-stream has a test of its own.
  const proxy = new UserspaceProxy({ config: { ...defaultConfig, workers: 0, splice, spliceAfterBytes: 0, ...overrides }, log, runIp: noInterface });
  closers.push(() => proxy.stop());
  return { proxy, log };
}

async function backends(names: readonly string[]): Promise<[string, number][]> {
  const out: [string, number][] = [];
  for (const [i, name] of names.entries()) {
    const ip = BACKENDS[i] ?? BACKENDS[0] ?? '';
    const { server, port } = await nameServer(ip, name);
    closers.push(() => server.close());
    out.push([ip, port]);
  }
  return out;
}

const sync = (proxy: UserspaceProxy, services: readonly ServiceSpec[]) =>
  proxy.sync(desiredState(services), { full: false });

for (const mode of ['splice', 'through Node'] as const) describe(`userspace relay on loopback (${mode})`, () => {
  before(() => void (splice = mode === 'splice'));

  test('round robin spreads connections evenly; stats count them', async () => {
    const { proxy } = await startProxy();
    const port = await freePort(VIP);
    const eps = await backends(['a', 'b', 'c']);
    const report = await sync(proxy, [{ name: 'spread', clusterIP: VIP, port, endpoints: eps }]);
    assert.equal(report.stats?.listenersOpened, 1);
    const answers = await Promise.all(Array.from({ length: 30 }, () => fetchText(VIP, port)));
    assert.deepEqual(countBy(answers), { a: 10, b: 10, c: 10 });
    await until(async () => (await proxy.stats()).active === 0);
    const stats = (await proxy.stats()).services['default/spread:'];
    assert.equal(stats?.relayed, 30);
    assert.equal(stats?.spliced, splice ? 30 : 0, 'splice takes every TCP connection when it is on');
    assert.equal(stats?.bytesOut, 30);
    await proxy.stop();
  });

  test('two relay processes share the port (SO_REUSEPORT); round robin stays exact over both', async () => {
    const { proxy } = await startProxy({ workers: 2 });
    const port = await freePort(VIP);
    const eps = await backends(['a', 'b', 'c']);
    await sync(proxy, [{ name: 'threads', clusterIP: VIP, port, endpoints: eps }]);
    const answers: string[] = [];
    for (let i = 0; i < 60; i++) answers.push(await fetchText(VIP, port));
    assert.deepEqual(countBy(answers), { a: 20, b: 20, c: 20 }, 'round robin is exact over both processes');
    assert.equal((await proxy.stats()).services['default/threads:']?.relayed, 60);
    assert.equal((await proxy.stats()).services['default/threads:']?.spliced, splice ? 60 : 0, 'relay processes splice too');
    await proxy.stop();
  });

  test('ClientIP affinity keeps a client on one endpoint, whichever relay process accepts it', async () => {
    const { proxy } = await startProxy({ workers: 2 });
    const port = await freePort(VIP);
    const eps = await backends(['a', 'b', 'c']);
    await sync(proxy, [{ name: 'sticky', clusterIP: VIP, port, endpoints: eps, affinitySeconds: 60 }]);
    const answers: string[] = [];
    for (let i = 0; i < 20; i++) answers.push(await fetchText(VIP, port));
    assert.equal(new Set(answers).size, 1, JSON.stringify(countBy(answers)));
    await proxy.stop();
  });

  test('a dead endpoint is skipped: every connection is answered by another one', async () => {
    const { proxy, log } = await startProxy();
    const port = await freePort(VIP);
    const [alive] = await backends(['alive']);
    assert.ok(alive);
    const dead: [string, number] = [BACKENDS[1] ?? '', await freePort(BACKENDS[1] ?? '')];
    await sync(proxy, [{ name: 'retry', clusterIP: VIP, port, endpoints: [dead, alive, dead] }]);
    const answers = await Promise.all(Array.from({ length: 12 }, () => fetchText(VIP, port)));
    assert.deepEqual(countBy(answers), { alive: 12 });
    // All endpoints dead: the client is reset and one clear line says why.
    await sync(proxy, [{ name: 'retry', clusterIP: VIP, port, endpoints: [dead] }]);
    assert.equal(await fetchText(VIP, port), 'ERR:ECONNRESET');
    const line = log.lines.find((l) => l.msg === 'no endpoint answered; connection reset');
    assert.ok(line, 'the failure is logged');
    assert.equal((await proxy.stats()).services['default/retry:']?.failed, 1);
    await proxy.stop();
  });

  test('no endpoints: connections are reset at once; refusals are logged with a rate limit', async () => {
    const { proxy, log } = await startProxy({ logBurst: 2 });
    const port = await freePort(VIP);
    await sync(proxy, [{ name: 'empty', clusterIP: VIP, port, endpoints: [] }]);
    const started = performance.now();
    for (let i = 0; i < 5; i++) assert.equal(await fetchText(VIP, port, 'hello'), 'ERR:ECONNRESET');
    assert.ok(performance.now() - started < 1000);
    assert.equal(log.lines.filter((l) => l.msg === 'connection refused').length, 2);
    assert.equal((await proxy.stats()).services['default/empty:']?.refused, 5);
    await proxy.stop();
  });

  test('half-close: the client ends its side and still reads the whole answer', async () => {
    const { proxy } = await startProxy();
    const server = net.createServer({ allowHalfOpen: true }, (socket) => {
      let bytes = 0;
      socket.on('data', (c: Buffer) => (bytes += c.length));
      socket.on('end', () => setTimeout(() => socket.end(`got ${bytes}`), 50));
    });
    await new Promise<void>((r) => server.listen({ host: BACKENDS[0], port: 0 }, r));
    closers.push(() => server.close());
    const port = await freePort(VIP);
    await sync(proxy, [{ name: 'half', clusterIP: VIP, port, endpoints: [[BACKENDS[0] ?? '', (server.address() as net.AddressInfo).port]] }]);
    const reply = await new Promise<string>((resolve, reject) => {
      const s = net.connect({ host: VIP, port, allowHalfOpen: true });
      let data = '';
      s.on('data', (c: Buffer) => (data += c.toString()));
      s.on('end', () => resolve(data));
      s.on('error', reject);
      s.end('x'.repeat(100_000));
    });
    assert.equal(reply, 'got 100000');
    await proxy.stop();
  });

  // At connect (spliceAfterBytes 0), and the default: Node relays until 1 MiB came in full reads, then hands
  // the connection to the splice loop in mid-stream (in the control thread, and in relay processes).
  for (const overrides of [{}, { spliceAfterBytes: defaultConfig.spliceAfterBytes }, { spliceAfterBytes: defaultConfig.spliceAfterBytes, workers: 2 }]) {
    test(`a large transfer arrives intact both ways (sha256) ${JSON.stringify(overrides)}`, async () => {
      const { proxy } = await startProxy(overrides);
      const payload = randomBytes(48 * 1024 * 1024);
      const digest = createHash('sha256').update(payload).digest('hex');
      // The backend hashes what it receives and sends the payload back after the hash line; "hi" gets "hi".
      const server = net.createServer({ allowHalfOpen: true }, (socket) => {
        const hash = createHash('sha256');
        let small = true;
        socket.on('data', (c: Buffer) => {
          if (small && c.toString() === 'hi') return void socket.end('hi');
          small = false;
          hash.update(c);
        });
        socket.on('end', () => {
          if (small) return;
          socket.write(`${hash.digest('hex')}\n`);
          socket.end(payload);
        });
      });
      await new Promise<void>((r) => server.listen({ host: BACKENDS[0], port: 0 }, r));
      closers.push(() => server.close());
      const port = await freePort(VIP);
      await sync(proxy, [{ name: 'bulk', clusterIP: VIP, port, endpoints: [[BACKENDS[0] ?? '', (server.address() as net.AddressInfo).port]] }]);
      assert.equal(await fetchText(VIP, port, 'hi'), 'hi');
      const received = await new Promise<Buffer>((resolve, reject) => {
        const s = net.connect({ host: VIP, port, allowHalfOpen: true });
        const chunks: Buffer[] = [];
        s.on('data', (c: Buffer) => chunks.push(c));
        s.on('end', () => resolve(Buffer.concat(chunks)));
        s.on('error', reject);
        s.end(payload);
      });
      assert.equal(received.subarray(0, 65).toString(), `${digest}\n`);
      assert.equal(createHash('sha256').update(received.subarray(65)).digest('hex'), digest);
      await until(async () => (await proxy.stats()).active === 0);
      const stats = (await proxy.stats()).services['default/bulk:'];
      assert.equal(stats?.bytesIn, payload.length + 2);
      assert.equal(stats?.bytesOut, payload.length + 65 + 2);
      const handedOver = !splice ? 0 : 'spliceAfterBytes' in overrides ? 1 : 2;
      assert.equal(stats?.spliced, handedOver, 'the small exchange stays with Node unless every connection is spliced');
      await proxy.stop();
    });
  }

  test('a reset on either side reaches the other side as a reset', async () => {
    const { proxy } = await startProxy();
    const backendErrors: string[] = [];
    let backendGotData = (): void => undefined;
    const server = net.createServer((socket) => {
      socket.on('error', (err: NodeJS.ErrnoException) => backendErrors.push(err.code ?? err.message));
      socket.once('data', (c: Buffer) => {
        if (c.toString() === 'reset me') socket.resetAndDestroy();
        else backendGotData();
      });
    });
    await new Promise<void>((r) => server.listen({ host: BACKENDS[0], port: 0 }, r));
    closers.push(() => server.close());
    const port = await freePort(VIP);
    await sync(proxy, [{ name: 'resets', clusterIP: VIP, port, endpoints: [[BACKENDS[0] ?? '', (server.address() as net.AddressInfo).port]] }]);
    // The backend resets: the client gets ECONNRESET, not a clean end of stream.
    const clientSaw = await new Promise<string>((resolve) => {
      const s = net.connect({ host: VIP, port }, () => s.write('reset me'));
      s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
      s.on('end', () => resolve('clean end'));
    });
    assert.equal(clientSaw, 'ECONNRESET');
    // The client resets: the backend gets ECONNRESET.
    const got = new Promise<void>((r) => (backendGotData = r));
    const s = net.connect({ host: VIP, port }, () => s.write('hello'));
    s.on('error', () => undefined);
    await got;
    s.resetAndDestroy();
    await until(async () => backendErrors.includes('ECONNRESET'));
    await until(async () => (await proxy.stats()).active === 0);
    await proxy.stop();
  });

  test('the bytes of a connection are counted while it is open', async () => {
    const { proxy } = await startProxy();
    const server = net.createServer((socket) => {
      socket.on('error', () => undefined);
      socket.resume();
      socket.write(Buffer.alloc(300_000));
    });
    await new Promise<void>((r) => server.listen({ host: BACKENDS[0], port: 0 }, r));
    closers.push(() => server.close());
    const port = await freePort(VIP);
    await sync(proxy, [{ name: 'live', clusterIP: VIP, port, endpoints: [[BACKENDS[0] ?? '', (server.address() as net.AddressInfo).port]] }]);
    const s = net.connect({ host: VIP, port });
    s.on('error', () => undefined);
    s.resume();
    s.write(Buffer.alloc(1_000_000));
    const counted = async (): Promise<boolean> => {
      const stats = (await proxy.stats()).services['default/live:'];
      return stats?.active === 1 && stats.bytesIn === 1_000_000 && stats.bytesOut === 300_000;
    };
    await until(counted);
    s.destroy();
    await until(async () => (await proxy.stats()).active === 0);
    assert.equal((await proxy.stats()).services['default/live:']?.bytesIn, 1_000_000, 'kept after the connection ended');
    await proxy.stop();
  });

  test('endpoint removal drains open connections; service removal closes them; grace closes late', async () => {
    const echo = net.createServer((socket) => socket.pipe(socket));
    await new Promise<void>((r) => echo.listen({ host: BACKENDS[0], port: 0 }, r));
    closers.push(() => echo.close());
    const echoEp: [string, number] = [BACKENDS[0] ?? '', (echo.address() as net.AddressInfo).port];
    const [other] = await backends(['ignored', 'other']).then((l) => l.slice(1));
    assert.ok(other);
    const ask = (s: net.Socket, text: string): Promise<string> =>
      new Promise((resolve) => {
        s.once('data', (c: Buffer) => resolve(c.toString()));
        s.write(text);
      });
    for (const grace of [undefined, 200]) {
      const { proxy } = await startProxy({ drainGraceMs: grace });
      const port = await freePort(VIP);
      await sync(proxy, [{ name: 'drain', clusterIP: VIP, port, endpoints: [echoEp] }]);
      const s = net.connect({ host: VIP, port });
      s.on('error', () => undefined);
      const closed = new Promise<void>((r) => s.once('close', () => r()));
      assert.equal(await ask(s, 'one'), 'one');
      await sync(proxy, [{ name: 'drain', clusterIP: VIP, port, endpoints: [other] }]);
      assert.equal(await fetchText(VIP, port), 'other', 'new connections use the new endpoint');
      assert.equal(await ask(s, 'two'), 'two', 'the open connection still works');
      if (grace === undefined) {
        await sleep(300);
        assert.equal(await ask(s, 'three'), 'three', 'kept beyond any grace');
        await sync(proxy, []);
        await closed;
        assert.match(await fetchText(VIP, port), /^ERR:ECONNREFUSED/);
      } else {
        await closed;
      }
      await proxy.stop();
    }
  });

  test('UDP: replies come from the service address; a changed endpoint takes over the flows', async () => {
    const { proxy } = await startProxy({ udpIdleTimeoutMs: 200 });
    const a = await udpNameEcho(BACKENDS[0] ?? '', 'a');
    const b = await udpNameEcho(BACKENDS[1] ?? '', 'b');
    closers.push(() => a.socket.close(), () => b.socket.close());
    const port = await freePort(VIP);
    const spec = { name: 'udp', protocol: 'UDP' as const, clusterIP: VIP, port };
    await sync(proxy, [{ ...spec, endpoints: [[BACKENDS[0] ?? '', a.port]] }]);
    const client = dgram.createSocket('udp4');
    closers.push(() => client.close());
    await new Promise<void>((r) => client.bind(0, '127.0.0.1', r));
    assert.deepEqual(await udpAsk(client, VIP, port, 'ping1'), { text: 'a:ping1', from: `${VIP}:${port}` });
    assert.deepEqual(await udpAsk(client, VIP, port, 'ping2'), { text: 'a:ping2', from: `${VIP}:${port}` });
    assert.equal((await proxy.stats()).services['default/udp:']?.active, 1);
    await sync(proxy, [{ ...spec, endpoints: [[BACKENDS[1] ?? '', b.port]] }]);
    assert.deepEqual(await udpAsk(client, VIP, port, 'ping3'), { text: 'b:ping3', from: `${VIP}:${port}` });
    await sleep(600);
    assert.equal((await proxy.stats()).services['default/udp:']?.active, 0, 'idle flow closed');
    await proxy.stop();
  });

  test('UDP affinity: different client ports of one address reach one endpoint', async () => {
    const { proxy } = await startProxy({ workers: 2 });
    const a = await udpNameEcho(BACKENDS[0] ?? '', 'a');
    const b = await udpNameEcho(BACKENDS[1] ?? '', 'b');
    closers.push(() => a.socket.close(), () => b.socket.close());
    const port = await freePort(VIP);
    await sync(proxy, [{ name: 'udp-sticky', protocol: 'UDP', clusterIP: VIP, port, affinitySeconds: 60,
      endpoints: [[BACKENDS[0] ?? '', a.port], [BACKENDS[1] ?? '', b.port]] }]);
    const seen = new Set<string>();
    for (let i = 0; i < 8; i++) {
      const client = dgram.createSocket('udp4');
      await new Promise<void>((r) => client.bind(0, '127.0.0.1', r));
      seen.add((await udpAsk(client, VIP, port, 'x')).text);
      client.close();
    }
    assert.equal(seen.size, 1);
    await proxy.stop();
  });

  test('relay processes die with their parent (SIGKILL: no stop, only the closed IPC channel)', async () => {
    const [backend] = await backends(['solo']);
    assert.ok(backend);
    const port = await freePort(VIP);
    const parent = spawn(process.execPath, [PARENT, VIP, backend[0], String(backend[1]), String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
    closers.push(() => parent.kill('SIGKILL'));
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: parent.stdout }).once('line', resolve);
      parent.once('exit', (code) => reject(new Error(`relay-parent exited ${code}`)));
    });
    const { pids } = JSON.parse(line) as { pids: number[] };
    assert.equal(pids.length, 2);
    assert.equal(await fetchText(VIP, port), 'solo');
    const alive = (pid: number): boolean => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    assert.ok(pids.every(alive));
    parent.kill('SIGKILL');
    await until(async () => !pids.some(alive), 3000);
    assert.match(await fetchText(VIP, port), /^ERR:ECONNREFUSED/);
  });

  test('the connection limit resets clients above it', async () => {
    const { proxy } = await startProxy({ maxConnections: 2 });
    const hold = net.createServer(() => undefined);
    await new Promise<void>((r) => hold.listen({ host: BACKENDS[0], port: 0 }, r));
    closers.push(() => hold.close());
    const port = await freePort(VIP);
    await sync(proxy, [{ name: 'limit', clusterIP: VIP, port, endpoints: [[BACKENDS[0] ?? '', (hold.address() as net.AddressInfo).port]] }]);
    const held = [net.connect({ host: VIP, port }), net.connect({ host: VIP, port })];
    for (const s of held) s.on('error', () => undefined);
    await sleep(100);
    assert.equal(await fetchText(VIP, port), 'ERR:ECONNRESET');
    for (const s of held) s.destroy();
    await until(async () => (await proxy.stats()).active === 0);
    await proxy.stop();
  });

  test('a listener that cannot open fails the sync with one line, and the others still open', async () => {
    const { proxy } = await startProxy();
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen({ host: VIP, port: 0 }, r));
    closers.push(() => busy.close());
    const busyPort = (busy.address() as net.AddressInfo).port;
    const port = await freePort(VIP);
    const eps = await backends(['ok']);
    await assert.rejects(
      sync(proxy, [{ name: 'busy', clusterIP: VIP, port: busyPort, endpoints: eps }, { name: 'fine', clusterIP: VIP, port, endpoints: eps }]),
      /1 userspace listener\(s\) could not open, first TCP 127\.88\.\d+\.1:\d+: EADDRINUSE/,
    );
    assert.equal(await fetchText(VIP, port), 'ok');
    await proxy.stop();
  });
});
