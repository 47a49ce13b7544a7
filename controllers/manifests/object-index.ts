// Which object is in effect for each reference, kept up to date from the documents that changed, so that a reload
// hands the store only the objects that changed (one at a time, not 20,000 at 10k services). References are the
// store's own (refOf). Of several objects with one reference the last in file order wins, as when the store applies
// them in order; nameless objects (reported and dropped by the store) each count as a reference of their own. At
// most one Node is in effect: the one named like this node, else the first.
import { refOf } from '../../src/compute/parse-meta.ts';
import type { ObjectKind } from '../../src/model/source.ts';
import type { ManifestObject } from './parse.ts';

export interface Removal {
  readonly kind: ObjectKind;
  readonly namespace: string | undefined;
  readonly name: string;
}

export interface ObjectChanges {
  readonly upserts: readonly ManifestObject[];
  readonly removals: readonly Removal[];
}

const UNNAMED = '<unnamed>';

export class ObjectIndex {
  readonly #nodeName: string | undefined;
  /** The object in effect per key. */
  readonly #winners = new Map<string, ManifestObject>();
  /** How many objects have each key. */
  readonly #counts = new Map<string, number>();
  readonly #keys = new WeakMap<ManifestObject, string>();
  #unnamed = 0;
  #node: ManifestObject | undefined;

  constructor(nodeName: string | undefined) {
    this.#nodeName = nodeName;
  }

  /** The Node in effect. */
  node(): ManifestObject | undefined {
    return this.#node;
  }

  /** Whether `entry` is the object in effect for its reference (Nodes: whether it is one of the candidates). */
  isWinner(entry: ManifestObject): boolean {
    return this.#winners.get(this.#keyOf(entry)) === entry;
  }

  /**
   * Account for objects gone and come; `ordered` walks every object of every file in file order (used only to
   * settle duplicates and to pick the Node). Returns what to tell the store.
   */
  apply(removed: Iterable<ManifestObject>, added: Iterable<ManifestObject>, ordered: () => Iterable<ManifestObject>): ObjectChanges {
    const gone = new Set<ManifestObject>();
    const came = new Map<string, ManifestObject>();
    const affected = new Set<string>();
    for (const entry of removed) {
      const key = this.#keyOf(entry);
      this.#count(key, -1);
      gone.add(entry);
      affected.add(key);
    }
    for (const entry of added) {
      const key = this.#keyOf(entry);
      this.#count(key, +1);
      came.set(key, entry);
      affected.add(key);
    }
    // The new winner of each affected key, where it follows from the change alone; duplicates need a walk.
    const winners = new Map<string, ManifestObject | undefined>();
    const unsettled = new Set<string>();
    for (const key of affected) {
      const count = this.#counts.get(key) ?? 0;
      const current = this.#winners.get(key);
      if (count === 0) winners.set(key, undefined);
      else if (count === 1 && came.has(key)) winners.set(key, came.get(key));
      else if (count === 1 && current !== undefined && !gone.has(current)) winners.set(key, current);
      else unsettled.add(key);
    }
    if (unsettled.size > 0) for (const entry of ordered()) if (unsettled.has(this.#keyOf(entry))) winners.set(this.#keyOf(entry), entry);

    const upserts: ManifestObject[] = [];
    const removals: Removal[] = [];
    let nodesChanged = false;
    for (const [key, winner] of winners) {
      const current = this.#winners.get(key);
      if (winner === current) continue;
      if (winner === undefined) this.#winners.delete(key);
      else this.#winners.set(key, winner);
      const kind = (winner ?? current)?.kind;
      if (kind === 'Node') {
        nodesChanged = true;
        continue;
      }
      if (winner !== undefined) upserts.push(winner);
      else if (current !== undefined) {
        const removal = removalOf(current);
        if (removal) removals.push(removal);
      }
    }
    if (nodesChanged) this.#pickNode(ordered, upserts, removals);
    return { upserts, removals };
  }

  #pickNode(ordered: () => Iterable<ManifestObject>, upserts: ManifestObject[], removals: Removal[]): void {
    const candidates: ManifestObject[] = [];
    for (const entry of ordered()) if (entry.kind === 'Node' && this.isWinner(entry)) candidates.push(entry);
    const named = candidates.find((entry) => refOf('Node', entry.object) === this.#nodeName);
    const chosen = named ?? candidates[0];
    const previous = this.#node;
    if (chosen === previous) return;
    this.#node = chosen;
    if (chosen !== undefined) upserts.push(chosen);
    // Another Node replaces it under its own name: the old one must go (the store keeps only this node's).
    const old = previous === undefined ? undefined : removalOf(previous);
    if (old && (chosen === undefined || refOf('Node', chosen.object) !== old.name)) removals.push(old);
  }

  /** How many Nodes the files hold (for the "several Nodes" warning). */
  nodeCandidates(ordered: () => Iterable<ManifestObject>): number {
    let count = 0;
    for (const entry of ordered()) if (entry.kind === 'Node' && this.isWinner(entry)) count++;
    return count;
  }

  #count(key: string, by: number): void {
    const count = (this.#counts.get(key) ?? 0) + by;
    if (count === 0) this.#counts.delete(key);
    else this.#counts.set(key, count);
  }

  #keyOf(entry: ManifestObject): string {
    let key = this.#keys.get(entry);
    if (key === undefined) {
      const ref = refOf(entry.kind, entry.object);
      key = `${entry.kind} ${ref === UNNAMED ? `${UNNAMED}#${this.#unnamed++}` : ref}`;
      this.#keys.set(entry, key);
    }
    return key;
  }
}

/** What the store needs to forget an object; nothing for a nameless one (never stored). */
function removalOf(entry: ManifestObject): Removal | undefined {
  const ref = refOf(entry.kind, entry.object);
  if (ref === UNNAMED) return undefined;
  const slash = entry.kind === 'Node' ? -1 : ref.indexOf('/');
  return { kind: entry.kind, namespace: slash < 0 ? undefined : ref.slice(0, slash), name: ref.slice(slash + 1) };
}
