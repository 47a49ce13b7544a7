// The packet tracer: an interpreter over the typed table (never over text). Pure.
// It follows every way a new connection may go, each with its probability: `numgen random mod N` splits a path
// into N equally likely ones, so the verdict says how often each endpoint is picked. Dynamic sets (session
// affinity) start empty; `traceConnections` runs a second connection from the same client after each way the
// first one went, with what that one remembered, to show where affinity sends it.
import { verdictOf, walkHooks, type HookPrograms, type PacketState, type Path } from '../../kit/netfilter.ts';
import type { Packet, Verdict } from '../../src/model/trace.ts';
import { cidrContains, ipFamily, isLoopback, joinHostPort, normalizeIP, parseCidr, type Cidr } from '../../src/util/ip.ts';
import { CHAINS } from './names.ts';
import { elementKey, elementValue, type Chain, type Element, type Expr, type Match, type Rule, type SetSpec, type Statement, type Table } from './ruleset.ts';

export interface TraceOptions {
  /** The node's own addresses; loopback is always local. */
  readonly nodeIPs: readonly string[];
  /** Dynamic sets with no room left: updating them with a new key fails, which stops the rule. */
  readonly fullSets?: readonly string[];
}

/** The kit's packet state, plus how likely this way is and what it put in dynamic sets. */
interface TraceState extends PacketState {
  /** How likely this way is, from the start of the connection. */
  readonly probability: number;
  /** Keys added to dynamic sets on the way (set name → keys). */
  readonly remembered: ReadonlyMap<string, ReadonlySet<string>>;
}

type Ending = 'CONTINUE' | 'RETURN' | 'ACCEPT' | 'DROP' | 'REJECT';

interface ChainPath {
  readonly state: TraceState;
  readonly ending: Ending;
}

/** A way through the rules: where it ends, how likely it is, and what it remembered. */
export interface TracedPath {
  readonly ending: 'ACCEPT' | 'DROP' | 'REJECT';
  readonly dnat?: string;
  readonly masquerade: boolean;
  /** The packet's mark when it leaves (the masquerade bit must not be left set). */
  readonly mark: number;
  readonly probability: number;
  readonly remembered: ReadonlyMap<string, ReadonlySet<string>>;
}

const MAX_DEPTH = 32;
const PROTOCOLS: Readonly<Record<Packet['protocol'], string>> = { TCP: 'tcp', UDP: 'udp', SCTP: 'sctp' };

/** A value an expression yields: one, or several equally likely ones (numgen). */
type Values = readonly string[];

class Interpreter {
  readonly #table: Table;
  readonly #chains: ReadonlyMap<string, Chain>;
  readonly #specs: ReadonlyMap<string, SetSpec>;
  readonly #elements = new Map<string, Map<string, string | undefined>>();
  readonly #intervals = new Map<string, Array<{ prefix: string; cidr: Cidr | undefined; exact: string }>>();
  readonly #packet: Packet;
  readonly #isLocal: (ip: string) => boolean;
  /** What earlier connections of the same client left in dynamic sets. */
  readonly #known: ReadonlyMap<string, ReadonlySet<string>>;
  readonly #full: ReadonlySet<string>;

  constructor(table: Table, packet: Packet, isLocal: (ip: string) => boolean, known: ReadonlyMap<string, ReadonlySet<string>>, full: ReadonlySet<string>) {
    this.#table = table;
    this.#chains = new Map(table.chains.map((c) => [c.name, c]));
    this.#specs = new Map(table.sets.map((s) => [s.name, s]));
    this.#packet = packet;
    this.#isLocal = isLocal;
    this.#known = known;
    this.#full = full;
  }

  runChain(name: string, state: TraceState): ChainPath[] {
    const chain = this.#chains.get(name);
    return chain ? this.#run(chain.rules, 0, state, 0) : [{ state, ending: 'CONTINUE' }];
  }

