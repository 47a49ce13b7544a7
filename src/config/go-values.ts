// Flag values read the way kube-proxy's flag library (pflag, Go's strconv) reads them, so that every value
// kube-proxy accepts on its command line means the same here. Each returns undefined for text Go rejects.

/** strconv.ParseBool: 1 t T TRUE true True / 0 f F FALSE false False. */
export function parseGoBool(text: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(text)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(text)) return false;
  return undefined;
}

const BASE_PREFIX: ReadonlyArray<readonly [RegExp, number]> = [[/^0[xX]/, 16], [/^0[oO]/, 8], [/^0[bB]/, 2]];
const DIGITS: Readonly<Record<number, RegExp>> = { 2: /^[01]+$/, 8: /^[0-7]+$/, 10: /^[0-9]+$/, 16: /^[0-9a-fA-F]+$/ };

/**
 * strconv.ParseInt(text, 0, bits), as pflag's int flags use it: an optional sign, then 0x/0o/0b prefixes or a
 * leading 0 for octal ("010" is 8), underscores between digits only with a base prefix.
 */
export function parseGoInt(text: string, bits = 32): number | undefined {
  const negative = text.startsWith('-');
  let body = text.startsWith('-') || text.startsWith('+') ? text.slice(1) : text;
  let base = 10;
  let prefixed = false;
  for (const [prefix, value] of BASE_PREFIX) {
    if (prefix.test(body)) { base = value; body = body.slice(2); prefixed = true; break; }
  }
  if (!prefixed && body.length > 1 && body.startsWith('0')) { base = 8; body = body.slice(1); prefixed = true; }
  if (prefixed && body.includes('_')) {
    if (!/^_?[^_]+(_[^_]+)*$/.test(body)) return undefined;
    body = body.replaceAll('_', '');
  }
  if (body === '' || !DIGITS[base]?.test(body)) return undefined;
  const magnitude = Number.parseInt(body, base);
  const value = negative ? -magnitude : magnitude;
  const limit = 2 ** (bits - 1);
  return value >= -limit && value < limit ? value : undefined;
}

/** strconv.ParseFloat for the decimal forms people write ("5", "5.5", "1e3", ".5"). */
export function parseGoFloat(text: string): number | undefined {
  if (!/^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/.test(text)) return undefined;
  const value = Number(text);
  return Number.isFinite(value) ? value : undefined;
}

/** pflag's string slice: comma-separated, each occurrence of the flag appends. */
export function splitGoList(values: readonly string[]): string[] {
  return values.flatMap((value) => (value === '' ? [] : value.split(',').map((item) => item.trim())));
}

/**
 * cliflag's mapStringBool ("A=true,B=false", several occurrences merge): the map, or a one-line reason.
 */
export function parseGoBoolMap(values: readonly string[]): Record<string, boolean> | string {
  const result: Record<string, boolean> = {};
  for (const pair of splitGoList(values)) {
    if (pair === '') continue;
    const at = pair.indexOf('=');
    if (at < 0) return `missing bool value for ${pair}`;
    const key = pair.slice(0, at).trim();
    const value = parseGoBool(pair.slice(at + 1).trim());
    if (value === undefined) return `invalid value of ${key}: ${pair.slice(at + 1)}, err: not a bool`;
    result[key] = value;
  }
  return result;
}
