// Driving iptables-restore / iptables-save through a CommandRunner: the side-effecting half of the iptables kit
// (the text comes from render.ts, the listing is read by save.ts).
import type { Logger } from '../../src/model/mode.ts';
import { ModeError } from '../errors.ts';
import { firstLine, type CommandInput, type CommandResult, type CommandRunner } from '../exec.ts';
import { SaveReader, type ChainOwner, type SavedState } from './save.ts';
import type { IptablesTools } from './variant.ts';

/**
 * Restore waits for the xtables lock without a time limit. With a limit (`-w 5`), iptables-legacy-restore arms
 * SIGALRM for it and never disarms it, so the alarm interrupts the tool's read of stdin 5 s after it started:
 * any input that streams for longer (a full restore rendered while the tool reads it, ~30 s at 10k services) is
 * cut there ("COMMIT expected"). Tested on a real kernel in test/kernel/iptables-restore.test.ts.
 */
export const RESTORE_ARGS: readonly string[] = ['--noflush', '-w'];
/** Seconds the probe of a family waits for the xtables lock (short commands: no stdin to interrupt). */
const LOCK_WAIT = '5';

function lineCount(text: string): number {
  let count = 0;
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) count++;
  return count;
}

/** Restore input: text, or a function that renders it piece by piece (called again to report a failed line). */
export type RestoreInput = string | (() => Iterable<string>);

/** "line 7 failed" → the text of line 7, so the log shows which rule the kernel refused. */
function failedLine(result: CommandResult, input: RestoreInput): string | undefined {
  const match = /line (\d+) failed/.exec(result.stderr);
  if (!match) return undefined;
  let skip = Number(match[1]) - 1;
  for (const piece of typeof input === 'string' ? [input] : input()) {
    const lines = piece.split('\n');
    if (lines.at(-1) === '') lines.pop();
    if (skip < lines.length) return lines[skip];
    skip -= lines.length;
  }
  return undefined;
}

/** A restore the tool refused (KP_ERR_APPLY_FAILED, for the tools' family): its complaint and, when it names one, the line. */
export class RestoreFailed extends ModeError {
  readonly tool: string;
  readonly line: string | undefined;
  constructor(tools: IptablesTools, result: CommandResult, line: string | undefined) {
    super('KP_ERR_APPLY_FAILED', `${tools.restore} failed: ${firstLine(result)}${line ? ` (${line.slice(0, 200)})` : ''}`, { family: tools.family });
    this.name = 'RestoreFailed';
    this.tool = tools.restore;
    this.line = line;
  }
}

/** Pipes the input into the restore tool (`--noflush`: only the chains the input names change); returns its lines. */
export async function restore(run: CommandRunner, log: Logger, tools: IptablesTools, input: RestoreInput): Promise<number> {
  let lines = 0;
  const counted = (pieces: Iterable<string>): Iterable<string> => (function* () {
    for (const piece of pieces) {
      lines += lineCount(piece);
      yield piece;
    }
  })();
  const stdin: CommandInput = typeof input === 'string' ? input : counted(input());
  if (typeof input === 'string') lines = lineCount(input);
  const result = await run(tools.restore, RESTORE_ARGS, stdin);
  if (result.code === 0) return lines;
  const line = failedLine(result, input);
  log.error({ tool: tools.restore, stderr: result.stderr.trim(), line }, 'restore failed');
  throw new RestoreFailed(tools, result, line);
}

/**
 * What the node holds of our chains (named `prefix`…), read from the save tool's stdout as it arrives (the listing
 * is ≈ 60 MB at 10k services: never held whole). No `state` when the tool failed.
 */
export async function readNodeState(run: CommandRunner, tools: IptablesTools, owner: string | ChainOwner): Promise<{ state?: SavedState; result: CommandResult }> {
  const reader = new SaveReader(owner);
  const result = await run(tools.save, [], undefined, { onStdout: (chunk) => reader.push(chunk) });
  if (result.code !== 0) return { result };
  // A runner that does not pass the option on returns the listing as text: read it the same way.
  if (result.stdout !== '') reader.push(Buffer.from(result.stdout));
  return { state: reader.end(), result };
}

/** readNodeState that throws when the save tool fails. */
export async function save(run: CommandRunner, tools: IptablesTools, prefix: string): Promise<SavedState> {
  const { state, result } = await readNodeState(run, tools, prefix);
  if (!state) throw new ModeError('KP_ERR_APPLY_FAILED', `${tools.save} failed: ${firstLine(result)}`, { family: tools.family });
  return state;
}

/** Whether the tools and the kernel support a family (IPv6 may be compiled out or its tools missing). */
export async function familyUsable(run: CommandRunner, tools: IptablesTools): Promise<boolean> {
  const result = await run(tools.iptables, ['-w', LOCK_WAIT, '-t', 'nat', '-S', 'POSTROUTING']);
  return result.code === 0;
}