  #run(rules: readonly Rule[], start: number, state: TraceState, depth: number): ChainPath[] {
    const rule = rules[start];
    if (!rule) return [{ state, ending: 'CONTINUE' }];
    const next = (s: TraceState): ChainPath[] => this.#run(rules, start + 1, s, depth);
    const out: ChainPath[] = [];
    for (const { state: matched, yes } of this.#matches(rule.matches, state)) {
      if (!yes) { out.push(...next(matched)); continue; }
      out.push(...this.#statements(rule.statements, 0, matched, depth, next));
    }
    return out;
  }

  /** Every outcome of the matches: each a state (with its probability) and whether the rule matched. */
  #matches(matches: readonly Match[], state: TraceState): Array<{ state: TraceState; yes: boolean }> {
    let open: TraceState[] = [state];
    const failed: TraceState[] = [];
    for (const match of matches) {
      const stillOpen: TraceState[] = [];
      for (const s of open) {
        const p = this.#matchProbability(match, s);
        if (p > 0) stillOpen.push({ ...s, probability: s.probability * p });
        if (p < 1) failed.push({ ...s, probability: s.probability * (1 - p) });
      }
      open = stillOpen;
    }
    return [...open.map((s) => ({ state: s, yes: true })), ...failed.map((s) => ({ state: s, yes: false }))];
  }

  /** How likely the match is to hold for this packet. */
  #matchProbability(match: Match, state: TraceState): number {
    switch (match.kind) {
      case 'cmp': {
        const values = this.#values(match.left, state);
        const hits = values.filter((v) => this.#equals(v, match.value.kind === 'number' ? String(match.value.value) : match.value.value)).length;
        const p = hits / values.length;
        return match.negate ? 1 - p : p;
      }
      case 'mark-clear': {
        const clear = (state.mark & match.mask) === 0;
        return (match.negate ? !clear : clear) ? 1 : 0;
      }
      case 'lookup': {
        const keys = this.#keys(match.key, state);
        const hits = keys.filter((k) => this.#contains(match.set, k, state)).length;
        const p = hits / keys.length;
        return match.negate ? 1 - p : p;
      }
      case 'fib-local': return this.#isLocal(match.dir === 'saddr' ? state.src : state.dst) ? 1 : 0;
      case 'ct-dnat': return state.dnat !== undefined ? 1 : 0;
    }
  }

  #statements(list: readonly Statement[], index: number, state: TraceState, depth: number, next: (s: TraceState) => ChainPath[]): ChainPath[] {
    const statement = list[index];
    if (!statement) return next(state);
    const go = (s: TraceState): ChainPath[] => this.#statements(list, index + 1, s, depth, next);
    switch (statement.kind) {
      case 'mark-or': return go({ ...state, mark: (state.mark | statement.value) >>> 0 });
      case 'mark-xor': return go({ ...state, mark: (state.mark ^ statement.value) >>> 0 });
      case 'update': {
        return this.#keys(statement.key, state).flatMap((key, _i, all) => {
          // A full set takes no new key: the statement fails and the rule stops there.
          if (this.#full.has(statement.set) && !this.#contains(statement.set, key, state)) return next({ ...state, probability: state.probability / all.length });
          const remembered = new Map(state.remembered);
          remembered.set(statement.set, new Set([...(remembered.get(statement.set) ?? []), key]));
          return go({ ...state, remembered, probability: state.probability / all.length });
        });
      }
      case 'dnat': {
        if (this.#packet.protocol.toLowerCase() !== statement.protocol) return next(state);
        return [{ state: { ...state, dst: statement.ip, port: statement.port, dnat: joinHostPort(statement.ip, statement.port) }, ending: 'ACCEPT' }];
      }
      case 'dnat-map': {
        if (this.#packet.protocol.toLowerCase() !== statement.protocol) return next(state);
        const keys = this.#keys(statement.key, state);
        return keys.flatMap((key) => {
          const s = { ...state, probability: state.probability / keys.length };
          const value = this.#lookup(statement.map, key);
          if (value === undefined) return next(s); // no element: the rule does not apply
          const [ip = '', port = '0'] = value.split(' . ');
          return [{ state: { ...s, dst: ip, port: Number(port), dnat: joinHostPort(ip, Number(port)) }, ending: 'ACCEPT' as const }];
        });
      }
      case 'vmap': {
        const keys = this.#keys(statement.key, state);
        return keys.flatMap((key) => {
          const s = { ...state, probability: state.probability / keys.length };
          const value = this.#lookup(statement.map, key);
          return value === undefined ? next(s) : this.#verdict(value, s, depth, next);
        });
      }
      case 'masquerade': return [{ state: { ...state, masquerade: true }, ending: 'ACCEPT' }];
      case 'reject': return [{ state, ending: 'REJECT' }];
      case 'verdict': {
        const v = statement.verdict;
        return this.#verdict(v.kind === 'jump' || v.kind === 'goto' ? `${v.kind} ${v.chain}` : v.kind, state, depth, next);
      }
    }
  }

  #verdict(text: string, state: TraceState, depth: number, next: (s: TraceState) => ChainPath[]): ChainPath[] {
    const [kind = '', chain = ''] = text.split(' ');
    if (kind === 'accept') return [{ state, ending: 'ACCEPT' }];
    if (kind === 'drop') return [{ state, ending: 'DROP' }];
    if (kind === 'return') return [{ state, ending: 'RETURN' }];
    if ((kind === 'jump' || kind === 'goto') && depth < MAX_DEPTH) {
      const target = this.#chains.get(chain);
      if (!target) return next(state); // the kernel refuses a dangling reference; treat as no-op
      const paths = this.#run(target.rules, 0, state, depth + 1);
      // jump: falling off or returning continues after the jump; goto: it ends this chain (returns to its caller).
      return paths.flatMap((p) => (p.ending === 'CONTINUE' || p.ending === 'RETURN'
        ? (kind === 'jump' ? next(p.state) : [{ state: p.state, ending: 'RETURN' as const }]) : [p]));
    }
    return next(state);
  }

  #values(expr: Expr, state: TraceState): Values {
    switch (expr.kind) {
      case 'addr': return [expr.dir === 'saddr' ? state.src : state.dst];
      case 'l4proto': return [PROTOCOLS[this.#packet.protocol]];
      case 'dport': case 'port-value': return [String(state.port)];
      case 'mark': return [String(state.mark)];
      case 'numgen': return Array.from({ length: expr.mod }, (_, i) => String(i + (expr.offset ?? 0)));
    }
  }

  /** Every concatenated key the expressions may yield (each equally likely). */
  #keys(exprs: readonly Expr[], state: TraceState): string[] {
    let keys = [''];
    for (const expr of exprs) {
      const values = this.#values(expr, state);
      keys = keys.flatMap((k) => values.map((v) => (k === '' ? v : `${k} . ${v}`)));
    }
    return keys;
  }

  #equals(value: string, wanted: string): boolean {
    if (wanted.includes('/') || ipFamily(value) !== undefined) {
      const cidr = parseCidr(wanted);
      return cidr ? cidrContains(cidr, value) : value === wanted;
    }
    return value === wanted;
  }

  #elementsOf(set: string): Map<string, string | undefined> {
    let map = this.#elements.get(set);
    if (!map) {
      map = new Map((this.#table.elements.get(set) ?? []).map((e: Element) => [elementKey(e), elementValue(e)]));
      this.#elements.set(set, map);
    }
    return map;
  }

  #lookup(set: string, key: string): string | undefined {
    return this.#elementsOf(set).get(key);
  }

  #contains(set: string, key: string, state: TraceState): boolean {
    const spec = this.#specs.get(set);
    if (spec?.dynamic) return this.#known.get(set)?.has(key) === true || state.remembered.get(set)?.has(key) === true;
    if (!spec?.flags?.includes('interval')) return this.#elementsOf(set).has(key);
    // Interval sets: every field but the last is exact here; the last is an address range.
    let ranges = this.#intervals.get(set);
    if (!ranges) {
      ranges = (this.#table.elements.get(set) ?? []).map((e) => {
        const k = elementKey(e);
        const cut = k.lastIndexOf(' . ');
        const last = cut < 0 ? k : k.slice(cut + 3);
        return { prefix: cut < 0 ? '' : k.slice(0, cut), cidr: parseCidr(last), exact: k };
      });
      this.#intervals.set(set, ranges);
    }
    const cut = key.lastIndexOf(' . ');
    const prefix = cut < 0 ? '' : key.slice(0, cut);
    const last = cut < 0 ? key : key.slice(cut + 3);
    return ranges.some((r) => r.prefix === prefix && (r.cidr ? cidrContains(r.cidr, last) : r.exact === key));
  }
}

