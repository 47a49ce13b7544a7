// A manifest file as bytes cut into its YAML documents, and where two versions of a file differ. A line that starts
// with `---` followed by a space, a tab or the line's end can never be content (YAML's c-forbidden lines end every
// scalar and collection), so it always starts a new document and cutting there is exact.

const MARKER = Buffer.from('\n---');

const isMarkerEnd = (byte: number | undefined): boolean => byte === undefined || byte === 0x20 || byte === 0x09 || byte === 0x0a || byte === 0x0d;

/** `%YAML` / `%TAG` lines belong to the document after them: a file with any is parsed as one piece (they are rare). */
export function hasDirectives(bytes: Buffer): boolean {
  return bytes[0] === 0x25 || bytes.includes('\n%');
}

/**
 * Start offsets of the documents in bytes[from, to), where `from` starts a document (the file's start or a `---`
 * line): `from` itself, then every `---` line before `to`.
 */
export function documentStarts(bytes: Buffer, from: number, to: number): number[] {
  const starts = [from];
  for (let found = bytes.indexOf(MARKER, from); found >= 0 && found + 1 < to; found = bytes.indexOf(MARKER, found + 1)) {
    if (isMarkerEnd(bytes[found + 4])) starts.push(found + 1);
  }
  return starts;
}

/** 1-based line number of a byte offset. */
export function lineAt(bytes: Buffer, offset: number): number {
  let line = 1;
  for (let nl = bytes.indexOf(0x0a); nl >= 0 && nl < offset; nl = bytes.indexOf(0x0a, nl + 1)) line++;
  return line;
}

// Compared block by block with memcmp (Buffer.compare), the blocks shrinking around the first difference.
const STEPS = [1 << 16, 1 << 12, 1 << 8, 1 << 4, 1];

/** How many leading bytes two buffers share. */
export function commonPrefix(a: Buffer, b: Buffer): number {
  const limit = Math.min(a.length, b.length);
  let n = 0;
  for (const step of STEPS) while (n + step <= limit && a.compare(b, n, n + step, n, n + step) === 0) n += step;
  return n;
}

/** How many trailing bytes two buffers share, at most `limit`. */
export function commonSuffix(a: Buffer, b: Buffer, limit: number): number {
  let n = 0;
  for (const step of STEPS) {
    while (n + step <= limit && a.compare(b, b.length - n - step, b.length - n, a.length - n - step, a.length - n) === 0) n += step;
  }
  return n;
}
