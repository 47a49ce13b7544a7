// Turn the text of one manifest file into the objects kproxy cares about. Objects are handed over raw;
// whether a Service is valid is src/compute's business, not the source's.
//
// A file is parsed document by document, and a reload reuses the documents whose text did not change (their
// objects keep their identity, which tells the source what changed). Objects never share memory with the file's
// text: the YAML parser returns strings that are slices of the text it read, and one such string kept by the store
// (an endpoint address) would keep the whole file alive — one copy of it per edit, which is how issue #16 grew.
import { parseYamlDocuments, yamlErrorText } from '../../src/util/yaml.ts';
import { ManifestError } from '../../src/errors.ts';
import type { ObjectKind } from '../../src/model/source.ts';
import { splitDocuments, type DocumentText } from './documents.ts';

export interface ManifestObject {
  readonly kind: ObjectKind;
  readonly object: unknown;
}

export interface IgnoredObject {
  readonly kind: string;
  readonly name: string;
}

export interface ParsedManifest {
  readonly objects: readonly ManifestObject[];
  /** Objects of other kinds (Deployments, ConfigMaps, …), reported at debug level. */
  readonly ignored: readonly IgnoredObject[];
}

/** The parsed documents of one version of a file, by their text: what parsing the next version can reuse. */
export type DocumentCache = ReadonlyMap<string, ParsedManifest>;

const SERVED: ReadonlySet<string> = new Set<ObjectKind>(['Service', 'EndpointSlice', 'Node']);

/** Parse multi-document YAML or JSON. Throws ManifestError (naming the file and line) on a syntax error. */
export function parseManifest(text: string, file: string): ParsedManifest {
  return parseManifestDocuments(text, file).parsed;
}

/**
 * Parse a file, reusing the documents of `previous` (the cache of its last version) whose text is unchanged.
 * Returns the cache of this version. Throws ManifestError (naming the file and line) on a syntax error.
 */
export function parseManifestDocuments(text: string, file: string, previous?: DocumentCache): { parsed: ParsedManifest; cache: DocumentCache } {
  const cache = new Map<string, ParsedManifest>();
  const objects: ManifestObject[] = [];
  const ignored: IgnoredObject[] = [];
  for (const document of splitDocuments(text)) {
    const parsed = cache.get(document.text) ?? previous?.get(document.text) ?? parseDocument(document, file);
    cache.set(document.text, parsed);
    for (const object of parsed.objects) objects.push(object); // a List document may hold more than push(...) takes
    for (const other of parsed.ignored) ignored.push(other);
  }
  return { parsed: { objects, ignored }, cache };
}

function parseDocument(document: DocumentText, file: string): ParsedManifest {
  const objects: ManifestObject[] = [];
  const ignored: IgnoredObject[] = [];
  for (const value of documentValues(document, file)) collect(value, undefined, objects, ignored);
  return { objects, ignored };
}

/** The values of one document: JSON through JSON.parse (fast, and its strings are fresh), else YAML, detached. */
function documentValues(document: DocumentText, file: string): readonly unknown[] {
  if (/^\s*[[{]/.test(document.text)) {
    try {
      return [JSON.parse(document.text)];
    } catch {
      // Not strict JSON (YAML flow style, or a syntax error): the YAML parser reads it and names the line.
    }
  }
  const parsed = parseYamlDocuments(document.text, { uniqueKeys: false });
  if (!parsed.ok) {
    const line = parsed.line === undefined ? undefined : parsed.line + document.line - 1;
    throw new ManifestError('KP_ERR_MANIFEST_INVALID', file, yamlErrorText(file, { message: parsed.message, ...(line !== undefined && { line }) }));
  }
  // A copy whose strings are new: the parser's are slices of the text (see the top of this file).
  return structuredClone(parsed.values);
}

/** Add `value` (an object, or a List of them) to the results. `itemKind` comes from a typed list (ServiceList). */
function collect(value: unknown, itemKind: string | undefined, objects: ManifestObject[], ignored: IgnoredObject[]): void {
  if (value === null || value === undefined) return; // an empty document
  if (typeof value !== 'object' || Array.isArray(value)) {
    ignored.push({ kind: '(not an object)', name: '' });
    return;
  }
  const record = value as Record<string, unknown>;
  const kind = typeof record.kind === 'string' ? record.kind : itemKind;
  if (kind !== undefined && kind.endsWith('List') && Array.isArray(record.items)) {
    const typed = kind === 'List' ? undefined : kind.slice(0, -'List'.length);
    for (const item of record.items) collect(item, typed, objects, ignored);
    return;
  }
  if (kind !== undefined && SERVED.has(kind)) {
    objects.push({ kind: kind as ObjectKind, object: value });
    return;
  }
  ignored.push({ kind: kind ?? '(no kind)', name: nameOf(record) });
}

export function nameOf(record: Record<string, unknown>): string {
  const metadata = record.metadata;
  if (metadata === null || typeof metadata !== 'object') return '';
  const { namespace, name } = metadata as Record<string, unknown>;
  const ns = typeof namespace === 'string' ? `${namespace}/` : '';
  return typeof name === 'string' ? `${ns}${name}` : '';
}
