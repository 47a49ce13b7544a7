// Running packet-flow cases (test/flows/table.ts) through real sockets in a namespace cluster: send the packet's
// connection from the namespace that owns its source address, and read the verdict off what came back.
import type { Packet, Reach, Verdict } from '../../src/model/trace.ts';
import { ipFamily, joinHostPort } from '../../src/util/ip.ts';
import { EXT_IP, EXT_IP6, NODE_IP, NODE_IP6, type Cluster, type ProbeSummary } from './cluster.ts';

/** The namespace whose address is the packet's source, or an explanation of why there is none. */
export function sourceNamespace(cluster: Cluster, packet: Packet): string | undefined {
  if (packet.from === 'external') return [EXT_IP, EXT_IP6].includes(packet.src) ? cluster.extNs : undefined;
  if (packet.from === 'node') return [NODE_IP, NODE_IP6].includes(packet.src) ? cluster.nodeNs : undefined;
  const pod = [...cluster.pods, cluster.client].find((p) => p.ip === packet.src || p.ip6 === packet.src);
  return pod?.ns;
}

export interface Observation {
  readonly verdict: Verdict;
  readonly summary: ProbeSummary;
}

/**
 * Send enough connections to see every backend (`expected` sizes the sample: 8 per expected endpoint), then
 * turn the answers into a Verdict: backends with the address each saw (masquerade = not the packet's source),
 * or reject (refused at once), or drop (nothing came back). `endpointPort` is the port the pod servers use.
 */
export async function observeFlow(cluster: Cluster, packet: Packet, expected: Verdict, endpointPort: number): Promise<Observation> {
  const ns = sourceNamespace(cluster, packet);
  if (!ns) throw new Error(`no namespace has source address ${packet.src} (${packet.from})`);
  if (packet.protocol === 'SCTP') throw new Error('the pod servers speak TCP and UDP only');
  const count = expected.kind === 'forward' ? Math.max(8, expected.reaches.length * 8) : 2;
  const probe = { count, timeoutMs: 500, ...(packet.protocol === 'TCP' ? { concurrency: 4 } : {}) };
  const summary = packet.protocol === 'TCP'
    ? await cluster.tcp(ns, packet.dst, packet.port, probe)
    : await cluster.udp(ns, packet.dst, packet.port, probe);
  const family = ipFamily(packet.dst) ?? 'IPv4';
  const reaches = new Map<string, Reach>();
  for (const pair of Object.keys(summary.pairs)) {
    const [backend = '', peer = ''] = pair.split(' ');
    const pod = [...cluster.pods, cluster.client].find((p) => p.name === backend);
    if (!pod) continue;
    const endpoint = joinHostPort(family === 'IPv4' ? pod.ip : pod.ip6, endpointPort);
    const masquerade = peer !== packet.src;
    const seen = reaches.get(endpoint);
    // one backend seeing both the real and a masqueraded source would be a bug: keep it visible
    reaches.set(endpoint, { endpoint, masquerade: seen ? seen.masquerade || masquerade : masquerade });
  }
  const errors = Object.keys(summary.errors);
  let verdict: Verdict;
  if (reaches.size > 0) verdict = { kind: 'forward', reaches: [...reaches.values()].sort((a, b) => a.endpoint.localeCompare(b.endpoint)) };
  else if (errors.length > 0 && errors.every((e) => e === 'ECONNREFUSED')) verdict = { kind: 'reject' };
  else verdict = { kind: 'drop' };
  return { verdict, summary };
}

/**
 * The verdict a real kernel can show for `expected`. 'untouched' traffic is not proxied: a pod address answers
 * as itself (source kept), anything else reaches no backend, which looks like a drop or a refusal.
 */
export function observable(expected: Verdict, packet: Packet, cluster: Cluster, endpointPort: number): Verdict[] {
  if (expected.kind !== 'untouched') return [expected];
  const pod = cluster.pods.find((p) => p.ip === packet.dst || p.ip6 === packet.dst);
  if (pod && packet.port === endpointPort) {
    return [{ kind: 'forward', reaches: [{ endpoint: joinHostPort(packet.dst, endpointPort), masquerade: false }] }];
  }
  return [{ kind: 'drop' }, { kind: 'reject' }];
}
