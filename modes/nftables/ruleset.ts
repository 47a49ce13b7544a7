// The nftables ruleset as data: one table per IP family, its chains (rules as typed matches and statements), its
// sets and maps (declared by the expressions that fill them: `typeof`), and their elements.
// compile.ts builds it, render.ts turns it into `nft -f` text, trace.ts interprets it, netlink/ reads the kernel's
// copy back to compare.

export type NftFamily = 'ip' | 'ip6';

/** A value taken from the packet (or made up by the kernel) — what keys, matches and `typeof` are made of. */
export type Expr =
  /** `ip saddr` / `ip6 daddr` … (the table's family). */
  | { readonly kind: 'addr'; readonly dir: 'saddr' | 'daddr' }
  /** `meta l4proto` */
  | { readonly kind: 'l4proto' }
  /** `th dport`: the destination port of TCP, UDP and SCTP alike. */
  | { readonly kind: 'dport' }
  /**
   * `udp dport` (…), only as the type of a map's port values, in the protocol of the rules that use the map: nft
   * reads a map's `th dport` values back from the kernel as a transport match of their own, which conflicts with
   * the rule's `meta l4proto udp`.
   */
  | { readonly kind: 'port-value'; readonly protocol: Protocol4 }
  /** `meta mark` */
  | { readonly kind: 'mark' }
  /**
   * `numgen random mod N [offset K]`: a uniformly random number in [K, K+N). With N = 1 it is the constant K: nft 1.0.6
   * cannot parse a constant inside a concatenation on the left of a lookup, so this is how a rule puts one there.
   */
  | { readonly kind: 'numgen'; readonly mod: number; readonly offset?: number };

export type Protocol4 = 'tcp' | 'udp' | 'sctp';

/** The right-hand side of a comparison. */
export type Value =
  | { readonly kind: 'number'; readonly value: number }
  | { readonly kind: 'protocol'; readonly value: Protocol4 }
  /** An address or a "network/prefix" (canonical). */
  | { readonly kind: 'cidr'; readonly value: string };

export type Match =
  /** `LEFT VALUE` / `LEFT != VALUE` (a CIDR value matches the whole prefix). */
  | { readonly kind: 'cmp'; readonly left: Expr; readonly negate?: boolean; readonly value: Value }
  /** `meta mark & MASK == 0` (negate: `!= 0`). */
  | { readonly kind: 'mark-clear'; readonly mask: number; readonly negate?: boolean }
  /** `KEY @set` / `KEY != @set`: the concatenated key is (not) an element of the named set. */
  | { readonly kind: 'lookup'; readonly key: readonly Expr[]; readonly set: string; readonly negate?: boolean }
  /** `fib saddr type local` / `fib daddr type local`: the address is one of this node's. */
  | { readonly kind: 'fib-local'; readonly dir: 'saddr' | 'daddr' }
  /** `ct status dnat`: the connection's destination was translated. */
  | { readonly kind: 'ct-dnat' };

/** How a rule ends; absent: the packet goes on to the next rule. */
export type Verdict =
  | { readonly kind: 'accept' }
  | { readonly kind: 'drop' }
  | { readonly kind: 'return' }
  | { readonly kind: 'jump'; readonly chain: string }
  | { readonly kind: 'goto'; readonly chain: string };

export type Statement =
  /** `meta mark set meta mark | VALUE` */
  | { readonly kind: 'mark-or'; readonly value: number }
  /** `meta mark set meta mark ^ VALUE` (clears a bit known to be set) */
  | { readonly kind: 'mark-xor'; readonly value: number }
  /** `update @set { KEY timeout Ns }`: add the key or refresh its timeout. */
  | { readonly kind: 'update'; readonly set: string; readonly key: readonly Expr[]; readonly timeoutSeconds: number }
  /** `meta l4proto P dnat ip to ADDR:PORT` — ends the rule. */
  | { readonly kind: 'dnat'; readonly protocol: Protocol4; readonly ip: string; readonly port: number }
  /** `meta l4proto P dnat ip to KEY map @map` (address . port from a map) — ends the rule when the key is found. */
  | { readonly kind: 'dnat-map'; readonly protocol: Protocol4; readonly key: readonly Expr[]; readonly map: string }
  /** `KEY vmap @map`: the verdict stored for the key; the next rule when it is not there. */
  | { readonly kind: 'vmap'; readonly key: readonly Expr[]; readonly map: string }
  /** `masquerade fully-random` */
  | { readonly kind: 'masquerade' }
  /** `reject`: ICMP port unreachable (the TCP client sees "connection refused"). */
  | { readonly kind: 'reject' }
  | { readonly kind: 'verdict'; readonly verdict: Verdict };

export interface Rule {
  readonly matches: readonly Match[];
  readonly statements: readonly Statement[];
  /** Shown by `nft list`; render.ts appends the rule's digest so a changed rule can be told from ours. */
  readonly comment?: string;
}

export type Hook = 'prerouting' | 'output' | 'postrouting' | 'input' | 'forward';

export interface BaseChainSpec {
  readonly type: 'nat' | 'filter';
  readonly hook: Hook;
  readonly priority: number;
}

export interface Chain {
  readonly name: string;
  /** Set for base chains: where the kernel calls the chain. Policy is always accept. */
  readonly base?: BaseChainSpec;
  readonly rules: readonly Rule[];
}

export type SetFlag = 'interval' | 'dynamic' | 'timeout';

/** A set (no data), a map (data: expressions whose types the values have) or a verdict map. */
export interface SetSpec {
  readonly name: string;
  readonly key: readonly Expr[];
  readonly data?: readonly Expr[] | 'verdict';
  readonly flags?: readonly SetFlag[];
  /** Maximum number of elements (dynamic sets; the kernel's default is 65535). */
  readonly size?: number;
  /** Filled by the packet path (affinity): never flushed or compared, only created and deleted. */
  readonly dynamic?: boolean;
}

/**
 * One element, in the canonical text `nft` reads and the netlink reader writes back: key parts joined by " . "
 * (addresses canonical, protocols by name, numbers in decimal, CIDRs for interval sets), and for maps " : " and the
 * value (`10.244.1.2 . 8080`, or a verdict: `goto chain`, `drop`). Text, not objects: a table at 10k services
 * holds ~200k of them.
 */
export type Element = string;

/**
 * The element's text as one flat string. Text built by `+` or a template is kept by V8 as a tree of its parts (a
 * "cons string"): an endpoint element made that way holds ~310 bytes of heap against ~75 flat, which at 200k
 * elements (a 10k-service table, compiled or read back) is 60 MB against 15. `join` and `normalize` (a no-op on
 * this ASCII text) both return a flat copy.
 */
export const element = (key: string, value?: string): Element => (value === undefined ? key.normalize() : [key, value].join(' : '));
export function elementKey(e: Element): string {
  const i = e.indexOf(' : ');
  return i < 0 ? e : e.slice(0, i);
}
export function elementValue(e: Element): string | undefined {
  const i = e.indexOf(' : ');
  return i < 0 ? undefined : e.slice(i + 3);
}

export interface Table {
  readonly family: NftFamily;
  readonly name: string;
  readonly chains: readonly Chain[];
  readonly sets: readonly SetSpec[];
  /** Elements by set name; sets without entries may be absent. */
  readonly elements: ReadonlyMap<string, readonly Element[]>;
}

export const FAMILY_OF: Readonly<Record<'IPv4' | 'IPv6', NftFamily>> = { IPv4: 'ip', IPv6: 'ip6' };
