// An iptables ruleset as data: tables → chains → rules, one ruleset per IP family. A mode's compile builds it (the
// chain layout is the mode's), render.ts turns it into iptables-restore text, trace.ts interprets it.
import type { IPFamily, Protocol } from '../../src/model/types.ts';
import type { FamilySource } from '../plan-diff.ts';

export type TableName = 'nat' | 'filter';
export type BuiltinChain = 'PREROUTING' | 'INPUT' | 'FORWARD' | 'OUTPUT' | 'POSTROUTING';
export type ConntrackState = 'NEW' | 'ESTABLISHED' | 'RELATED' | 'INVALID';

export type Match =
  /** -s / ! -s with a CIDR in canonical "network/prefix" form. */
  | { readonly kind: 'src'; readonly cidr: string; readonly negate?: boolean }
  /** -d / ! -d */
  | { readonly kind: 'dst'; readonly cidr: string; readonly negate?: boolean }
  /** -p PROTO, plus `-m PROTO --dport PORT` when dport is set. */
  | { readonly kind: 'protocol'; readonly protocol: Protocol; readonly dport?: number }
  /** -m addrtype --src-type/--dst-type LOCAL */
  | { readonly kind: 'addrtype'; readonly direction: 'src' | 'dst'; readonly type: 'LOCAL'; readonly negate?: boolean }
  /** -m mark [!] --mark VALUE/MASK */
  | { readonly kind: 'mark'; readonly value: number; readonly mask: number; readonly negate?: boolean }
  /** -m statistic --mode random --probability P (0 < P < 1) */
  | { readonly kind: 'statistic'; readonly probability: number }
  /** -m recent --rsource with a full-length mask; `check` may expire entries older than `seconds` (--reap). */
  | { readonly kind: 'recent'; readonly mode: 'check'; readonly name: string; readonly seconds: number; readonly reap: boolean }
  | { readonly kind: 'recent'; readonly mode: 'set'; readonly name: string }
  /** -m conntrack --ctstate A,B */
  | { readonly kind: 'conntrack'; readonly states: readonly ConntrackState[] }
  /** -m nfacct --nfacct-name NAME: always matches; counts the packet in the named nfacct object (kit/nfacct.ts). */
  | { readonly kind: 'nfacct'; readonly name: string };

export type Target =
  | { readonly kind: 'jump'; readonly chain: string }
  | { readonly kind: 'DNAT'; readonly ip: string; readonly port: number }
  /** or: set the bits of `value`; xor: toggle them (used to clear a bit known to be set). */
  | { readonly kind: 'MARK'; readonly op: 'or' | 'xor'; readonly value: number }
  | { readonly kind: 'MASQUERADE'; readonly randomFully: boolean }
  | { readonly kind: 'REJECT' }
  | { readonly kind: 'DROP' }
  | { readonly kind: 'RETURN' }
  | { readonly kind: 'ACCEPT' };

export interface Rule {
  readonly matches: readonly Match[];
  readonly target: Target;
  /** Rendered as `-m comment --comment "…"`; kept apart from matches because it never decides anything. */
  readonly comment?: string;
  /**
   * The rule exists once per endpoint (balancing to an endpoint chain, the endpoint chain's own rules): its comment
   * is left out of what is written when the source says so (RulesetSource.omitEndpointComments, large clusters).
   */
  readonly perEndpoint?: boolean;
}

/**
 * A kproxy-owned chain.
 * - 'plain': the rules run in order; a partial sync rewrites the whole chain when anything in it changed.
 * - 'dispatch': `rules` are mutually exclusive (one service frontend each), so their order is irrelevant and a
 *   partial sync adds/removes them one by one (-I/-D) without flushing; `tail` holds rules that must stay last
 *   (e.g. the jump to the NodePorts chain) — a changed tail is replaced rule by rule (-D old, -A new).
 */
export type Chain =
  | { readonly kind: 'plain'; readonly name: string; readonly rules: readonly Rule[] }
  | { readonly kind: 'dispatch'; readonly name: string; readonly rules: readonly Rule[]; readonly tail: readonly Rule[] };

/** A rule in a built-in chain that jumps into a kproxy chain; the apply layer installs it once, at the top. */
export interface HookRule {
  readonly table: TableName;
  readonly builtin: BuiltinChain;
  readonly rule: Rule;
}

