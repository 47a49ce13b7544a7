// What kube-proxy applies once at start, before any rule: the conntrack sysctls (for modes whose traffic goes
// through netfilter's connection tracking) and oom_score_adj on its own process. --init-only applies these and
// exits. Only the composition root calls this; the planning is pure (conntrack-plan.ts).
import type { ProxyConfig } from '../config/types.ts';
import type { Logger, ModeModule } from '../model/mode.ts';
import { applyConntrack, readConntrackKnobs, type ConntrackApplied, type ConntrackPaths } from './conntrack-apply.ts';
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
  /**
   * nf_conntrack_tcp_be_liberal as the kernel has it after start-up (kube-proxy reads the sysctl, not the setting,
   * to leave out its INVALID drop); undefined when not read (the mode does not use conntrack, or no conntrack).
   */
  readonly tcpBeLiberal?: boolean;
  readonly oomScoreAdj: boolean;
}

export function applyStartupSettings(config: ProxyConfig, mode: Pick<ModeModule<unknown>, 'name' | 'usesConntrack'>, options: StartupOptions): StartupResult {
  const oomScoreAdj = applyOomScoreAdj(config.oomScoreAdj, options.log, options.oomScoreAdjPath);
  if (mode.usesConntrack !== true) {
    options.log.debug({ mode: mode.name }, 'Conntrack sysctls left alone: this mode does not use the kernel\'s connection tracking');
    return { oomScoreAdj };
  }
  const conntrack = applyConntrack(config.conntrack, { log: options.log, ...(options.conntrackPaths && { paths: options.conntrackPaths }) });
  const liberal = readConntrackKnobs(options.conntrackPaths).nf_conntrack_tcp_be_liberal;
  if (liberal !== undefined && liberal !== 0) options.log.info({}, 'nf_conntrack_tcp_be_liberal set, not dropping INVALID packets');
  return { conntrack, oomScoreAdj, ...(liberal !== undefined && { tcpBeLiberal: liberal !== 0 }) };
}
