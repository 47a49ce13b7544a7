// The newcomer's demo, end to end: `node examples/demo/run.ts` on a copy of the demo manifests, no root.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { countBy, sleep } from './helpers.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'kproxy-demo-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function get(ip: string): Promise<string> {
  return new Promise((resolve) => {
    const req = http.get({ host: ip, port: 8080, path: '/', agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve(body.split(' ')[0] ?? ''));
    });
    req.on('error', (err: NodeJS.ErrnoException) => resolve(`ERR:${err.code ?? err.message}`));
  });
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`demo: ${what} did not happen within ${ms} ms`);
    await sleep(100);
  }
}

test('npm run demo: balanced, sticky, follows manifest edits, stops cleanly', async () => {
  cpSync(join(root, 'examples/demo/manifests'), dir, { recursive: true });
  const manifest = join(dir, 'demo.yaml');
  const child = spawn(process.execPath, [join(root, 'examples/demo/run.ts'), dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    await until('the first answer', async () => ((await get('127.0.10.1')).startsWith('hello-') ? true : undefined));
    const spread = [];
    for (let i = 0; i < 9; i++) spread.push(await get('127.0.10.1'));
    assert.deepEqual(countBy(spread), { 'hello-1': 3, 'hello-2': 3, 'hello-3': 3 }, output);
    // The agent's health and metrics contract, as a person would check it next to the demo.
    const health = await fetch('http://127.0.0.1:10256/healthz');
    assert.equal(health.status, 200);
    assert.equal(((await health.json()) as { nodeEligible?: boolean }).nodeEligible, true);
    const metrics = await (await fetch('http://127.0.0.1:10249/metrics')).text();
    const relayed = /kproxy_userspace_relay_connections_total\{service="demo\/hello:http",result="relayed"\} (\d+)/.exec(metrics);
    assert.ok(relayed && Number(relayed[1]) >= 9, metrics.slice(0, 2000));
    assert.equal(await (await fetch('http://127.0.0.1:10249/proxyMode')).text(), 'userspace');
    const sticky = [];
    for (let i = 0; i < 6; i++) sticky.push(await get('127.0.10.2'));
    assert.equal(new Set(sticky).size, 1);

    writeFileSync(manifest, readFileSync(manifest, 'utf8').replace(
      '  - { addresses: [127.0.20.3], conditions: { ready: true }, nodeName: demo-node }\n---\n# The same',
      '  - { addresses: [127.0.20.3], conditions: { ready: true }, nodeName: demo-node }\n  - { addresses: [127.0.20.4], conditions: { ready: true }, nodeName: demo-node }\n---\n# The same',
    ));
    await until('hello-4 after the edit', async () => ((await get('127.0.10.1')) === 'hello-4' ? true : undefined));
  } finally {
    child.kill('SIGTERM');
    assert.equal(await exited, 0, output);
  }
  assert.match(await get('127.0.10.1'), /^ERR:ECONNREFUSED/);
});
