// The packet tracer of an iptables ruleset: an interpreter over the typed rules (never over text), run at each
// netfilter hook by the kit's hook walk. Pure.
// It follows every way a packet may take, with its probability: a `statistic` match splits the way in two, so the
// verdict lists every endpoint a new connection can reach and `traceOutcomes` says how likely each is. `recent`
// matches (session affinity) read a history of earlier connections (none: a new client), and `conntrack` matches
// see the first packet of a connection, or one of an established connection (traceEstablished).
import type { Packet, Verdict } from '../../src/model/trace.ts';
import { cidrContains, ipFamily, isLoopback, joinHostPort, parseCidr } from '../../src/util/ip.ts';
import type { Cidr } from '../../src/util/ip.ts';
import { verdictOf, walkHooks, type Ending, type PacketState, type Path } from '../netfilter.ts';
import type { BuiltinChain, Chain, Match, Rule, Ruleset, Table } from './ruleset.ts';
import { chainRules } from './ruleset.ts';

export interface TraceOptions {
  /** The node's own addresses (FamilyPlan.nodeIPs); loopback is always local. */
  readonly nodeIPs: readonly string[];
}

/** xt_recent lists as earlier connections left them: list name → source address → when it was last set (seconds). */
export type RecentLists = ReadonlyMap<string, ReadonlyMap<string, number>>;

export interface TraceHistory {
  /** The tracer's clock, in seconds (compared with the times in `recent`). */
  readonly now: number;
  readonly recent: RecentLists;
}

/** A new client: no earlier connection. */
export const NO_HISTORY: TraceHistory = { now: 0, recent: new Map() };

/** The kit's packet state, plus how likely its way is and the affinity lists it was added to. */
export interface TraceState extends PacketState {
  /** How likely this way is, from the start of the connection (a `statistic` match splits a way). */
  readonly probability: number;
  /** xt_recent lists the packet's source was added to (`recent --set`) on this way. */
  readonly remembered: readonly string[];
}

/** One way a packet may go, with everything it carries. */
export interface TracedPath {
  readonly state: TraceState;
  readonly ending: Ending;
}

const isTraceState = (state: PacketState): state is TraceState => 'probability' in state && 'remembered' in state;
/** The walk hands each hook the state the previous one left: ours, except the first. */
const traced = (state: PacketState): TraceState => (isTraceState(state) ? state : { ...state, probability: 1, remembered: [] });

interface Context {
  readonly packet: Packet;
  readonly isLocal: (ip: string) => boolean;
  readonly history: TraceHistory;
  /** Which packet of its connection the packet is (conntrack state). */
  readonly connection: 'NEW' | 'ESTABLISHED';
}

const MAX_DEPTH = 64;

class Interpreter {
  readonly #chains: ReadonlyMap<string, Chain>;
  readonly #table: Table;
  readonly #context: Context;
  readonly #cidrs = new Map<string, Cidr | undefined>();

  constructor(table: Table, context: Context) {
    this.#table = table;
    this.#chains = new Map(table.chains.map((c) => [c.name, c]));
    this.#context = context;
  }

  /** The built-in chain holds only kproxy's hooks here: anything else on the node is out of our scope. */
  runBuiltin(builtin: BuiltinChain, state: TraceState): TracedPath[] {
    const rules = this.#table.hooks.filter((h) => h.builtin === builtin).map((h) => h.rule);
    return this.#run(rules, 0, state, 0);
  }