const isTraceState = (state: PacketState): state is TraceState => 'probability' in state;
const traced = (state: PacketState): TraceState => (isTraceState(state) ? state : { ...state, probability: 1, remembered: new Map() });
const asPath = (p: ChainPath): Path => ({ state: p.state, ending: p.ending === 'RETURN' ? 'CONTINUE' : p.ending });

/** Every way one new connection may go through the netfilter hooks (the kit's walk), with its probability. */
function walk(table: Table, packet: Packet, options: TraceOptions, known: ReadonlyMap<string, ReadonlySet<string>>): Path[] {
  const family = table.family === 'ip' ? 'IPv4' : 'IPv6';
  if (ipFamily(packet.dst) !== family || ipFamily(packet.src) !== family) return [];
  const canonical: Packet = { ...packet, src: normalizeIP(packet.src) ?? packet.src, dst: normalizeIP(packet.dst) ?? packet.dst };
  const isLocal = (ip: string): boolean => isLoopback(ip) || options.nodeIPs.includes(ip);
  const vm = new Interpreter(table, canonical, isLocal, known, new Set(options.fullSets));
  const programs: HookPrograms = {
    dnat: (hook, state) => vm.runChain(hook === 'OUTPUT' ? CHAINS.output : CHAINS.prerouting, traced(state)).map(asPath),
    filter: (_hook, state) => [{ state, ending: 'CONTINUE' }], // kproxy's table has no filter chains
    snat: (state) => vm.runChain(CHAINS.postrouting, traced(state)).map(asPath),
  };
  return walkHooks(canonical, isLocal, programs);
}

