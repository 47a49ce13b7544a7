// Multi-document YAML (JSON is YAML too) into plain values, or the first syntax error with its line, for the
// one-line messages config files and manifests give.
import { parseAllDocuments } from 'yaml';
import { firstLineOf } from './errors.ts';

export type YamlResult =
  | { readonly ok: true; readonly values: readonly unknown[] }
  | { readonly ok: false; readonly line?: number; readonly message: string };

export function parseYamlDocuments(text: string, options: { readonly uniqueKeys?: boolean } = {}): YamlResult {
  const documents = parseAllDocuments(text, { uniqueKeys: options.uniqueKeys ?? true });
  const values: unknown[] = [];
  for (const document of Array.isArray(documents) ? documents : []) {
    const error = document.errors[0];
    if (error) {
      const line = error.linePos?.[0]?.line;
      return { ok: false, ...(line !== undefined && { line }), message: firstLineOf(error) };
    }
    values.push(document.toJS());
  }
  return { ok: true, values };
}

/** "FILE line N: message" (or "FILE: message" when the parser gave no line). */
export function yamlErrorText(where: string, error: { readonly line?: number; readonly message: string }): string {
  return `${where}${error.line ? ` line ${error.line}` : ''}: ${error.message}`;
}
