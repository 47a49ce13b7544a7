// Reading an `iptables-save` listing back (streamed): which of our chains and hook rules the node holds. Pure.
import type { TableName } from './ruleset.ts';

/** A rule of a built-in (or foreign) chain that jumps to one of our chains, as iptables-save lists it. */
export interface SavedHook {
  readonly table: TableName;
  readonly builtin: string;
  /** The rule after `-A ` (so `-D ${spec}` deletes it). */
  readonly spec: string;
  readonly target: string;
}

/** What an `iptables-save` listing (nat and filter tables) shows of our chains (those with our prefix). */
export interface SavedState {
  readonly chains: Record<TableName, string[]>;
  /** Rules in built-in chains that jump to one of our chains, as listed (after `-A `). */
  readonly hooks: readonly SavedHook[];
}

/**
 * Whose chains a listing is read for: every chain named `prefix`…, or only those of them `owns` accepts (the others,
 * e.g. kubelet's KUBE-FIREWALL beside kube-proxy's KUBE-* chains, are foreign: their jumps to owned chains are hooks).
 */
export interface ChainOwner {
  readonly prefix: string;
  readonly owns?: (chain: string) => boolean;
}

/** Read our chains (named `prefix`…) and hook rules from `iptables-save` output; other tables and chains are ignored. */
export function parseSave(saveText: string, owner: string | ChainOwner): SavedState {
  const reader = new SaveReader(owner);
  reader.push(Buffer.from(saveText));
  return reader.end();
}

const NEWLINE = 0x0a;
const bytesOf = (text: string): Buffer => Buffer.from(text, 'latin1');
const APPEND = bytesOf('-A ');

/**
 * parseSave over a listing that arrives in chunks (a tool's stdout): the listing of a node with 10k services is
 * ≈ 60 MB, so it is never held whole. Lines are examined as bytes and only the few that concern us become
 * strings: declarations of our chains (the name only) and rules of other chains that jump to one (the hooks).
 * The rules inside our own chains — almost the whole listing — are skipped without being decoded. Every kept
 * string is a fresh copy, so nothing retains a chunk.
 */
export class SaveReader {
  readonly #prefix: string;
  readonly #owns: ((chain: string) => boolean) | undefined;
  readonly #declaration: Buffer;
  readonly #append: Buffer;
  readonly #chains: Record<TableName, string[]> = { nat: [], filter: [] };
  readonly #hooks: SavedHook[] = [];
  #table: TableName | undefined;
  /** The start of a line whose end has not arrived yet. */
  #partial: Buffer | undefined;

  /** `prefix`: what every chain we own is named with (e.g. "KPROXY-"); or a prefix with an ownership test. */
  constructor(owner: string | ChainOwner) {
    const { prefix, owns } = typeof owner === 'string' ? { prefix: owner, owns: undefined } : owner;
    this.#prefix = prefix;
    this.#owns = owns;
    this.#declaration = bytesOf(`:${prefix}`);
    this.#append = bytesOf(`-A ${prefix}`);
  }

  push(chunk: Uint8Array): void {
    const data = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let start = 0;
    if (this.#partial) {
      const end = data.indexOf(NEWLINE);
      if (end < 0) {
        this.#partial = Buffer.concat([this.#partial, data]);
        return;
      }
      this.#line(Buffer.concat([this.#partial, data.subarray(0, end)]), 0, this.#partial.length + end);
      this.#partial = undefined;
      start = end + 1;
    }
    for (let end = data.indexOf(NEWLINE, start); end >= 0; end = data.indexOf(NEWLINE, start)) {
      this.#line(data, start, end);
      start = end + 1;
    }
    // A copy: a view would keep the whole chunk alive.
    if (start < data.length) this.#partial = Buffer.from(data.subarray(start));
  }

  /** What the listing showed (a last line without its newline included). */
  end(): SavedState {
    if (this.#partial) this.#line(this.#partial, 0, this.#partial.length);
    this.#partial = undefined;
    return { chains: this.#chains, hooks: this.#hooks };
  }

  #line(data: Buffer, from: number, end: number): void {
    let start = from;
    while (start < end && (data[start] === 0x20 || data[start] === 0x09)) start++;
    const first = data[start];
    if (first === 0x2a /* * */) {
      const name = data.toString('latin1', start + 1, end).trim();
      this.#table = name === 'nat' || name === 'filter' ? name : undefined;
    } else if (this.#table === undefined) {
      return;
    } else if (first === 0x3a /* : */) {
      if (!startsWith(data, start, end, this.#declaration)) return;
      const name = data.toString('latin1', start + 1, wordEnd(data, start + 1, end));
      if (this.#owned(name)) this.#chains[this.#table].push(name);
    } else if (startsWith(data, start, end, APPEND) && !this.#inOwnedChain(data, start, end)) {
      // A rule of a chain that is not ours: a hook if it jumps to one of ours.
      const spec = data.toString('utf8', start + APPEND.length, end).trim();
      const target = /(?:^| )-j (\S+)/.exec(spec)?.[1] ?? '';
      if (target.startsWith(this.#prefix) && this.#owned(target)) this.#hooks.push({ table: this.#table, builtin: spec.split(' ', 1)[0] ?? '', spec, target });
    }
  }

  #owned(chain: string): boolean {
    return this.#owns === undefined || this.#owns(chain);
  }

  /** An `-A CHAIN …` line of one of our chains (decoded only when an ownership test must see the name). */
  #inOwnedChain(data: Buffer, start: number, end: number): boolean {
    if (!startsWith(data, start, end, this.#append)) return false;
    if (this.#owns === undefined) return true;
    const from = start + APPEND.length;
    return this.#owns(data.toString('latin1', from, wordEnd(data, from, end)));
  }
}

/** Where the word starting at `from` ends (a space, a carriage return or the line's end). */
function wordEnd(data: Buffer, from: number, end: number): number {
  let at = from;
  while (at < end && data[at] !== 0x20 && data[at] !== 0x0d) at++;
  return at;
}

function startsWith(data: Buffer, start: number, end: number, prefix: Buffer): boolean {
  return end - start >= prefix.length && data.compare(prefix, 0, prefix.length, start, start + prefix.length) === 0;
}

