// A manifest file cut into its YAML documents, so that a reload parses only the documents that changed. A line
// that starts with `---` followed by a space, a tab or the line's end can never be content (YAML's c-forbidden
// lines end every scalar and collection), so it always starts a new document and cutting there is exact.

export interface DocumentText {
  /** The document's text, from its `---` line (or the start of the file) up to the next one. */
  readonly text: string;
  /** Line number (1-based) of its first line in the file, for error messages. */
  readonly line: number;
}

const isMarkerEnd = (code: number): boolean => Number.isNaN(code) || code === 0x20 || code === 0x09 || code === 0x0a || code === 0x0d;

/**
 * The documents of a YAML stream, in order. A stream with directives (`%YAML`, `%TAG` lines) stays whole: a
 * directive belongs to the document after it, and such files are rare enough to be parsed in one piece.
 */
export function splitDocuments(text: string): DocumentText[] {
  if (text.startsWith('%') || text.includes('\n%')) return [{ text, line: 1 }];
  const documents: DocumentText[] = [];
  let start = 0;
  let startLine = 1;
  let line = 1;
  let counted = 0; // newlines before `counted` are included in `line`
  for (let found = text.indexOf('\n---'); found >= 0; found = text.indexOf('\n---', found + 1)) {
    const marker = found + 1;
    if (!isMarkerEnd(text.charCodeAt(marker + 3))) continue;
    for (let nl = text.indexOf('\n', counted); nl >= 0 && nl < marker; nl = text.indexOf('\n', nl + 1)) line++;
    counted = marker;
    documents.push({ text: text.slice(start, marker), line: startLine });
    start = marker;
    startLine = line;
  }
  documents.push({ text: text.slice(start), line: startLine });
  return documents;
}
