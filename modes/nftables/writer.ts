// Writes one family's table: the first sync and every full resync compare the kernel's table with the desired one
// and write only the difference (nothing flushed, so a restart or a repair never interrupts traffic); a partial
// sync writes what changed since this process's last write. A periodic resync first asks the kernel whether
// anyone committed anything since that write (the nf_tables generation): if not, there can be no drift and
// nothing is read; every few resyncs the table is read anyway.
import type { Logger } from '../../src/model/mode.ts';
import { assembleSource, fullDiff, mirrorOf, partialTransaction, type Mirror, type NftSource } from './diff.ts';
import type { Kernel } from './kernel.ts';
import { TABLE } from './names.ts';
import type { NftFamily, SetSpec } from './ruleset.ts';
import { isEmptyTransaction, transactionSize, type Transaction } from './transaction.ts';

/** A full resync reads the table even without a new generation at least this often (a commit could race ours). */
export const VERIFY_EVERY = 10;

export interface WriteReport {
  /** Element, chain and set operations written. */
  readonly operations: number;
  /** Whether the kernel's table was read and compared. */
  readonly read: boolean;
}

export class NftTableWriter {
  readonly #family: NftFamily;
  readonly #kernel: Kernel;
  readonly #log: Logger;
  readonly #now: () => number;
  #mirror: Mirror | undefined;
  #generation: number | undefined;
  /** Expression digests of our chains as the kernel held them after our last write that changed chains. */
  #expressions: Map<string, string[]> | undefined;
  #resyncsWithoutRead = 0;

  constructor(family: NftFamily, kernel: Kernel, log: Logger, now: () => number = Date.now) {
    this.#family = family;
    this.#kernel = kernel;
    this.#log = log;
    this.#now = now;
  }

  /** Forget what this process wrote: the next full sync reads the kernel (after any failure). */
  forget(): void {
    this.#mirror = undefined;
    this.#generation = undefined;
  }

  /**
   * Make the kernel's table hold `source`. 'idle' when the family has no services and no table (nothing to do,
   * nothing created: IPv6 on a single-stack node).
   */
  async full(source: NftSource): Promise<WriteReport | 'idle'> {
    const mirror = this.#mirror;
    if (mirror && mirror.source.contextKey === source.contextKey && this.#resyncsWithoutRead < VERIFY_EVERY
      && await this.#kernel.generation() === this.#generation) {
      this.#resyncsWithoutRead++;
      return { operations: await this.#write(partialTransaction(mirror, source, this.#now()), mirror.sets), read: false };
    }
    const assembled = assembleSource(source);
    const kernel = await this.#kernel.read(assembled.table);
    if (!kernel && source.services.length === 0 && this.#family === 'ip6') return 'idle';
    const { tx, lingering } = fullDiff(assembled.table, kernel, this.#expressions);
    this.#mirror = undefined;
    const operations = await this.#write(tx, new Map(assembled.table.sets.map((s) => [s.name, s])));
    this.#mirror = mirrorOf(source, assembled, lingering, this.#now());
    this.#resyncsWithoutRead = 0;
    return { operations, read: true };
  }

  /** The kernel holds what this process wrote from `prev`: write what changed for `next`. */
  async partial(prev: NftSource, next: NftSource): Promise<number> {
    const mirror = this.#mirror;
    if (!mirror || mirror.source !== prev) {
      const report = await this.full(next);
      return report === 'idle' ? 0 : report.operations;
    }
    return this.#write(partialTransaction(mirror, next, this.#now()), mirror.sets);
  }

  async #write(tx: Transaction, sets: ReadonlyMap<string, SetSpec>): Promise<number> {
    if (isEmptyTransaction(tx)) return 0;
    const size = transactionSize(tx);
    try {
      await this.#kernel.transact(tx, sets);
    } catch (error) {
      this.forget();
      throw error;
    }
    const chainsChanged = tx.deleteTable === true || size.chains > 0 || this.#expressions === undefined;
    try {
      this.#generation = await this.#kernel.generation();
      if (chainsChanged) {
        const chains = await this.#kernel.chains(this.#family, TABLE);
        this.#expressions = chains ? new Map([...chains].map(([name, c]) => [name, c.rules.map((r) => r.expressions)])) : undefined;
      }
    } catch (error) {
      // The rules are in; only the means to notice drift cheaply is missing: the next resync reads everything.
      this.#generation = undefined;
      this.#log.warn({ family: this.#family, error: (error as Error).message }, 'cannot read the nftables generation back');
    }
    return size.elements + size.chains + size.sets;
  }
}
