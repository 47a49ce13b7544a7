// One nftables transaction as data: what to create, replace and delete in kproxy's table of one family. The kernel
// applies it all or nothing. render.ts writes it in the order the kernel needs (declarations before references,
// references removed before what they point to).
import type { Chain, Element, NftFamily, SetSpec } from './ruleset.ts';

export interface Transaction {
  readonly family: NftFamily;
  readonly table: string;
  /** `add table` first (harmless when it exists); with a comment for `nft list`. */
  readonly ensureTable?: { readonly comment: string };
  /**
   * Delete the table first, in the same transaction: alone, to remove it (`--cleanup`); with ensureTable and the
   * rest, to rebuild it when its layout is not this version's (an upgrade).
   */
  readonly deleteTable?: boolean;
  /** New sets and maps (declared before anything refers to them). */
  readonly addSets: readonly SetSpec[];
  /** New chains: declared first, then filled. */
  readonly addChains: readonly Chain[];
  /** Existing chains whose rules change: flushed and refilled in the same transaction. */
  readonly replaceChains: readonly Chain[];
  /** Sets whose content is rewritten whole (flush, then addElements). */
  readonly flushSets: readonly string[];
  readonly deleteElements: ReadonlyMap<string, readonly string[]>;
  readonly addElements: ReadonlyMap<string, readonly Element[]>;
  /** Chains nothing refers to any more (after the changes above). */
  readonly deleteChains: readonly string[];
  readonly deleteSets: readonly string[];
}

export function emptyTransaction(family: NftFamily, table: string): Transaction {
  return {
    family, table, addSets: [], addChains: [], replaceChains: [], flushSets: [],
    deleteElements: new Map(), addElements: new Map(), deleteChains: [], deleteSets: [],
  };
}

export function deleteTableTransaction(family: NftFamily, table: string): Transaction {
  return { ...emptyTransaction(family, table), deleteTable: true };
}

/** Whether applying it would change nothing. */
export function isEmptyTransaction(tx: Transaction): boolean {
  const none = (m: ReadonlyMap<string, readonly unknown[]>): boolean => [...m.values()].every((v) => v.length === 0);
  return tx.ensureTable === undefined && !tx.deleteTable && tx.addSets.length === 0 && tx.addChains.length === 0 && tx.replaceChains.length === 0
    && tx.flushSets.length === 0 && none(tx.deleteElements) && none(tx.addElements) && tx.deleteChains.length === 0
    && tx.deleteSets.length === 0;
}

/** Counts for logs and the sync report. */
export function transactionSize(tx: Transaction): { elements: number; chains: number; sets: number } {
  let elements = 0;
  for (const list of tx.deleteElements.values()) elements += list.length;
  for (const list of tx.addElements.values()) elements += list.length;
  return {
    elements,
    chains: tx.addChains.length + tx.replaceChains.length + tx.deleteChains.length,
    sets: tx.addSets.length + tx.flushSets.length + tx.deleteSets.length,
  };
}