  /** The ways through `rules` from `start`; a rule that matches with probability q takes q of the way. */
  #run(rules: readonly Rule[], start: number, state: TraceState, depth: number): TracedPath[] {
    for (let i = start; i < rules.length; i++) {
      const rule = rules[i];
      if (!rule) continue;
      const q = this.#matches(rule, state);
      if (q === 0) continue;
      if (q === 1) return this.#apply(rule, rules, i, state, depth);
      return [
        ...this.#apply(rule, rules, i, { ...state, probability: state.probability * q }, depth),
        ...this.#run(rules, i + 1, { ...state, probability: state.probability * (1 - q) }, depth),
      ];
    }
    return [{ state, ending: 'CONTINUE' }];
  }

  #apply(rule: Rule, rules: readonly Rule[], index: number, state: TraceState, depth: number): TracedPath[] {
    const target = rule.target;
    const next = (s: TraceState): TracedPath[] => this.#run(rules, index + 1, s, depth);
    const end = (s: TraceState, ending: Ending): TracedPath[] => [{ state: s, ending }];
    // `recent --set` records the source when its rule is taken.
    const recorded = rule.matches.flatMap((m) => (m.kind === 'recent' && m.mode === 'set' ? [m.name] : []));
    const now = recorded.length > 0 ? { ...state, remembered: [...state.remembered, ...recorded] } : state;
    switch (target.kind) {
      case 'jump': {
        const chain = this.#chains.get(target.chain);
        if (!chain || depth >= MAX_DEPTH) return next(now); // a dangling jump fails to load; treat as no-op
        return this.#run(chainRules(chain), 0, now, depth + 1)
          .flatMap((path) => (path.ending === 'CONTINUE' ? next(path.state) : [path]));
      }
      case 'RETURN': return end(now, 'CONTINUE');
      case 'MARK': {
        const mark = target.op === 'or' ? (now.mark | target.value) >>> 0 : (now.mark ^ target.value) >>> 0;
        return next({ ...now, mark });
      }
      case 'DNAT': return end({ ...now, dst: target.ip, port: target.port, dnat: joinHostPort(target.ip, target.port) }, 'ACCEPT');
      case 'MASQUERADE': return end({ ...now, masquerade: true }, 'ACCEPT');
      case 'ACCEPT': case 'DROP': case 'REJECT': return end(now, target.kind);
    }
  }

  /** The probability that every match of the rule holds (only `statistic` is neither 0 nor 1). */
  #matches(rule: Rule, state: TraceState): number {
    let q = 1;
    for (const match of rule.matches) {
      q *= this.#match(match, state);
      if (q === 0) return 0;
    }
    return q;
  }

  #match(match: Match, state: TraceState): number {
    const holds = (value: boolean, negate?: boolean): number => ((negate ? !value : value) ? 1 : 0);
    const { packet, isLocal, history, connection } = this.#context;
    switch (match.kind) {
      case 'src': return holds(this.#inCidr(match.cidr, state.src), match.negate);
      case 'dst': return holds(this.#inCidr(match.cidr, state.dst), match.negate);
      case 'protocol': return holds(match.protocol === packet.protocol && (match.dport === undefined || match.dport === state.port));
      case 'addrtype': return holds(isLocal(match.direction === 'src' ? state.src : state.dst), match.negate);
      case 'mark': return holds(((state.mark & match.mask) >>> 0) === ((match.value & match.mask) >>> 0), match.negate);
      case 'statistic': return Math.min(Math.max(match.probability, 0), 1);
      case 'recent': {
        if (match.mode === 'set') return 1;
        // --rcheck --seconds S: the source was set on this list less than S seconds ago.
        const seen = history.recent.get(match.name)?.get(state.src);
        return holds(seen !== undefined && history.now - seen < match.seconds);
      }
      case 'conntrack': return holds(match.states.includes(connection));
      case 'nfacct': return 1;
    }
  }

  #inCidr(text: string, ip: string): boolean {
    if (!this.#cidrs.has(text)) this.#cidrs.set(text, parseCidr(text));
    const cidr = this.#cidrs.get(text);
    return cidr ? cidrContains(cidr, ip) : false;
  }
}

/** Every way the first packet of a connection may take through `ruleset`, each with its probability. */
export function traceOutcomes(ruleset: Ruleset, packet: Packet, options: TraceOptions, history: TraceHistory = NO_HISTORY): TracedPath[] {
  const family = ruleset.family;
  if (ipFamily(packet.dst) !== family || ipFamily(packet.src) !== family) return [];
  const isLocal = (ip: string): boolean => isLoopback(ip) || options.nodeIPs.includes(ip);
  const context: Context = { packet, isLocal, history, connection: 'NEW' };
  const nat = new Interpreter(ruleset.nat, context);
  const filter = new Interpreter(ruleset.filter, context);
  const paths: Path[] = walkHooks(packet, isLocal, {
    dnat: (hook, state) => nat.runBuiltin(hook, traced(state)),
    filter: (hook, state) => filter.runBuiltin(hook, traced(state)),
    snat: (state) => nat.runBuiltin('POSTROUTING', traced(state)),
  });
  return paths.map((path) => ({ state: traced(path.state), ending: path.ending }));
}

/** Where a new connection ends up: each endpoint reached ("ip:port") with its probability; the rest is not DNATed. */
export function endpointOdds(paths: readonly TracedPath[]): Map<string, number> {
  const odds = new Map<string, number>();
  for (const { state, ending } of paths) {
    if (ending === 'ACCEPT' && state.dnat !== undefined) odds.set(state.dnat, (odds.get(state.dnat) ?? 0) + state.probability);
  }
  return odds;
}

/** What `ruleset` does with `packet` (its family must be the ruleset's), for a new client. */
export function traceRuleset(ruleset: Ruleset, packet: Packet, options: TraceOptions): Verdict {
  return verdictOf(traceOutcomes(ruleset, packet, options));
}

/**
 * A later packet of the connection whose first packet took `first` (conntrack already translated it: no NAT
 * table sees it), through the filter hook it crosses: FORWARD when it is routed through the node, INPUT when it is
 * delivered here, OUTPUT when the node sent it.
 */
export function traceEstablished(ruleset: Ruleset, packet: Packet, first: PacketState, options: TraceOptions): TracedPath[] {
  const isLocal = (ip: string): boolean => isLoopback(ip) || options.nodeIPs.includes(ip);
  const filter = new Interpreter(ruleset.filter, { packet, isLocal, history: NO_HISTORY, connection: 'ESTABLISHED' });
  const hook: BuiltinChain = packet.from === 'node' ? 'OUTPUT' : isLocal(first.dst) ? 'INPUT' : 'FORWARD';
  return filter.runBuiltin(hook, { ...first, mark: 0, probability: 1, remembered: [] });
}
