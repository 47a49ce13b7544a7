// What changed between two loads of the manifests, object by object. A reload reuses the parsed objects of the
// documents whose text did not change, so an object that is not the very same (===) as last time is new or
// changed: only those go to the store, and references no longer present are removed. A reload then costs the
// store one object, not all of them (20,000 at 10k services). References are the store's own (refOf).
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

/**
 * Objects by kind and reference, in order; of several with one reference the last wins (as when the store
 * applies them in order). Nameless objects (which the store reports and drops) each get a key of their own.
 */
export function indexObjects(objects: readonly ManifestObject[]): Map<string, ManifestObject> {
  const index = new Map<string, ManifestObject>();
  objects.forEach((entry, position) => {
    const ref = refOf(entry.kind, entry.object);
    const key = `${entry.kind} ${ref === UNNAMED ? `${UNNAMED}#${position}` : ref}`;
    index.delete(key); // re-inserted last: the order of the index is the order of the winners
    index.set(key, entry);
  });
  return index;
}

/** Upserts of objects new since `previous` (by identity), removals of the references that are gone. */
export function diffObjects(previous: ReadonlyMap<string, ManifestObject>, next: ReadonlyMap<string, ManifestObject>): ObjectChanges {
  const upserts: ManifestObject[] = [];
  const removals: Removal[] = [];
  for (const [key, entry] of previous) {
    if (next.has(key)) continue;
    const ref = refOf(entry.kind, entry.object);
    if (ref === UNNAMED) continue; // never stored
    const slash = entry.kind === 'Node' ? -1 : ref.indexOf('/');
    removals.push({ kind: entry.kind, namespace: slash < 0 ? undefined : ref.slice(0, slash), name: ref.slice(slash + 1) });
  }
  for (const [key, entry] of next) if (previous.get(key)?.object !== entry.object) upserts.push(entry);
  return { upserts, removals };
}
