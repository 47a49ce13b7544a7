// Writes one family's table: the first sync and every full resync compare the kernel's table with the desired one
// and write only the difference (nothing flushed, so a restart or a repair never interrupts traffic); a partial
// sync writes what changed since this process's last write. A periodic resync first asks the kernel whether
// anyone committed anything since that write (the nf_tables generation): if not, there can be no drift and
// nothing is read; every few resyncs the table is read anyway.
import type { Logger } from '../../src/model/mode.ts';
import { assembleInto, type Assembly } from './compile.ts';
import { assembleSource, fullDiff, mirrorOf, partialTransaction, type Mirror, type NftSource } from './diff.ts';
import type { Kernel } from './kernel.ts';
import { TABLE, TABLE_COMMENT } from './names.ts';
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
    this.#mirror = undefined;
    this.#resyncsWithoutRead = 0;
    if (!await this.#kernel.exists(this.#family, TABLE)) {
      if (source.services.length === 0 && this.#family === 'ip6') return 'idle';
      return { operations: await this.#create(source), read: true };
    }
    const assembled = assembleSource(source);
    // Asked before the read: a commit by anyone while we read makes the next resync read again.
    const generation = await this.#kernel.generation();
    const kernel = await this.#kernel.read(this.#family, TABLE);
    const { tx, lingering } = await fullDiff(assembled.table, kernel, this.#expressions);
    const operations = await this.#write(tx, assembled.sets);
    if (operations === 0) {
      // Nothing to repair: the table as read is ours (after a restart, the baseline of its rules' expressions).
      // Without this, a node where anyone else ever committed would be read whole at every resync.
      this.#generation = generation;
      this.#expressions ??= kernel && new Map([...kernel.chains].map(([name, c]) => [name, c.rules.map((r) => r.expressions)]));
    }
    this.#mirror = mirrorOf(source, assembled, lingering, this.#now());
    return { operations, read: true };
  }

  /** The table from nothing, in one transaction encoded service by service (nothing held but the indexes). */
  async #create(source: NftSource): Promise<number> {
    let operations = 0;
    let assembly: Assembly | undefined;
    try {
      await this.#kernel.stream(this.#family, TABLE, expectedBytes(source), (out) => {
        out.addTable(TABLE_COMMENT);
        assembly = assembleInto(source.ctx, source.services, source.compileService, {
          addSet: (set) => { out.addSet(set); operations++; },
          addChains: (chains) => {
            for (const chain of chains) out.addChain(chain);
            for (const chain of chains) out.fillChain(chain);
            operations += chains.length;
          },
          addElements: (set, elements) => { out.addElements(set, elements); operations += elements.length; },
        });
      });
    } catch (error) {
      this.forget();
      throw error;
    }
    if (!assembly) throw new Error('nothing assembled');
    this.#mirror = mirrorOf(source, assembly);
    await this.#afterWrite('all');
    return operations;
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
    for (const name of tx.deleteChains) this.#expressions?.delete(name);
    const written = [...tx.addChains, ...tx.replaceChains].map((c) => c.name);
    await this.#afterWrite(tx.deleteTable === true || tx.ensureTable !== undefined ? 'all' : written);
    return size.elements + size.chains + size.sets;
  }

  /**
   * The generation after our write, and the expressions the kernel holds for the chains we wrote (all of them
   * after a table was created), so a full resync can tell our rules from edited ones.
   */
  async #afterWrite(chains: 'all' | readonly string[]): Promise<void> {
    try {
      this.#generation = await this.#kernel.generation();
      if (chains === 'all' || this.#expressions === undefined) {
        const all = await this.#kernel.chains(this.#family, TABLE);
        this.#expressions = all ? new Map([...all].map(([name, c]) => [name, c.rules.map((r) => r.expressions)])) : undefined;
      } else if (chains.length > 0) {
        for (const [name, rules] of await this.#kernel.rules(this.#family, TABLE, chains)) this.#expressions.set(name, rules.map((r) => r.expressions));
      }
    } catch (error) {
      // The rules are in; only the means to notice drift cheaply is missing: the next resync reads everything.
      this.#generation = undefined;
      this.#log.warn({ family: this.#family, error: (error as Error).message }, 'cannot read the nftables generation back');
    }
  }
}

/** Roughly the bytes a whole table takes as a batch (elements ~50 bytes; an affinity endpoint ~2 rules of 600). */
function expectedBytes(source: NftSource): number {
  let bytes = 1 << 20;
  for (const plan of source.services) {
    const endpoints = plan.routes.clusterIP.endpoints.length + (plan.routes.external?.fromOutside.endpoints.length ?? 0);
    bytes += 200 + plan.frontends.length * (100 + endpoints * 50) + (plan.affinity ? endpoints * 1500 : 0);
  }
  return bytes;
}
