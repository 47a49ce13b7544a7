// trace (pure): what the relay does with one packet, read from the compiled listener table.
import type { DesiredState } from '../../src/model/types.ts';
import type { Packet, Verdict } from '../../src/model/trace.ts';
import { normalizeIP } from '../../src/util/ip.ts';
import { classifyClient, decide } from './decide.ts';
import { listenerKey } from './table.ts';
import type { ListenerTable } from './table.ts';

export function traceTable(table: ListenerTable, nodeIPs: readonly string[], packet: Packet): Verdict {
  if (packet.protocol === 'SCTP') return { kind: 'untouched' };
  const dst = normalizeIP(packet.dst);
  const src = normalizeIP(packet.src) ?? packet.src;
  if (!dst) return { kind: 'untouched' };
  const key = listenerKey(packet.protocol, dst, packet.port);
  const listener = table.listeners.find((l) => l.key === key);
  if (!listener) return { kind: 'untouched' };
  const scope =
    packet.from === 'node'
      ? 'internal'
      : classifyClient(src, { internalCidrs: table.internalCidrs, isNodeAddress: (ip) => nodeIPs.includes(ip) });
  const decision = decide(listener.route, src, scope);
  if (decision.kind !== 'forward') return decision;
  // A relay opens its own connection to the endpoint: the backend always sees the node as the source.
  const reaches = decision.endpoints.map((e) => ({ endpoint: e.id, masquerade: true }));
  return { kind: 'forward', reaches: reaches.sort((a, b) => a.endpoint.localeCompare(b.endpoint)) };
}

/** The node's own addresses, from the Node object (a connection from the node itself is internal). */
export function nodeAddressesOf(state: DesiredState): string[] {
  return [...state.families.IPv4.nodeIPs, ...state.families.IPv6.nodeIPs]
    .map((ip) => normalizeIP(ip))
    .filter((ip): ip is string => ip !== undefined);
}
