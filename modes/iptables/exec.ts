// Running the iptables/conntrack tools: the only place this mode starts processes.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import type { Writable } from 'node:stream';

export interface CommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a tool with optional stdin. Never rejects: a missing binary is code 127 with the reason in stderr. */
export type CommandRunner = (cmd: string, args: readonly string[], input?: string) => Promise<CommandResult>;

export const runCommand: CommandRunner = (cmd, args, input) =>
  new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let failed: Error | undefined;
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.stdin.on('error', () => { /* the tool exited before reading everything; its exit code tells why */ });
    child.on('error', (error) => { failed = error; });
    child.on('close', (code) => {
      if (failed) resolve({ code: 127, stdout: '', stderr: `${cmd}: ${failed.message}` });
      else resolve({ code: code ?? 1, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
    void feed(child.stdin, input ?? '');
  });

const CHUNK = 1 << 20;

/** Write big inputs (a full restore is tens of MB) in slices, so no second full-size copy is ever made. */
async function feed(stdin: Writable, input: string): Promise<void> {
  for (let offset = 0; offset < input.length && !stdin.destroyed; offset += CHUNK) {
    if (!stdin.write(input.slice(offset, offset + CHUNK))) await once(stdin, 'drain').catch(() => undefined);
  }
  stdin.end();
}

/** First line of a tool's complaint, for one-line errors. */
export function firstLine(result: CommandResult): string {
  return (result.stderr.trim() || result.stdout.trim() || `exit ${result.code}`).split('\n')[0] ?? '';
}
