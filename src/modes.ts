// Proxy mode registry: name → modes/<name>/index.ts, loaded on demand so that `kproxy plan` and a run in one
// mode never pay for the others. A mode that is not in this build fails clearly instead of pretending to work.
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { ModeInvalidError, ModeUnavailableError } from './errors.ts';
import type { ModeModule } from './model/mode.ts';
import type { ProxyModeName } from './model/types.ts';

const BUILT_IN_MODES_DIR = fileURLToPath(new URL('../modes/', import.meta.url));

export interface LoadModeOptions {
  /** Folder holding <name>/index.ts; the project's modes/ by default (tests point it elsewhere). */
  readonly modesDir?: string;
}

/**
 * Where mode modules are looked up: `KPROXY_MODES_DIR` when set (development and CLI tests use it to run the
 * whole program against a mode that touches nothing), else the project's modes/ folder.
 */
export function modesDirFromEnvironment(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env.KPROXY_MODES_DIR;
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : BUILT_IN_MODES_DIR;
}

export function modeModulePath(name: ProxyModeName, options: LoadModeOptions = {}): string {
  return join(options.modesDir ?? BUILT_IN_MODES_DIR, name, 'index.ts');
}

export function isModeAvailable(name: ProxyModeName, options: LoadModeOptions = {}): boolean {
  return existsSync(modeModulePath(name, options));
}

export async function loadMode(name: ProxyModeName, options: LoadModeOptions = {}): Promise<ModeModule> {
  const path = modeModulePath(name, options);
  if (!existsSync(path)) throw new ModeUnavailableError(name);
  let loaded: { mode?: unknown };
  try {
    loaded = (await import(pathToFileURL(path).href)) as { mode?: unknown };
  } catch (err) {
    throw new ModeInvalidError(`proxy mode ${name} failed to load: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`, { cause: err });
  }
  const mode = loaded.mode;
  if (!isModeModule(mode) || mode.name !== name) {
    throw new ModeInvalidError(`proxy mode ${name}: ${path} does not export a ModeModule named "${name}" as \`mode\``);
  }
  return mode;
}

function isModeModule(value: unknown): value is ModeModule {
  if (value === null || typeof value !== 'object') return false;
  const candidate = value as Record<string, unknown>;
  return typeof candidate.name === 'string'
    && ['create', 'cleanup', 'render', 'trace'].every((key) => typeof candidate[key] === 'function');
}
