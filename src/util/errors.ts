// Small helpers for errors of unknown shape (what a catch clause receives).

/** The first line of an error's message, or of its string form: for one-line errors and log fields. */
export function firstLineOf(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.split('\n', 1)[0] ?? '';
}
