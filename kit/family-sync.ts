// The per-family sync driver of a kernel mode: decides full vs partial per IP family, remembers what each family's
// kernel state was compiled from, forgets it after any failure (the next sync rewrites everything), and cleans
// up stale UDP conntrack entries after the rules are in place. The mode supplies how to write one family.
import type { ModeMetrics } from '../src/model/metrics.ts';
import type { Logger, SyncReport, SyncRequest } from '../src/model/mode.ts';
import type { DesiredState, IPFamily } from '../src/model/types.ts';
import { firstLineOf } from '../src/util/errors.ts';
import { clearStaleUdp } from './conntrack-cleanup.ts';
import { isModeFailure, ModeError } from './errors.ts';
import type { CommandRunner } from './exec.ts';
import type { FamilySource } from './plan-diff.ts';

/** A mode's compiled state: one source per family, and the desired state it came from. */
export interface CompiledFamilies<S> {
  readonly state: DesiredState;
  readonly families: { readonly [F in IPFamily]: S };
}

/** How a mode writes one family's rules. */
export interface FamilyWriter<S> {
  /**
   * Make the kernel hold exactly `source` (whatever it held before, stale objects included). 'idle' when there is
   * nothing to do and nothing was written (e.g. IPv6 on a single-stack node with no kproxy state). Returns how many
   * lines (or operations) it wrote.
   */
  full(source: S, state: DesiredState): Promise<number | 'idle'>;
  /** The kernel holds `prev` (same context): write only what changed to make it hold `next`. */
  partial(prev: S, next: S): Promise<number>;
}

interface FamilyMemory<S> {
  readonly writer: FamilyWriter<S>;
  /** What the kernel holds, as compiled; undefined until the first full sync and after any failure. */
  applied: S | undefined;
  /** Known to hold nothing while the family has no services. */
  idle: boolean;
}

export interface FamilySyncOptions<S> {
  /** The families the node supports, each with its writer (a family left out is never touched). */
  readonly families: ReadonlyMap<IPFamily, FamilyWriter<S>>;
  /** For the conntrack tool. */
  readonly run: CommandRunner;
  readonly log: Logger;
  /** Told of each family's failure (restoreFailed) and of conntrack reconciliations. */
  readonly metrics?: ModeMetrics;
}

export class FamilySync<S extends FamilySource<unknown>> {
  readonly #families = new Map<IPFamily, FamilyMemory<S>>();
  readonly #run: CommandRunner;
  readonly #log: Logger;
  readonly #metrics: ModeMetrics | undefined;
  /** The desired state last applied (for conntrack cleanup); undefined until the first sync succeeded. */
  #lastState: DesiredState | undefined;

  constructor(options: FamilySyncOptions<S>) {
    for (const [family, writer] of options.families) this.#families.set(family, { writer, applied: undefined, idle: false });
    this.#run = options.run;
    this.#log = options.log;
    this.#metrics = options.metrics;
  }

  /**
   * Every usable family, full or partial; then the conntrack cleanup. A family that fails stops the sync: it throws
   * a ModeFailure naming that family (counted for it in the metrics), and every family is rewritten next time.
   */
  async sync(compiled: CompiledFamilies<S>, request: SyncRequest): Promise<SyncReport> {
    const started = performance.now();
    const { state } = compiled;
    let linesWritten = 0;
    let familiesSynced = 0;
    let full = request.full;
    for (const [family, memory] of this.#families) {
      if (memory.idle && state.families[family].services.length === 0) continue;
      memory.idle = false;
      const source = compiled.families[family];
      const prev = memory.applied;
      // A new family-wide context (mark, cluster CIDRs, node IPs) changes every service: a full sync writes it.
      const partial = !request.full && prev !== undefined && prev.contextKey === source.contextKey;
      try {
        if (partial) {
          linesWritten += await memory.writer.partial(prev, source);
          memory.applied = source;
          familiesSynced++;
          continue;
        }
        full = true;
        const written = await memory.writer.full(source, state);
        if (written === 'idle') memory.idle = true;
        else {
          memory.applied = source;
          linesWritten += written;
          familiesSynced++;
        }
      } catch (error) {
        // The kernel may hold anything between the old and the new rules: the next sync must rewrite everything.
        for (const each of this.#families.values()) {
          each.applied = undefined;
          each.idle = false;
        }
        this.#metrics?.restoreFailed(family, partial);
        throw familyFailure(error, family);
      }
    }
    const conntrackDeleted = await clearStaleUdp({
      run: this.#run, log: this.#log, prev: this.#lastState, next: state, reconcile: this.#lastState === undefined || full,
      ...(this.#metrics && { metrics: this.#metrics }),
    });
    this.#lastState = state;
    const durationMs = Math.round(performance.now() - started);
    return { full, stats: { linesWritten, families: familiesSynced, durationMs, conntrackDeleted } };
  }
}

/** `error` as the ModeFailure of `family` (its own code when it has one, else KP_ERR_APPLY_FAILED). */
function familyFailure(error: unknown, family: IPFamily): ModeError {
  if (error instanceof ModeError && error.family === family) return error;
  const code = isModeFailure(error) ? error.code : 'KP_ERR_APPLY_FAILED';
  return new ModeError(code, `${family}: ${firstLineOf(error)}`, { family, cause: error });
}
