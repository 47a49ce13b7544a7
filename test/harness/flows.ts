// Running packet-flow cases (test/flows/table.ts) through real sockets in a namespace cluster: send the packet's
// connection from the namespace that owns its source address, and read the verdict off what came back.
import type { Packet, Reach, Verdict } from '../../src/model/trace.ts';
import type { DesiredState } from '../../src/model/types.ts';
import { ipFamily, joinHostPort } from '../../src/util/ip.ts';
import { EXT_IP, EXT_IP6, NODE_IP, NODE_IP6, type Cluster, type ProbeSummary } from './cluster.ts';

/** The namespace whose address is the packet's source, or an explanation of why there is none. */
export function sourceNamespace(cluster: Cluster, packet: Packet): string | undefined {
  if (packet.from === 'external') return [EXT_IP, EXT_IP6].includes(packet.src) ? cluster.extNs : undefined;
  if (packet.from === 'node') return [NODE_IP, NODE_IP6].includes(packet.src) ? cluster.nodeNs : undefined;
  const pod = [...cluster.pods, cluster.client].find((p) => p.ip === packet.src || p.ip6 === packet.src);
  return pod?.ns;
}

/**
 * How the proxy under test shows a client that it refuses a connection, which decides how errors read as verdicts.
 * - 'kernel' (default): the proxy acts on the SYN. Reject = refused at once (ECONNREFUSED); drop = anything else
 *   (normally silence: TIMEOUT).
 * - 'relay': a userspace relay must complete the handshake before it can look at the client, so it cannot refuse
 *   the SYN. Its reject is a reset right after the accept (ECONNRESET); its drop is a close without reset, which
 *   the client reads as end-of-stream without an answer (the probe's CLOSED). A port nothing listens on is still
 *   refused by the kernel (ECONNREFUSED, a reject), and silence (TIMEOUT) is still a drop. Nothing else counts:
 *   a case whose errors mix a reset with a quiet close or a timeout reads as neither (so it fails either way).
 * UDP reads the same either way: no handshake, and a refused datagram gets no answer (TIMEOUT, a drop).
 */
export type RefusalStyle = 'kernel' | 'relay';

export interface ObserveOptions {
  readonly refusals?: RefusalStyle;
}

const RELAY_REJECT = new Set(['ECONNRESET', 'ECONNREFUSED']);
const RELAY_DROP = new Set(['CLOSED', 'TIMEOUT']);

/** The verdict of a flow that reached no backend, from the probe's error codes. */
function refusalVerdict(errors: readonly string[], style: RefusalStyle): Verdict {
  if (style === 'kernel') {
    return errors.length > 0 && errors.every((e) => e === 'ECONNREFUSED') ? { kind: 'reject' } : { kind: 'drop' };
  }
  if (errors.length > 0 && errors.every((e) => RELAY_REJECT.has(e))) return { kind: 'reject' };
  if (errors.every((e) => RELAY_DROP.has(e))) return { kind: 'drop' };
  // neither a clean refusal nor a clean drop: 'untouched' never matches what a reaching-nothing case may show
  return { kind: 'untouched' };
}

export interface Observation {
  readonly verdict: Verdict;
  readonly summary: ProbeSummary;
}

/**
 * Send enough connections to see every backend (`expected` sizes the sample: 8 per expected endpoint), then
 * turn the answers into a Verdict: backends with the address each saw (masquerade = not the packet's source),
 * or reject (refused at once), or drop (nothing came back); `options.refusals` says how the proxy refuses.
 * `endpointPort` is the port the pod servers use.
 */
export async function observeFlow(
  cluster: Cluster, packet: Packet, expected: Verdict, endpointPort: number, options: ObserveOptions = {},
): Promise<Observation> {
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
  const verdict: Verdict = reaches.size > 0
    ? { kind: 'forward', reaches: [...reaches.values()].sort((a, b) => a.endpoint.localeCompare(b.endpoint)) }
    : refusalVerdict(errors, options.refusals ?? 'kernel');
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

/** Whether the packet addresses a service port with ClientIP affinity (one client then sticks to one endpoint). */
export function addressesStickyService(state: DesiredState, packet: Packet): boolean {
  const family = ipFamily(packet.dst);
  if (!family) return false;
  return state.families[family].services.some((s) => s.affinity !== undefined && s.protocol === packet.protocol
    && s.frontends.some((f) => f.kind !== 'NodePort' && f.ip === packet.dst && f.port === packet.port));
}

/** A sticky service seen from one client: exactly one of the expected reaches. */
export function stickyVariants(expected: Verdict): Verdict[] {
  return expected.kind === 'forward' ? expected.reaches.map((reach) => ({ kind: 'forward', reaches: [reach] })) : [expected];
}

/**
 * One packet-flow case through a kernel mode: conntrack flushed, the connections sent, and an assertion that what
 * came back is one of the verdicts the kernel can show for the expected one (a sticky service shows one endpoint).
 */
export async function checkKernelFlow(cluster: Cluster, state: DesiredState, flow: { readonly packet: Packet; readonly expect: Verdict }, endpointPort: number): Promise<void> {
  await cluster.flushConntrack();
  const { verdict, summary } = await observeFlow(cluster, flow.packet, flow.expect, endpointPort);
  const allowed = addressesStickyService(state, flow.packet) ? stickyVariants(flow.expect) : observable(flow.expect, flow.packet, cluster, endpointPort);
  const { from, src, dst, port, protocol } = flow.packet;
  if (!allowed.some((v) => JSON.stringify(v) === JSON.stringify(verdict))) {
    throw new Error(`${from} ${src} -> ${dst}:${port}/${protocol}: got ${JSON.stringify(verdict)}, want ${JSON.stringify(allowed)} (${JSON.stringify(summary)})`);
  }
}
