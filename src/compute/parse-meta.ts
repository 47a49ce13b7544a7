// metadata: name, namespace, labels and annotations, shared by every kind.
import type { ObjectKind } from '../model/source.ts';
import type { InvalidObject } from '../model/observe.ts';
import { FieldError, isRecord, optionalRecord, optionalString, requireRecord, show, type RawRecord } from './fields.ts';

export interface Meta {
  readonly namespace: string;
  readonly name: string;
  readonly labels: RawRecord;
  readonly annotations: RawRecord;
  /** Set (string or Date, as the client hands it) while the object is being deleted. */
  readonly deleting: boolean;
}

/**
 * What parsing one object gave: a value (maybe with parts dropped, see `problem`; maybe read from legacy forms,
 * see `notes`), "not ours", or invalid.
 */
export type Parsed<T> =
  | { readonly kind: 'ok'; readonly value: T; readonly problem?: string; readonly notes?: readonly string[] }
  | { readonly kind: 'skipped'; readonly ref: string; readonly reason: string }
  | { readonly kind: 'invalid'; readonly invalid: InvalidObject };

const NAME_PATTERN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

function readName(metadata: RawRecord, key: 'name' | 'namespace'): string | undefined {
  const value = optionalString(metadata, key, `metadata.${key}`);
  if (value === undefined) return undefined;
  if (value.length > 253 || !NAME_PATTERN.test(value)) throw new FieldError(`metadata.${key}: ${show(value)} is not a valid name`);
  return value;
}

/**
 * The best reference we can give for an object, even a broken one: "namespace/name", "name" for Nodes,
 * or "<unnamed>".
 */
export function refOf(kind: ObjectKind, raw: unknown): string {
  if (!isRecord(raw) || !isRecord(raw.metadata)) return '<unnamed>';
  const { name, namespace } = raw.metadata;
  if (typeof name !== 'string' || name === '') return '<unnamed>';
  if (kind === 'Node') return name;
  return `${typeof namespace === 'string' && namespace !== '' ? namespace : 'default'}/${name}`;
}

/**
 * Read metadata. Namespaced kinds without a namespace land in "default", as kubectl does for manifests.
 * Returns a reason string when the metadata is unusable.
 */
export function readMeta(kind: ObjectKind, raw: unknown): Meta | string {
  if (!isRecord(raw)) return `not an object (got ${show(raw)})`;
  try {
    const metadata = requireRecord(raw.metadata, 'metadata');
    const name = readName(metadata, 'name');
    if (name === undefined) return 'metadata.name: missing';
    const namespace = kind === 'Node' ? '' : (readName(metadata, 'namespace') ?? 'default');
    const labels = optionalRecord(metadata, 'labels', 'metadata.labels') ?? {};
    const annotations = optionalRecord(metadata, 'annotations', 'metadata.annotations') ?? {};
    const deletion = metadata.deletionTimestamp;
    return { namespace, name, labels, annotations, deleting: deletion !== undefined && deletion !== null && deletion !== '' };
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

/** A label or annotation value; a non-string value is an error naming the key. */
export function readTag(tags: RawRecord, key: string, what: 'labels' | 'annotations'): string | undefined {
  return optionalString(tags, key, `metadata.${what}[${key}]`);
}