/** What kproxy's table does with a new connection. */
export function traceTable(table: Table, packet: Packet, options: TraceOptions): Verdict {
  return verdictOf(walk(table, packet, options, new Map()));
}

/** Every way one new connection may go, with its probability (`known`: what earlier ones left in dynamic sets). */
export function tracePaths(table: Table, packet: Packet, options: TraceOptions, known: ReadonlyMap<string, ReadonlySet<string>> = new Map()): TracedPath[] {
  return walk(table, packet, options, known).map(({ state, ending }) => {
    const t = traced(state);
    const end = ending === 'DROP' || ending === 'REJECT' ? ending : 'ACCEPT';
    return { ending: end, masquerade: t.masquerade, mark: t.mark, probability: t.probability, remembered: t.remembered, ...(t.dnat ? { dnat: t.dnat } : {}) };
  });
}

/** Probability of reaching each endpoint ("ip:port"), from the paths of one connection. */
export function endpointShares(paths: readonly TracedPath[]): Map<string, number> {
  const shares = new Map<string, number>();
  for (const path of paths) {
    if (path.ending === 'ACCEPT' && path.dnat !== undefined) shares.set(path.dnat, (shares.get(path.dnat) ?? 0) + path.probability);
  }
  return shares;
}

/**
 * Two connections from the same client: for each way the first may go, where the second goes given what the
 * first remembered. Affinity holds when every second connection reaches the first one's endpoint.
 */
export function traceConnections(table: Table, packet: Packet, options: TraceOptions): Array<{ first: TracedPath; second: Map<string, number> }> {
  return tracePaths(table, packet, options).filter((p) => p.dnat !== undefined)
    .map((first) => ({ first, second: endpointShares(tracePaths(table, packet, options, first.remembered)) }));
}
