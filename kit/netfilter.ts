// The way a packet takes through netfilter's hooks, for every kernel mode's tracer. Pure.
// A mode says what its rules do at each hook (as a list of possible paths); the walk strings the hooks together
// around the routing decision, and turns the outcomes into one Verdict.
import type { Packet, Reach, Verdict } from '../src/model/trace.ts';

/** The packet as the rules see it so far. */
export interface PacketState {
  readonly src: string;
  readonly dst: string;
  readonly port: number;
  /** The packet's fwmark (32 bits). */
  readonly mark: number;
  /** "ip:port" once destination NAT rewrote the destination. */
  readonly dnat?: string;
  /** Source NAT to the node's address was applied. */
  readonly masquerade: boolean;
}

/** CONTINUE: the hook's rules let it go on (fell off the end, or returned). */
export type Ending = 'CONTINUE' | 'ACCEPT' | 'DROP' | 'REJECT';

/** One way a packet may go through some rules. */
export interface Path {
  readonly state: PacketState;
  readonly ending: Ending;
}

export type NatHook = 'PREROUTING' | 'OUTPUT';
export type FilterHook = 'INPUT' | 'FORWARD' | 'OUTPUT';

/** What a mode's rules do at each hook; each returns every path the packet may take. */
export interface HookPrograms {
  /** Destination NAT: PREROUTING for a packet arriving, OUTPUT for one the node sends. */
  readonly dnat: (hook: NatHook, state: PacketState) => readonly Path[];
  /** Filtering after the routing decision. */
  readonly filter: (hook: FilterHook, state: PacketState) => readonly Path[];
  /** Source NAT (POSTROUTING), for packets that leave the node. */
  readonly snat: (state: PacketState) => readonly Path[];
}

const refused = (path: Path): boolean => path.ending === 'DROP' || path.ending === 'REJECT';

/**
 * Every outcome of `packet`: DNAT (PREROUTING, or OUTPUT from the node), the routing decision (a local destination
 * is delivered through INPUT, anything else leaves through FORWARD, or OUTPUT from the node), filter, then
 * POSTROUTING for what leaves. `isLocal` says which addresses are the node's.
 */
export function walkHooks(packet: Packet, isLocal: (ip: string) => boolean, programs: HookPrograms): Path[] {
  const initial: PacketState = { src: packet.src, dst: packet.dst, port: packet.port, mark: 0, masquerade: false };
  const fromNode = packet.from === 'node';
  const outcomes: Path[] = [];
  for (const natPath of programs.dnat(fromNode ? 'OUTPUT' : 'PREROUTING', initial)) {
    if (refused(natPath)) { outcomes.push(natPath); continue; }
    const local = isLocal(natPath.state.dst);
    const hooks: FilterHook[] = fromNode ? (local ? ['OUTPUT', 'INPUT'] : ['OUTPUT']) : (local ? ['INPUT'] : ['FORWARD']);
    let paths: readonly Path[] = [{ state: natPath.state, ending: 'CONTINUE' }];
    for (const hook of hooks) paths = paths.flatMap((p) => (refused(p) ? [p] : programs.filter(hook, p.state)));
    for (const path of paths) {
      if (refused(path)) { outcomes.push(path); continue; }
      if (local && !fromNode) { outcomes.push({ state: path.state, ending: 'ACCEPT' }); continue; }
      for (const post of programs.snat(path.state)) outcomes.push({ state: post.state, ending: 'ACCEPT' });
    }
  }
  return outcomes;
}

/** The verdict of a walk's outcomes: the endpoints reached (masqueraded on any path), else reject, drop, untouched. */
export function verdictOf(outcomes: readonly Path[]): Verdict {
  const reaches = new Map<string, boolean>();
  for (const { state, ending } of outcomes) {
    if (ending !== 'ACCEPT' || state.dnat === undefined) continue;
    reaches.set(state.dnat, (reaches.get(state.dnat) ?? false) || state.masquerade);
  }
  if (reaches.size > 0) {
    const list: Reach[] = [...reaches].map(([endpoint, masquerade]) => ({ endpoint, masquerade }));
    list.sort((a, b) => a.endpoint.localeCompare(b.endpoint));
    return { kind: 'forward', reaches: list };
  }
  if (outcomes.some((o) => o.ending === 'REJECT')) return { kind: 'reject' };
  if (outcomes.some((o) => o.ending === 'DROP')) return { kind: 'drop' };
  return { kind: 'untouched' };
}
