// Spawning bin/kproxy.js with the project's Node 24 (process.execPath inside `npm test`).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const BIN = join(ROOT, 'bin', 'kproxy.js');
export const FIXTURES = join(ROOT, 'test', 'cli', 'fixtures');
export const EXAMPLE = join(ROOT, 'examples', 'basic');

export interface RunResult {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function kproxy(args: readonly string[], env: NodeJS.ProcessEnv = {}): RunResult {
  const run = spawnSync(process.execPath, [BIN, ...args], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, ...env }, timeout: 20_000 });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

export function startKproxy(args: readonly string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  return spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
}

/**
 * A modes folder whose `iptables` mode touches nothing and records every call (one JSON line each) in
 * `calls`: it lets the tests run the whole program, signals included, without programming the kernel.
 */
export function fakeModesDir(): { dir: string; calls: string } {
  const dir = mkdtempSync(join(tmpdir(), 'kproxy-fake-modes-'));
  const calls = join(dir, 'calls.jsonl');
  writeFileSync(calls, '');
  mkdirSync(join(dir, 'iptables'));
  writeFileSync(join(dir, 'iptables', 'index.ts'), `
import { appendFileSync } from 'node:fs';
const note = (event) => appendFileSync(${JSON.stringify(calls)}, JSON.stringify(event) + '\\n');
export const mode = {
  name: 'iptables',
  compile(state) { return state; },
  async create(options) {
    note({ call: 'create', config: options.config });
    return {
      async sync(state, request) {
        note({ call: 'sync', full: request.full, node: state.node.name, services: state.families.IPv4.services.map((s) => s.key) });
        return { full: request.full };
      },
      async stop() { note({ call: 'stop' }); },
    };
  },
  async cleanup() { note({ call: 'cleanup' }); },
  render() { return 'FAKE RULES\\n'; },
  trace() { return { kind: 'drop' }; },
};
`);
  return { dir, calls };
}

export async function waitFor<T>(probe: () => T | undefined, what: string, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