export interface Table {
  readonly name: TableName;
  /** Every kproxy chain of the table (deterministic order). */
  readonly chains: readonly Chain[];
  /** In the order they must end up in each built-in chain. */
  readonly hooks: readonly HookRule[];
}

export interface Ruleset {
  readonly family: IPFamily;
  readonly nat: Table;
  readonly filter: Table;
}

/** A dispatch chain services add rules to: where it lives. */
export interface DispatchChain {
  readonly table: TableName;
  readonly chain: string;
}

/** Everything one service port contributes: its rules in the dispatch chains and its own (nat) chains. */
export interface ServiceRules {
  /** Rules for each of the source's `dispatch` chains, in the same order. */
  readonly dispatch: readonly (readonly Rule[])[];
  /** The service's own chains (load balancing, endpoints…), all in the nat table. */
  readonly chains: readonly Chain[];
}

/**
 * A family's ruleset before its service rules are compiled: cheap to keep between syncs (it holds the plans, not
 * the rules), and enough to stream a full restore or to diff two snapshots by plan identity (see FamilySource).
 */
export interface RulesetSource extends FamilySource<ServiceRules> {
  /** Every chain that is not per-service (dispatch chains hold only their tails) and the hook rules. */
  readonly base: Ruleset;
  /** The dispatch chains of `base` that services add rules to (ServiceRules.dispatch follows this order). */
  readonly dispatch: readonly DispatchChain[];
  /**
   * Write per-endpoint rules without their comments (kube-proxy's large-cluster mode: the restore input and the
   * kernel's tables shrink by a third). Part of `contextKey`: when it flips, every service is rewritten. `kproxy plan`
   * still shows every comment.
   */
  readonly omitEndpointComments: boolean;
}

/** Rules per table (metrics: rules owned, rules written). */
export type RuleTally = Record<TableName, number>;

export const TABLE_NAMES: readonly TableName[] = ['nat', 'filter'];

/**
 * `source` with its nfacct matches left out (the counters could not be created: the rules must still load). Only
 * base chains count packets; service rules are untouched.
 */
export function withoutCounters(source: RulesetSource): RulesetSource {
  const strip = (rule: Rule): Rule => (rule.matches.some((m) => m.kind === 'nfacct') ? { ...rule, matches: rule.matches.filter((m) => m.kind !== 'nfacct') } : rule);
  const table = (t: Table): Table => ({
    ...t,
    chains: t.chains.map((chain): Chain => (chain.kind === 'dispatch'
      ? { ...chain, rules: chain.rules.map(strip), tail: chain.tail.map(strip) }
      : { ...chain, rules: chain.rules.map(strip) })),
  });
  return { ...source, base: { ...source.base, nat: table(source.base.nat), filter: table(source.base.filter) } };
}

/** The rules of a chain in evaluation order. */
export function chainRules(chain: Chain): readonly Rule[] {
  return chain.kind === 'dispatch' ? [...chain.rules, ...chain.tail] : chain.rules;
}

/** The whole ruleset of a source, every service rule compiled (for `kproxy plan`, the tracer and tests). */
export function materialize(source: RulesetSource): Ruleset {
  const dispatched: Rule[][] = source.dispatch.map(() => []);
  const serviceChains: Chain[] = [];
  for (const service of source.services) {
    const rules = source.compileService(service);
    rules.dispatch.forEach((list, slot) => {
      const into = dispatched[slot];
      if (into) for (const rule of list) into.push(rule); // loops: no spread of 100k+ items
    });
    for (const chain of rules.chains) serviceChains.push(chain);
  }
  const filled = (table: Table): Table => {
    const chains: Chain[] = table.chains.map((chain) => {
      const slot = source.dispatch.findIndex((d) => d.table === table.name && d.chain === chain.name);
      return chain.kind === 'dispatch' && slot >= 0 ? { ...chain, rules: dispatched[slot] ?? [] } : chain;
    });
    if (table.name === 'nat') for (const chain of serviceChains) chains.push(chain);
    return { ...table, chains };
  };
  const { base } = source;
  return { family: base.family, nat: filled(base.nat), filter: filled(base.filter) };
}
