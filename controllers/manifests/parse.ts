// Turn the text of one manifest file into the objects kproxy cares about. Objects are handed over raw;
// whether a Service is valid is src/compute's business, not the source's.
//
// A file is kept as its documents. A new version is compared with the last one byte by byte (common prefix and
// suffix), and only the documents in between are parsed again: the others keep their objects (the same objects,
// which tells the source what changed), so an edit costs in proportion to the edit, not to the file (24 MB and
// 20,000 documents at 10k services). Objects never share memory with the file's text: the YAML parser returns
// strings that are slices of the text it read, and one such string kept by the store (an endpoint address) would
// keep that whole text alive — one more copy per edit, which is how issue #16 grew.
import { parseYamlDocuments, yamlErrorText } from '../../src/util/yaml.ts';
import { ManifestError } from '../../src/errors.ts';
import type { ObjectKind } from '../../src/model/source.ts';
import { commonPrefix, commonSuffix, documentStarts, hasDirectives, lineAt } from './documents.ts';

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

/** What a new version of a file changed: the parsed documents that went away and the ones that came. */
export interface DocumentChange {
  readonly removed: readonly ParsedManifest[];
  readonly added: readonly ParsedManifest[];
}

const SERVED: ReadonlySet<string> = new Set<ObjectKind>(['Service', 'EndpointSlice', 'Node']);

/** Parse multi-document YAML or JSON. Throws ManifestError (naming the file and line) on a syntax error. */
export function parseManifest(text: string, file: string): ParsedManifest {
  const documents = new ManifestDocuments();
  documents.update(Buffer.from(text), file);
  return { objects: [...documents.objects()], ignored: documents.documents().flatMap((d) => d.ignored) };
}

/** One file's documents, parsed, following its versions. */
export class ManifestDocuments {
  #bytes: Buffer = Buffer.alloc(0);
  /** Where each document starts in #bytes. */
  #starts: number[] = [];
  #parsed: ParsedManifest[] = [];

  /** The parsed documents, in file order. */
  documents(): readonly ParsedManifest[] {
    return this.#parsed;
  }

  *objects(): Generator<ManifestObject> {
    for (const document of this.#parsed) yield* document.objects;
  }

  /**
   * Take a new version of the file. Returns what changed (undefined: nothing). Throws ManifestError, naming the file
   * and line, when a changed document does not parse; the last version then stays in effect.
   */
  update(bytes: Buffer, file: string): DocumentChange | undefined {
    const old = this.#bytes;
    const count = this.#starts.length;
    let first = 0; // the first old document the change may touch
    let after = count; // the first old document after the change
    if (count > 0 && !hasDirectives(bytes) && !hasDirectives(old)) {
      const prefix = commonPrefix(old, bytes);
      if (prefix === old.length && old.length === bytes.length) return undefined;
      const suffix = commonSuffix(old, bytes, Math.min(old.length, bytes.length) - prefix);
      // A document's boundary is the newline before its `---` and the byte after `---`. The documents before the
      // first boundary that reaches the change, and those from the first boundary wholly in the common suffix on,
      // are the same documents in both versions.
      first = Math.max(0, this.#firstStartFrom(prefix - 3) - 1);
      after = Math.max(first + 1, this.#firstStartFrom(old.length - suffix + 1));
    }
    const delta = bytes.length - old.length;
    const from = this.#starts[first] ?? 0;
    const to = after < count ? (this.#starts[after] ?? 0) + delta : bytes.length;
    const starts = from < to ? documentStarts(bytes, from, to) : [];
    // Between the first and the last change there may be documents that did not change (two edits far apart):
    // those that reappear in the same order keep their parsed objects. They are found by a cheap key (length and
    // the first bytes, which hold the name) and confirmed byte for byte.
    const previous = new Map<string, number[]>();
    for (let k = first; k < after; k++) {
      const key = documentKey(old, this.#starts[k] ?? 0, this.#starts[k + 1] ?? old.length);
      const list = previous.get(key);
      if (list) list.push(k);
      else previous.set(key, [k]);
    }
    const parsed: ParsedManifest[] = [];
    const added: ParsedManifest[] = [];
    const kept = new Set<number>();
    let last = first - 1;
    starts.forEach((start, i) => {
      const end = starts[i + 1] ?? to;
      const candidates = previous.get(documentKey(bytes, start, end)) ?? [];
      const at = candidates.findIndex((k) => k > last
        && old.compare(bytes, start, end, this.#starts[k] ?? 0, this.#starts[k + 1] ?? old.length) === 0);
      if (at >= 0) {
        last = candidates[at] ?? last;
        candidates.splice(0, at + 1); // later documents can only match further on
        kept.add(last);
        parsed.push(this.#parsed[last] as ParsedManifest);
      } else {
        const document = parseDocument(bytes, start, end, file);
        added.push(document);
        parsed.push(document);
      }
    });
    const removed = this.#parsed.slice(first, after).filter((_, i) => !kept.has(first + i));
    this.#starts = [...this.#starts.slice(0, first), ...starts, ...this.#starts.slice(after).map((start) => start + delta)];
    this.#parsed = [...this.#parsed.slice(0, first), ...parsed, ...this.#parsed.slice(after)];
    this.#bytes = bytes;
    return removed.length + added.length > 0 ? { removed, added } : undefined;
  }

  /** Index of the first document starting at or after `offset` (binary search). */
  #firstStartFrom(offset: number): number {
    let low = 0;
    let high = this.#starts.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if ((this.#starts[middle] ?? 0) < offset) low = middle + 1;
      else high = middle;
    }
    return low;
  }
}

/** Length and first bytes of a document: tells most documents apart without reading them whole. */
function documentKey(bytes: Buffer, start: number, end: number): string {
  return `${end - start}:${bytes.toString('latin1', start, Math.min(end, start + 96))}`;
}

function parseDocument(bytes: Buffer, start: number, end: number, file: string): ParsedManifest {
  const objects: ManifestObject[] = [];
  const ignored: IgnoredObject[] = [];
  for (const value of documentValues(bytes, start, end, file)) collect(value, undefined, objects, ignored);
  return { objects, ignored };
}

/** The values of one document: JSON through JSON.parse (fast, and its strings are fresh), else YAML, detached. */
function documentValues(bytes: Buffer, start: number, end: number, file: string): readonly unknown[] {
  const text = bytes.toString('utf8', start, end);
  if (/^\s*[[{]/.test(text)) {
    try {
      return [JSON.parse(text)];
    } catch {
      // Not strict JSON (YAML flow style, or a syntax error): the YAML parser reads it and names the line.
    }
  }
  const parsed = parseYamlDocuments(text, { uniqueKeys: false });
  if (!parsed.ok) {
    const line = parsed.line === undefined ? undefined : parsed.line + lineAt(bytes, start) - 1;
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
