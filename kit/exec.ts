// Running tools (iptables-restore, nft, conntrack, ipset…): the only place a kernel mode starts processes.
import { spawn } from 'node:child_process';
import type { Writable } from 'node:stream';
import { firstLineOf } from '../src/util/errors.ts';

export interface CommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * A tool's stdin: a string, or pieces produced on demand (a full restore is tens of MB: it is rendered while the
 * tool reads it, never held whole), synchronously or not.
 */
export type CommandInput = string | Iterable<string> | AsyncIterable<string>;

export interface CommandOptions {
  /**
   * Receives stdout chunk by chunk as the tool writes it, instead of collecting it into `stdout` (which is then '').
   * For listings too big to hold whole (iptables-save of a node with 10k services is ≈ 60 MB).
   */
  readonly onStdout?: (chunk: Buffer) => void;
}

/**
 * Runs a tool with optional stdin. Never rejects: a missing binary is code 127 with the reason in stderr.
 * Wrappers (tests, benchmarks) must pass `options` on.
 */
export type CommandRunner = (cmd: string, args: readonly string[], input?: CommandInput, options?: CommandOptions) => Promise<CommandResult>;

export const runCommand: CommandRunner = (cmd, args, input, options) =>
  new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let failed: Error | undefined;
    const onStdout = options?.onStdout;
    let outputFailed: Error | undefined;
    child.stdout.on('data', (d: Buffer) => {
      if (!onStdout) out.push(d);
      else if (!outputFailed) {
        try {
          onStdout(d);
        } catch (error) {
          outputFailed = error instanceof Error ? error : new Error(String(error));
          child.kill('SIGKILL');
        }
      }
    });
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.stdin.on('error', () => { /* the tool exited before reading everything; its exit code tells why */ });
    child.on('error', (error) => { failed = error; });
    let inputFailed: Error | undefined;
    child.on('close', (code) => {
      if (failed) resolve({ code: 127, stdout: '', stderr: `${cmd}: ${failed.message}` });
      // Producing the input failed: the tool was killed before it could commit anything.
      else if (inputFailed) resolve({ code: code ?? 1, stdout: '', stderr: `${cmd}: input failed: ${inputFailed.message}` });
      else if (outputFailed) resolve({ code: code || 1, stdout: '', stderr: `${cmd}: reading its output failed: ${outputFailed.message}` });
      else resolve({ code: code ?? 1, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
    feed(child.stdin, input ?? '').catch((error: unknown) => {
      inputFailed = error instanceof Error ? error : new Error(String(error));
      child.kill('SIGKILL');
    });
  });

/** Resolves when the pipe can take more, or will never (the tool closed it). */
function drained(stdin: Writable): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      stdin.off('drain', done);
      stdin.off('close', done);
      stdin.off('error', done);
      resolve();
    };
    stdin.on('drain', done);
    stdin.on('close', done);
    stdin.on('error', done);
  });
}

/** Bytes handed to the pipe at once: big enough to keep write calls few, small enough to keep memory flat. */
const CHUNK = 1 << 16;

/**
 * Feed stdin in slices of about CHUNK characters, waiting for 'drain' whenever the pipe is full, so at most a
 * slice or two is buffered (backpressure) and an iterable input is pulled only as fast as the tool reads it.
 */
async function feed(stdin: Writable, input: CommandInput): Promise<void> {
  const write = async (slice: string): Promise<void> => {
    if (!stdin.write(slice)) await drained(stdin);
  };
  if (typeof input === 'string') {
    for (let offset = 0; offset < input.length && !stdin.destroyed; offset += CHUNK) await write(input.slice(offset, offset + CHUNK));
  } else {
    let pending: string[] = [];
    let size = 0;
    /** Gathers pieces; returns a slice of about CHUNK characters when one is full. */
    const gather = (piece: string): string | undefined => {
      pending.push(piece);
      size += piece.length;
      if (size < CHUNK) return undefined;
      const slice = pending.join('');
      pending = [];
      size = 0;
      return slice;
    };
    // Synchronous pieces are awaited only when a slice is full (a 10k-service restore is ~100k pieces).
    if (Symbol.iterator in input) {
      for (const piece of input) {
        if (stdin.destroyed) break; // the tool exited early; its exit code tells why
        const slice = gather(piece);
        if (slice !== undefined) await write(slice);
      }
    } else {
      for await (const piece of input) {
        if (stdin.destroyed) break;
        const slice = gather(piece);
        if (slice !== undefined) await write(slice);
      }
    }
    if (size > 0 && !stdin.destroyed) await write(pending.join(''));
  }
  stdin.end();
}

/** First line of a tool's complaint, for one-line errors. */
export function firstLine(result: CommandResult): string {
  return firstLineOf(result.stderr.trim() || result.stdout.trim() || `exit ${result.code}`);
}
