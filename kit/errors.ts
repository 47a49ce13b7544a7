// The errors a kernel mode throws across the seam: a stable code (src/model/mode.ts ModeErrorCode) and, when one IP
// family failed, that family. The composition root prints them as one line with their exit status.
import type { ModeErrorCode, ModeFailure } from '../src/model/mode.ts';
import type { IPFamily } from '../src/model/types.ts';

export interface ModeErrorOptions {
  readonly family?: IPFamily;
  readonly cause?: unknown;
}

export class ModeError extends Error implements ModeFailure {
  readonly code: ModeErrorCode;
  readonly family?: IPFamily;
  constructor(code: ModeErrorCode, message: string, options: ModeErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ModeError';
    this.code = code;
    if (options.family !== undefined) this.family = options.family;
  }
}

/** Whether `err` already carries a mode error code (and so needs no wrapping). */
export function isModeFailure(err: unknown): err is ModeFailure {
  return err instanceof Error && ['KP_ERR_APPLY_FAILED', 'KP_ERR_CONFIG_INVALID', 'KP_ERR_TOOL_MISSING'].includes((err as { code?: unknown }).code as string);
}
