// What kube-proxy applies once at start, before any rule: the conntrack sysctls (for modes whose traffic goes
// through netfilter's connection tracking) and oom_score_adj on its own process. --init-only applies these and
// exits. Only the composition root calls this; the planning is pure (conntrack-plan.ts).
import type { ProxyConfig } from '../config/types.ts';
import type { Logger, ModeModule } from '../model/mode.ts';
import { applyConntrack, type ConntrackApplied, type ConntrackPaths } from './conntrack-apply.ts';
import { applyOomScoreAdj } from './oom.ts';

export interface StartupOptions {
  readonly log: Logger;
  /** Where the conntrack knobs are (tests point this at files of their own). */
  readonly conntrackPaths?: ConntrackPaths;
  readonly oomScoreAdjPath?: string;
}

export interface StartupResult {
  /** Undefined when the mode does not use conntrack (nothing was touched). */
  readonly conntrack?: ConntrackApplied;
  readonly oomScoreAdj: boolean;
}

export function applyStartupSettings(config: ProxyConfig, mode: Pick<ModeModule<unknown>, 'name' | 'usesConntrack'>, options: StartupOptions): StartupResult {
  const oomScoreAdj = applyOomScoreAdj(config.oomScoreAdj, options.log, options.oomScoreAdjPath);
  if (mode.usesConntrack !== true) {
    options.log.debug({ mode: mode.name }, 'Conntrack sysctls left alone: this mode does not use the kernel\'s connection tracking');
    return { oomScoreAdj };
  }
  const conntrack = applyConntrack(config.conntrack, { log: options.log, ...(options.conntrackPaths && { paths: options.conntrackPaths }) });
  return { conntrack, oomScoreAdj };
}
