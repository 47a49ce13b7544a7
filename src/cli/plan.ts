// `kproxy plan`: what this node would program, computed from --manifests or the cluster (one list), without touching the kernel.
import type { ProxyConfig } from '../config/types.ts';
import type { Logger } from '../model/mode.ts';
import type { DesiredState } from '../model/types.ts';
import { loadMode, type LoadModeOptions } from '../modes.ts';
import { formatDesiredState } from './format-state.ts';
import type { OutputFormat } from './parse.ts';
import { desiredStateOnce } from './wiring.ts';

export interface PlanOptions {
  readonly config: ProxyConfig;
  /** Also render the ruleset of config.mode (when the mode was chosen explicitly). */
  readonly renderMode: boolean;
  readonly format: OutputFormat;
  readonly log: Logger;
  readonly modes?: LoadModeOptions;
}

export interface PlanOutput {
  readonly state: DesiredState;
  readonly mode?: string;
  readonly rendered?: string;
}

export async function plan(options: PlanOptions): Promise<string> {
  const { config } = options;
  // Load the mode first: an unavailable mode fails before anything is printed.
  const mode = options.renderMode ? await loadMode(config.mode, options.modes ?? {}) : undefined;
  const { state } = await desiredStateOnce(config, options.log);
  const rendered = mode?.render(state);
  if (options.format === 'json') {
    const output: PlanOutput = { state, ...(mode && { mode: mode.name }), ...(rendered !== undefined && { rendered }) };
    return `${JSON.stringify(output, null, 2)}\n`;
  }
  const table = formatDesiredState(state);
  if (!mode || rendered === undefined) return table;
  return `${table}\n--- ${mode.name} ---\n${rendered.endsWith('\n') ? rendered : `${rendered}\n`}`;
}
