// Promise wrappers around child processes for the harness: run a command, feed it stdin, collect its output.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';

export interface RunOptions {
  /** Written to the child's stdin, which is then closed. */
  readonly input?: string;
  /** Kill the child (SIGKILL) after this long; the result then has code -1 and timedOut true. */
  readonly timeoutMs?: number;
  /** Resolve instead of throwing when the exit code is not 0. */
  readonly allowFailure?: boolean;
  readonly env?: NodeJS.ProcessEnv;
}

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
}

export class CommandError extends Error {
  readonly result: RunResult;
  constructor(command: readonly string[], result: RunResult) {
    const detail = (result.stderr.trim() || result.stdout.trim()).split('\n').slice(0, 5).join(' | ');
    super(`${command.join(' ')} exited ${result.timedOut ? 'on timeout' : result.code}: ${detail}`);
    this.name = 'CommandError';
    this.result = result;
  }
}

export function run(cmd: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: options.env ?? process.env });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = options.timeoutMs === undefined ? undefined : setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs);
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.stdin.on('error', () => { /* the child may exit before reading its input */ });
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code) => {
      clearTimeout(timer);
      const result: RunResult = {
        code: timedOut ? -1 : (code ?? -1),
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
        timedOut,
      };
      if (result.code !== 0 && !options.allowFailure) reject(new CommandError([cmd, ...args], result));
      else resolve(result);
    });
    child.stdin.end(options.input ?? '');
  });
}

/** Synchronous variant for exit handlers, where no promise can run. Never throws. */
export function runSyncQuiet(cmd: string, args: readonly string[]): boolean {
  try {
    execFileSync(cmd, args, { stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

/** Send `signal` to a child (by its PID), SIGKILL it after `graceMs`, and resolve with what `exit` resolves to. */
export async function stopChildProcess<T>(child: ChildProcess, exit: Promise<T>, signal: NodeJS.Signals, graceMs: number): Promise<T> {
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  const result = await exit;
  clearTimeout(timer);
  return result;
}
