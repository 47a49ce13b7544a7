// oomScoreAdj on kproxy's own process, as kube-proxy applies it (default -999, so the OOM killer takes workloads
// before the node's proxy). Lowering it needs CAP_SYS_RESOURCE: without it, a debug line, as kube-proxy's V(2).
import { readFileSync, writeFileSync } from 'node:fs';
import type { Logger } from '../model/mode.ts';

export const SELF_OOM_SCORE_ADJ = '/proc/self/oom_score_adj';

/** Returns whether the process now has `value`. */
export function applyOomScoreAdj(value: number, log: Logger, path = SELF_OOM_SCORE_ADJ): boolean {
  try {
    if (Number.parseInt(readFileSync(path, 'utf8').trim(), 10) === value) return true;
    writeFileSync(path, String(value));
    log.debug({ oomScoreAdj: value }, `Set oom_score_adj to ${value}`);
    return true;
  } catch (err) {
    log.debug({ oomScoreAdj: value, error: (err as NodeJS.ErrnoException).code ?? String(err) }, 'Failed to apply oom_score_adj');
    return false;
  }
}
