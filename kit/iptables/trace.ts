// The packet tracer of an iptables ruleset: an interpreter over the typed rules (never over text), run at each
// netfilter hook by the kit's hook walk. Pure.
// It follows every branch a packet may take (statistic and recent matches may or may not match), so the
// verdict lists every endpoint the packet can reach, not one random pick.
import type { Packet, Verdict } from '../../src/model/trace.ts';
import { cidrContains, ipFamily, isLoopback, joinHostPort, parseCidr } from '../../src/util/ip.ts';
import type { Cidr } from '../../src/util/ip.ts';
import { verdictOf, walkHooks, type PacketState, type Path } from '../netfilter.ts';
import type { BuiltinChain, Chain, Match, Rule, Ruleset, Table } from './ruleset.ts';
import { chainRules } from './ruleset.ts';

export interface TraceOptions {
  /** The node's own addresses (FamilyPlan.nodeIPs); loopback is always local. */
  readonly nodeIPs: readonly string[];
}

/** true / false, or 'maybe' for matches that depend on chance or history. */
type MatchResult = boolean | 'maybe';

const MAX_DEPTH = 64;

class Interpreter {
  readonly #chains: ReadonlyMap<string, Chain>;
  readonly #table: Table;
  readonly #packet: Packet;
  readonly #isLocal: (ip: string) => boolean;
  readonly #cidrs = new Map<string, Cidr | undefined>();

  constructor(table: Table, packet: Packet, isLocal: (ip: string) => boolean) {
    this.#table = table;
    this.#chains = new Map(table.chains.map((c) => [c.name, c]));
    this.#packet = packet;
    this.#isLocal = isLocal;
  }

  /** The built-in chain holds only kproxy's hooks here: anything else on the node is out of our scope. */
  runBuiltin(builtin: BuiltinChain, state: PacketState): Path[] {
    const rules = this.#table.hooks.filter((h) => h.builtin === builtin).map((h) => h.rule);
    return this.#run(rules, 0, state, 0);
  }

  #run(rules: readonly Rule[], start: number, state: PacketState, depth: number): Path[] {
    for (let i = start; i < rules.length; i++) {
      const rule = rules[i];
      if (!rule) continue;
      const matched = this.#matches(rule, state);
      if (matched === false) continue;
      const taken = this.#apply(rule, rules, i, state, depth);
      return matched === 'maybe' ? [...taken, ...this.#run(rules, i + 1, state, depth)] : taken;
    }
    return [{ state, ending: 'CONTINUE' }];
  }

  #apply(rule: Rule, rules: readonly Rule[], index: number, state: PacketState, depth: number): Path[] {
    const target = rule.target;
    const next = (s: PacketState): Path[] => this.#run(rules, index + 1, s, depth);
    switch (target.kind) {
      case 'jump': {
        const chain = this.#chains.get(target.chain);
        if (!chain || depth >= MAX_DEPTH) return next(state); // a dangling jump fails to load; treat as no-op
        return this.#run(chainRules(chain), 0, state, depth + 1)
          .flatMap((path) => (path.ending === 'CONTINUE' ? next(path.state) : [path]));
      }
      case 'RETURN': return [{ state, ending: 'CONTINUE' }];
      case 'MARK': {
        const mark = target.op === 'or' ? (state.mark | target.value) >>> 0 : (state.mark ^ target.value) >>> 0;
        return next({ ...state, mark });
      }
      case 'DNAT': {
        const dnat = joinHostPort(target.ip, target.port);
        return [{ state: { ...state, dst: target.ip, port: target.port, dnat }, ending: 'ACCEPT' }];
      }
      case 'MASQUERADE': return [{ state: { ...state, masquerade: true }, ending: 'ACCEPT' }];
      case 'ACCEPT': case 'DROP': case 'REJECT': return [{ state, ending: target.kind }];
    }
  }

  #matches(rule: Rule, state: PacketState): MatchResult {
    let result: MatchResult = true;
    for (const match of rule.matches) {
      const one = this.#match(match, state);
      if (one === false) return false;
      if (one === 'maybe') result = 'maybe';
    }
    return result;
  }

  #match(match: Match, state: PacketState): MatchResult {
    const negated = (value: boolean, negate: boolean | undefined): boolean => (negate ? !value : value);
    switch (match.kind) {
      case 'src': return negated(this.#inCidr(match.cidr, state.src), match.negate);
      case 'dst': return negated(this.#inCidr(match.cidr, state.dst), match.negate);
      case 'protocol':
        return match.protocol === this.#packet.protocol && (match.dport === undefined || match.dport === state.port);
      case 'addrtype':
        return negated(this.#isLocal(match.direction === 'src' ? state.src : state.dst), match.negate);
      case 'mark': return negated(((state.mark & match.mask) >>> 0) === ((match.value & match.mask) >>> 0), match.negate);
      case 'statistic':
        if (match.probability >= 1) return true;
        return match.probability <= 0 ? false : 'maybe';
      // --set always matches (it records the source); --rcheck depends on earlier packets.
      case 'recent': return match.mode === 'set' ? true : 'maybe';
      // The tracer follows the first packet of a connection.
      case 'conntrack': return match.states.includes('NEW');
    }
  }

  #inCidr(text: string, ip: string): boolean {
    if (!this.#cidrs.has(text)) this.#cidrs.set(text, parseCidr(text));
    const cidr = this.#cidrs.get(text);
    return cidr ? cidrContains(cidr, ip) : false;
  }
}

/** What `ruleset` does with `packet` (its family must be the ruleset's). */
export function traceRuleset(ruleset: Ruleset, packet: Packet, options: TraceOptions): Verdict {
  const family = ruleset.family;
  if (ipFamily(packet.dst) !== family || ipFamily(packet.src) !== family) return { kind: 'untouched' };
  const isLocal = (ip: string): boolean => isLoopback(ip) || options.nodeIPs.includes(ip);
  const nat = new Interpreter(ruleset.nat, packet, isLocal);
  const filter = new Interpreter(ruleset.filter, packet, isLocal);
  return verdictOf(walkHooks(packet, isLocal, {
    dnat: (hook, state) => nat.runBuiltin(hook, state),
    filter: (hook, state) => filter.runBuiltin(hook, state),
    snat: (state) => nat.runBuiltin('POSTROUTING', state),
  }));
}
