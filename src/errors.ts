// Errors the user can act on. Each has a stable code (documented in docs/errors.md) and a one-line message;
// the CLI prints `kproxy: <message> (<code>)` and exits with `exitCode`, never a stack trace.
import type { ModeFailure } from './model/mode.ts';
import type { IPFamily } from './model/types.ts';

export type ErrorCode =
  | 'KP_ERR_USAGE'
  | 'KP_ERR_CONFIG_INVALID'
  | 'KP_ERR_CONFIG_UNREADABLE'
  | 'KP_ERR_MODE_UNAVAILABLE'
  | 'KP_ERR_MODE_INVALID'
  | 'KP_ERR_SOURCE_UNAVAILABLE'
  | 'KP_ERR_MANIFEST_UNREADABLE'
  | 'KP_ERR_MANIFEST_INVALID'
  | 'KP_ERR_APPLY_FAILED'
  | 'KP_ERR_TOOL_MISSING'
  | 'KP_ERR_LISTEN_FAILED';

export interface ErrorCodeInfo {
  readonly code: ErrorCode;
  /** Process exit status when this error ends the program. */
  readonly exitCode: number;
  readonly summary: string;
}

/** The catalogue docs/errors.md mirrors (a test keeps the two in step). */
export const ERROR_CODES: readonly ErrorCodeInfo[] = [
  { code: 'KP_ERR_USAGE', exitCode: 2, summary: 'The command line is wrong (unknown flag, missing argument).' },
  { code: 'KP_ERR_CONFIG_INVALID', exitCode: 2, summary: 'A flag or config file field has an invalid value.' },
  { code: 'KP_ERR_CONFIG_UNREADABLE', exitCode: 2, summary: 'The --config file cannot be read or is not a KubeProxyConfiguration.' },
  { code: 'KP_ERR_MODE_UNAVAILABLE', exitCode: 2, summary: 'The requested proxy mode is not part of this build.' },
  { code: 'KP_ERR_MODE_INVALID', exitCode: 1, summary: 'A proxy mode module exists but does not export a usable `mode`.' },
  { code: 'KP_ERR_SOURCE_UNAVAILABLE', exitCode: 2, summary: 'No usable source of Services (no --manifests and no Kubernetes API source).' },
  { code: 'KP_ERR_MANIFEST_UNREADABLE', exitCode: 2, summary: 'The --manifests path does not exist or cannot be read.' },
  { code: 'KP_ERR_MANIFEST_INVALID', exitCode: 2, summary: 'A manifest file is not valid YAML/JSON (the last good content stays in effect).' },
  { code: 'KP_ERR_APPLY_FAILED', exitCode: 1, summary: 'A proxy mode failed to program the node (the sync loop retries with backoff).' },
  { code: 'KP_ERR_TOOL_MISSING', exitCode: 1, summary: 'A tool or kernel feature the proxy mode needs is missing (e.g. iptables, or its nat table in this kernel).' },
  { code: 'KP_ERR_LISTEN_FAILED', exitCode: 1, summary: 'The health or metrics server cannot listen on its bind address (e.g. the port is in use) and `--bind-address-hard-fail` is set; without it the agent keeps running, warns and retries every 5 s, as kube-proxy does.' },
];

export function exitCodeOf(code: ErrorCode): number {
  return ERROR_CODES.find((info) => info.code === code)?.exitCode ?? 1;
}

export interface KproxyErrorOptions {
  readonly cause?: unknown;
}

export class KproxyError extends Error {
  readonly code: ErrorCode;
  readonly exitCode: number;
  constructor(code: ErrorCode, message: string, options: KproxyErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.exitCode = exitCodeOf(code);
  }

  /** The single line the CLI prints. */
  oneLine(): string {
    return `${this.message.replace(/\s*\n\s*/g, ' ')} (${this.code})`;
  }
}

export class UsageError extends KproxyError {
  constructor(message: string) {
    super('KP_ERR_USAGE', message);
  }
}

export interface ConfigErrorOptions extends KproxyErrorOptions {
  /** Dotted field path as the config file spells it (e.g. "iptables.masqueradeBit") or the flag ("--sync-period"). */
  readonly field: string;
  readonly value: unknown;
  readonly reason: string;
}

export class ConfigError extends KproxyError {
  readonly field: string;
  readonly value: unknown;
  constructor(options: ConfigErrorOptions) {
    super('KP_ERR_CONFIG_INVALID', `invalid ${options.field} ${showValue(options.value)}: ${options.reason}`, options);
    this.field = options.field;
    this.value = options.value;
  }
}

export class ConfigUnreadableError extends KproxyError {
  constructor(message: string, options: KproxyErrorOptions = {}) {
    super('KP_ERR_CONFIG_UNREADABLE', message, options);
  }
}

export class ModeUnavailableError extends KproxyError {
  readonly mode: string;
  constructor(mode: string) {
    super('KP_ERR_MODE_UNAVAILABLE', `proxy mode ${mode} is not available in this build`);
    this.mode = mode;
  }
}

export class ModeInvalidError extends KproxyError {
  constructor(message: string, options: KproxyErrorOptions = {}) {
    super('KP_ERR_MODE_INVALID', message, options);
  }
}

export class SourceUnavailableError extends KproxyError {
  constructor(message: string) {
    super('KP_ERR_SOURCE_UNAVAILABLE', message);
  }
}

export class ManifestError extends KproxyError {
  readonly file: string;
  constructor(code: 'KP_ERR_MANIFEST_UNREADABLE' | 'KP_ERR_MANIFEST_INVALID', file: string, message: string, options: KproxyErrorOptions = {}) {
    super(code, message, options);
    this.file = file;
  }
}

export interface ModeErrorOptions extends KproxyErrorOptions {
  /** The IP family that failed, when the mode said. */
  readonly family?: IPFamily;
}

export class ApplyError extends KproxyError {
  readonly family?: IPFamily;
  constructor(message: string, options: ModeErrorOptions = {}) {
    super('KP_ERR_APPLY_FAILED', message, options);
    if (options.family !== undefined) this.family = options.family;
  }
}

export class ToolMissingError extends KproxyError {
  constructor(message: string, options: KproxyErrorOptions = {}) {
    super('KP_ERR_TOOL_MISSING', message, options);
  }
}

/**
 * What the CLI prints for `err`: a KproxyError as it is; a mode's error (a ModeFailure: an Error whose `code` is one
 * of the mode codes, see src/model/mode.ts) as the KproxyError of its code; anything else undefined (a bug).
 */
export function asKproxyError(err: unknown): KproxyError | undefined {
  if (err instanceof KproxyError) return err;
  if (!(err instanceof Error)) return undefined;
  const failure = err as Partial<ModeFailure>;
  const options = { cause: err, ...(failure.family !== undefined && { family: failure.family }) };
  switch (failure.code) {
    case 'KP_ERR_APPLY_FAILED': return new ApplyError(err.message, options);
    case 'KP_ERR_TOOL_MISSING': return new ToolMissingError(err.message, options);
    case 'KP_ERR_CONFIG_INVALID': return new KproxyError('KP_ERR_CONFIG_INVALID', err.message, options);
    default: return undefined;
  }
}

export class ListenError extends KproxyError {
  constructor(message: string, options: KproxyErrorOptions = {}) {
    super('KP_ERR_LISTEN_FAILED', message, options);
  }
}

function showValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === undefined) return '(missing)';
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
