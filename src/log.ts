// The one place that knows about pino. Everything else logs through the small Logger interface (src/model/mode.ts).
// Logs go to stderr (as kube-proxy's do) so that `kproxy plan` output on stdout stays clean.
import { writeSync } from 'node:fs';
import { pino, stdSerializers, type DestinationStream, type Level } from 'pino';
import type { Logger } from './model/mode.ts';

export type LogFormat = 'json' | 'text';

/** The model's Logger plus `trace`, for the composition root's own chatty messages. */
export interface AppLogger extends Logger {
  trace(obj: object, msg?: string): void;
  child(bindings: object): AppLogger;
  /** Whether a message at `level` would be written (skip building expensive log payloads). */
  isLevelEnabled(level: Level): boolean;
}

export interface LoggerOptions {
  readonly format: LogFormat;
  /** kube-proxy's -v: 0-1 info, 2-3 debug, 4 and above trace. */
  readonly verbosity: number;
  /** Where finished lines go; stderr by default. Tests pass a collector. */
  readonly write?: (line: string) => void;
}

export function levelForVerbosity(verbosity: number): Level {
  if (verbosity >= 4) return 'trace';
  if (verbosity >= 2) return 'debug';
  return 'info';
}

const writeStderr = (line: string): void => {
  writeSync(2, line);
};

export function createLogger(options: LoggerOptions): AppLogger {
  const write = options.write ?? writeStderr;
  const destination: DestinationStream = {
    write: options.format === 'text' ? (line: string) => write(formatTextLine(line)) : (line: string) => write(withUniqueKeys(line)),
  };
  return pino(
    {
      level: levelForVerbosity(options.verbosity),
      base: null,
      serializers: { err: stdSerializers.err },
    },
    destination,
  );
}

/** A logger that drops everything (tests, and the `plan` command before flags are known). */
export function silentLogger(): AppLogger {
  return pino({ level: 'silent' });
}

/**
 * pino writes a key once per place that set it (a child's bindings, a nested child's, the call's object), so one line
 * could read `"mode":"iptables","mode":"iptables"`: keep each key once, with the value set last (the most specific).
 */
export function withUniqueKeys(jsonLine: string): string {
  try {
    return `${JSON.stringify(JSON.parse(jsonLine))}\n`;
  } catch {
    return jsonLine;
  }
}

const LEVEL_NAMES: Readonly<Record<number, string>> = {
  10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL',
};
const RESERVED = new Set(['level', 'time', 'msg']);

/** One pino JSON line → `2025-01-02T03:04:05.678Z INFO  message key=value ...` (one line, no colours). */
export function formatTextLine(jsonLine: string): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(jsonLine) as Record<string, unknown>;
  } catch {
    return jsonLine.endsWith('\n') ? jsonLine : `${jsonLine}\n`;
  }
  const time = typeof record.time === 'number' ? new Date(record.time).toISOString() : '';
  const level = (typeof record.level === 'number' ? LEVEL_NAMES[record.level] : undefined) ?? 'LOG';
  const msg = typeof record.msg === 'string' ? record.msg : '';
  const fields = Object.entries(record)
    .filter(([key]) => !RESERVED.has(key))
    .map(([key, value]) => `${key}=${formatValue(key, value)}`);
  return `${[time, level.padEnd(5), msg, ...fields].filter((part) => part !== '').join(' ')}\n`;
}

function formatValue(key: string, value: unknown): string {
  if (key === 'err' && value !== null && typeof value === 'object' && 'message' in value) {
    return quoteIfNeeded(String((value as { message: unknown }).message));
  }
  if (typeof value === 'string') return quoteIfNeeded(value);
  return JSON.stringify(value) ?? String(value);
}

function quoteIfNeeded(text: string): string {
  return /^[^\s"=]+$/.test(text) ? text : JSON.stringify(text);
}
