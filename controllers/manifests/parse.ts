// Turn the text of one manifest file into the objects kproxy cares about. Objects are handed over raw;
// whether a Service is valid is src/compute's business, not the source's.
import { parseYamlDocuments, yamlErrorText } from '../../src/util/yaml.ts';
import { ManifestError } from '../../src/errors.ts';
import type { ObjectKind } from '../../src/model/source.ts';

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

const SERVED: ReadonlySet<string> = new Set<ObjectKind>(['Service', 'EndpointSlice', 'Node']);

/** Parse multi-document YAML or JSON. Throws ManifestError (naming the file and line) on a syntax error. */
export function parseManifest(text: string, file: string): ParsedManifest {
  const parsed = parseYamlDocuments(text, { uniqueKeys: false });
  if (!parsed.ok) throw new ManifestError('KP_ERR_MANIFEST_INVALID', file, yamlErrorText(file, parsed));
  const objects: ManifestObject[] = [];
  const ignored: IgnoredObject[] = [];
  for (const value of parsed.values) collect(value, undefined, objects, ignored);
  return { objects, ignored };
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
