// Proxy mode registry: each built-in mode is a typed import of modes/<name>/index.ts, loaded on demand so that
// `kproxy plan` and a run in one mode never pay for the others (and plan/trace never load an apply layer: each
// mode loads that in its own `create`). A mode that is not in this build fails clearly instead of pretending to work.
//
// The registry is also where a mode's compiled form is closed over: `bindMode` turns a ModeModule<C> into a
// LoadedMode whose plan, trace and proxier all go through the module's one `compile`.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ApplyError, asKproxyError, ModeInvalidError, ModeUnavailableError } from './errors.ts';
import type { ModeModule, ModeOptions, ProxyMode, ResyncCadence } from './model/mode.ts';
import type { Packet, Verdict } from './model/trace.ts';
import type { DesiredState, ProxyModeName } from './model/types.ts';
import { firstLineOf } from './util/errors.ts';

/** A mode with its compiled form hidden: what `plan`, `trace` and the run command use. */
export interface LoadedMode {
  readonly name: ProxyModeName;
  readonly usesConntrack: boolean;
  readonly resync: ResyncCadence;
  /** compile, then render (`kproxy plan`). */
  render(state: DesiredState): string;
  /** compile, then trace (`kproxy trace`). */
  trace(state: DesiredState, packet: Packet): Verdict;
  /** The running mode: every sync compiles the state, then the mode's proxier applies it. */
  create(options: ModeOptions): Promise<ProxyMode>;
  cleanup(options: ModeOptions): Promise<void>;
}

export function bindMode<C>(module: ModeModule<C>): LoadedMode {
  return {
    name: module.name,
    usesConntrack: module.usesConntrack === true,
    resync: module.resync ?? 'every-sync-period',
    render: (state) => module.render(module.compile(state)),
    trace: (state, packet) => module.trace(module.compile(state), packet),
    async create(options) {
      const proxier = await module.create(options);
      const running: ProxyMode = {
        name: module.name,
        async sync(state, request) {
          try {
            return await proxier.sync(module.compile(state), request);
          } catch (err) {
            // Across the seam every failure has a code: the mode's own, else an apply failure.
            throw asKproxyError(err) ?? new ApplyError(`${module.name}: ${firstLineOf(err)}`, { cause: err });
          }
        },
        stop: () => proxier.stop(),
      };
      // The optional readers, only when the proxier has them (metrics look for them).
      const trafficStats = proxier.trafficStats?.bind(proxier);
      const netfilterCounters = proxier.netfilterCounters?.bind(proxier);
      return { ...running, ...(trafficStats && { trafficStats }), ...(netfilterCounters && { netfilterCounters }) };
    },
    cleanup: (options) => module.cleanup(options),
  };
}

/** The modes of this build. Adding a mode: one line here (its index.ts exports `mode: ModeModule<…>`). */
const BUILT_IN: { readonly [N in ProxyModeName]?: () => Promise<LoadedMode> } = {
  iptables: async () => bindMode((await import('../modes/iptables/index.ts')).mode),
  nftables: async () => bindMode((await import('../modes/nftables/index.ts')).mode),
  userspace: async () => bindMode((await import('../modes/userspace/index.ts')).mode),
};

export interface LoadModeOptions {
  /**
   * A folder holding <name>/index.ts to load modes from instead of the built-in ones (KPROXY_MODES_DIR: CLI tests
   * run the whole program against a mode that touches nothing).
   */
  readonly modesDir?: string;
}

/** `KPROXY_MODES_DIR` when set, else the built-in modes. */
export function modesDirFromEnvironment(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const fromEnv = env.KPROXY_MODES_DIR;
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : undefined;
}

export function isModeAvailable(name: ProxyModeName, options: LoadModeOptions = {}): boolean {
  return options.modesDir === undefined ? BUILT_IN[name] !== undefined : existsSync(join(options.modesDir, name, 'index.ts'));
}

export async function loadMode(name: ProxyModeName, options: LoadModeOptions = {}): Promise<LoadedMode> {
  if (options.modesDir !== undefined) return loadFromFolder(name, options.modesDir);
  const load = BUILT_IN[name];
  if (!load) throw new ModeUnavailableError(name);
  try {
    return await load();
  } catch (err) {
    throw new ModeInvalidError(`proxy mode ${name} failed to load: ${firstLineOf(err)}`, { cause: err });
  }
}

/** A mode from another folder (tests): untyped, so its shape is checked. */
async function loadFromFolder(name: ProxyModeName, folder: string): Promise<LoadedMode> {
  const path = join(folder, name, 'index.ts');
  if (!existsSync(path)) throw new ModeUnavailableError(name);
  let loaded: { mode?: unknown };
  try {
    loaded = (await import(pathToFileURL(path).href)) as { mode?: unknown };
  } catch (err) {
    throw new ModeInvalidError(`proxy mode ${name} failed to load: ${firstLineOf(err)}`, { cause: err });
  }
  const mode = loaded.mode;
  if (!isModeModule(mode) || mode.name !== name) {
    throw new ModeInvalidError(`proxy mode ${name}: ${path} does not export a ModeModule named "${name}" as \`mode\``);
  }
  return bindMode(mode);
}

function isModeModule(value: unknown): value is ModeModule<unknown> {
  if (value === null || typeof value !== 'object') return false;
  const candidate = value as Record<string, unknown>;
  return typeof candidate.name === 'string'
    && ['compile', 'create', 'cleanup', 'render', 'trace'].every((key) => typeof candidate[key] === 'function');
}
