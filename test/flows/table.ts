// The packet-flow table: the behavioural contract of every proxy mode. Each case is a packet sent in the
// cluster of cluster.yaml and what must happen to it. Modes run it against their tracer (fast, pure), the
// kernel tests against real namespaces, the userspace mode against its relay.
import type { Packet, Reach, Verdict } from '../../src/model/trace.ts';
import type { Protocol } from '../../src/model/types.ts';
import { TOPOLOGY as T } from './cluster.ts';

export { flowClusterState, FLOW_COMPUTE_OPTIONS, FLOW_MANIFEST_PATH, TOPOLOGY } from './cluster.ts';

export interface FlowCase {
  readonly name: string;
  readonly packet: Packet;
  readonly expect: Verdict;
  /**
   * Set when the case cannot be reproduced with real sockets in the namespace harness, with the reason
   * (e.g. it reaches an endpoint on node2, which exists only on paper). Tracers run every case.
   */
  readonly tracerOnly?: string;
  /** Where upstream's nftables mode decides otherwise than its iptables mode (the nftables tests expect this). */
  readonly nftables?: Verdict;
}

/** The verdict a mode must give: the case's own, or the nftables one where upstream's nftables mode differs. */
export function expectedIn(mode: 'iptables' | 'nftables', flow: FlowCase): Verdict {
  return mode === 'nftables' ? flow.nftables ?? flow.expect : flow.expect;
}

const ON_NODE2 = 'reaches an endpoint on node2, which the harness does not build';
// The harness node's default route points back at the outside client, so an outside packet to a VIP that is not
// DNATed is routed out the interface it came in on: the kernel sends an ICMP redirect before FORWARD filtering,
// which also spends the client's ICMP rate-limit budget and turns the next cases' REJECTs into silence.
const VIP_BOUNCES = 'an undelivered outside->VIP packet makes the harness node send ICMP redirects (a harness artefact)';

/** "ip:port" → masquerade. */
function reach(endpoints: Readonly<Record<string, boolean>>): Verdict {
  const reaches: Reach[] = Object.entries(endpoints).map(([endpoint, masquerade]) => ({ endpoint, masquerade }));
  reaches.sort((a, b) => a.endpoint.localeCompare(b.endpoint));
  return { kind: 'forward', reaches };
}

const REJECT: Verdict = { kind: 'reject' };
const DROP: Verdict = { kind: 'drop' };
const UNTOUCHED: Verdict = { kind: 'untouched' };

const pods = (masquerade: boolean | readonly boolean[], port = 8080): Verdict => reach(Object.fromEntries(
  T.pods.map((ip, i) => [`${ip}:${port}`, typeof masquerade === 'boolean' ? masquerade : masquerade[i] ?? false]),
));
const pods6 = (masquerade: boolean | readonly boolean[]): Verdict => reach(Object.fromEntries(
  T.pods6.map((ip, i) => [`[${ip}]:8080`, typeof masquerade === 'boolean' ? masquerade : masquerade[i] ?? false]),
));

const tcp = (from: Packet['from'], src: string, dst: string, port: number, protocol: Protocol = 'TCP'): Packet =>
  ({ from, src, dst, port, protocol });
const fromPod = (dst: string, port: number, protocol: Protocol = 'TCP'): Packet => tcp('pod', T.clientPod, dst, port, protocol);
const fromNode = (dst: string, port: number): Packet => tcp('node', T.nodeIP, dst, port);
const fromOutside = (dst: string, port: number): Packet => tcp('external', T.outsideClient, dst, port);

export const FLOW_CASES: readonly FlowCase[] = [
  // ClusterIP
  { name: 'ClusterIP from a pod reaches every endpoint, source kept', packet: fromPod('10.96.0.10', 80), expect: pods(false) },
  { name: 'ClusterIP from the node is masqueraded', packet: fromNode('10.96.0.10', 80), expect: pods(true) },
  { name: 'ClusterIP from outside the cluster is masqueraded', packet: fromOutside('10.96.0.10', 80), expect: pods(true) },
  {
    name: 'hairpin: an endpoint reaching its own service is masqueraded only towards itself',
    packet: tcp('pod', '10.244.1.2', '10.96.0.10', 80), expect: pods([true, false, false]),
  },
  { name: 'a port the service does not expose is untouched', packet: fromPod('10.96.0.10', 81), expect: UNTOUCHED },
  { name: 'a pod IP addressed directly is untouched', packet: fromPod('10.244.1.3', 8080), expect: UNTOUCHED },
  { name: 'UDP ClusterIP reaches every endpoint', packet: fromPod('10.96.0.10', 53, 'UDP'), expect: pods(false) },
  { name: 'the UDP port is not open over TCP', packet: fromPod('10.96.0.10', 53, 'TCP'), expect: UNTOUCHED },
  {
    name: 'SCTP ClusterIP reaches every endpoint', packet: fromPod('10.96.0.10', 9000, 'SCTP'), expect: pods(false),
    tracerOnly: 'the pod servers speak TCP and UDP only',
  },
  // NodePort (externalTrafficPolicy Cluster)
  { name: 'NodePort from outside is masqueraded', packet: fromOutside(T.nodeIP, 30080), expect: pods(true) },
  { name: 'NodePort from the node is masqueraded', packet: fromNode(T.nodeIP, 30080), expect: pods(true) },
  { name: 'NodePort from a pod is masqueraded', packet: fromPod(T.nodeIP, 30080), expect: pods(true) },
  { name: 'NodePort is never served on 127.0.0.1 (CVE-2020-8558)', packet: fromNode('127.0.0.1', 30080), expect: UNTOUCHED },
  { name: 'NodePort of a LoadBalancer service from outside', packet: fromOutside(T.nodeIP, 30081), expect: pods(true) },
  // LoadBalancer IP, externalIP, source ranges
  { name: 'LoadBalancer IP from outside is masqueraded', packet: fromOutside('192.168.200.12', 80), expect: pods(true) },
  { name: 'externalIP from outside is masqueraded', packet: fromOutside('192.168.200.22', 80), expect: pods(true) },
  { name: 'LoadBalancer IP from an allowed source range', packet: fromOutside('192.168.200.13', 80), expect: pods(true) },
  { name: 'LoadBalancer IP from outside the source ranges is dropped', packet: fromPod('192.168.200.13', 80), expect: DROP },
  { name: 'source ranges do not apply to the NodePort', packet: fromOutside(T.nodeIP, 30083), expect: pods(true) },
  // externalTrafficPolicy Local
  {
    name: 'ETP Local NodePort from outside reaches local endpoints only, source kept',
    packet: fromOutside(T.nodeIP, 30084), expect: reach({ '10.244.1.2:8080': false }),
  },
  {
    name: 'ETP Local LoadBalancer IP from outside reaches local endpoints only, source kept',
    packet: fromOutside('192.168.200.14', 80), expect: reach({ '10.244.1.2:8080': false }),
  },
  {
    name: 'ETP Local NodePort from the node uses every endpoint, masqueraded',
    packet: fromNode(T.nodeIP, 30084), expect: reach({ '10.244.1.2:8080': true, '10.244.2.2:8080': true }), tracerOnly: ON_NODE2,
  },
  {
    name: 'ETP Local NodePort from a pod uses every endpoint, source kept',
    packet: fromPod(T.nodeIP, 30084), expect: reach({ '10.244.1.2:8080': false, '10.244.2.2:8080': false }), tracerOnly: ON_NODE2,
  },
  {
    name: 'ETP Local ClusterIP from a pod ignores the external policy',
    packet: fromPod('10.96.0.14', 80), expect: reach({ '10.244.1.2:8080': false, '10.244.2.2:8080': false }), tracerOnly: ON_NODE2,
  },
  { name: 'ETP Local NodePort without a local endpoint drops outside traffic', packet: fromOutside(T.nodeIP, 30085), expect: DROP },
  {
    name: 'ETP Local NodePort without a local endpoint still serves pods',
    packet: fromPod(T.nodeIP, 30085), expect: reach({ '10.244.2.3:8080': false }), tracerOnly: ON_NODE2,
  },
  // ETP Local without a local endpoint, through an externalIP: EXT still short-circuits pods and the node to the
  // cluster-wide endpoints (upstream enters KUBE-EXT whenever the service has endpoints); outside traffic is dropped.
  {
    name: 'ETP Local externalIP without a local endpoint drops outside traffic',
    packet: fromOutside('192.168.200.15', 80), expect: DROP, tracerOnly: VIP_BOUNCES,
  },
  {
    name: 'ETP Local externalIP without a local endpoint still serves pods, source kept',
    packet: fromPod('192.168.200.15', 80), expect: reach({ '10.244.2.3:8080': false }), tracerOnly: ON_NODE2,
  },
  {
    name: 'ETP Local externalIP without a local endpoint still serves the node, masqueraded',
    packet: fromNode('192.168.200.15', 80), expect: reach({ '10.244.2.3:8080': true }), tracerOnly: ON_NODE2,
  },
  // internalTrafficPolicy Local
  { name: 'ITP Local ClusterIP reaches local endpoints only', packet: fromPod('10.96.0.16', 80), expect: reach({ '10.244.1.3:8080': false }) },
  {
    name: 'ITP Local does not narrow external traffic: NodePort from outside reaches every endpoint',
    packet: fromOutside(T.nodeIP, 30086), expect: reach({ '10.244.1.3:8080': true, '10.244.2.4:8080': true }), tracerOnly: ON_NODE2,
  },
  { name: 'ITP Local ClusterIP without a local endpoint drops', packet: fromPod('10.96.0.17', 80), expect: DROP },
  // No endpoints
  { name: 'ClusterIP without endpoints rejects pods at once', packet: fromPod('10.96.0.18', 80), expect: REJECT },
  { name: 'ClusterIP without endpoints rejects the node at once', packet: fromNode('10.96.0.18', 80), expect: REJECT },
  { name: 'NodePort without endpoints rejects outside clients at once', packet: fromOutside(T.nodeIP, 30088), expect: REJECT },
  {
    name: 'LoadBalancer IP with source ranges but no endpoints rejects an allowed client at once',
    packet: fromOutside('192.168.200.23', 80), expect: REJECT, tracerOnly: VIP_BOUNCES,
  },
  {
    name: 'LoadBalancer IP with source ranges but no endpoints rejects an allowed pod at once',
    packet: fromPod('192.168.200.23', 80), expect: REJECT,
  },
  {
    name: 'LoadBalancer IP with source ranges but no endpoints rejects a pod outside the ranges at once',
    // upstream's nftables mode checks the ranges before it looks for endpoints: the pod is dropped
    packet: tcp('pod', '10.244.1.2', '192.168.200.23', 80), expect: REJECT, nftables: DROP,
  },
  { name: 'NodePort of a LoadBalancer without endpoints rejects at once', packet: fromOutside(T.nodeIP, 30093), expect: REJECT },
  // Session affinity, terminating endpoints
  { name: 'an affinity service can reach every endpoint', packet: fromPod('10.96.0.19', 80), expect: pods(false) },
  {
    name: 'with no ready endpoint, serving terminating ones take traffic',
    packet: fromPod('10.96.0.20', 80), expect: reach({ '10.244.1.2:8080': false, '10.244.1.3:8080': false }),
  },
  { name: 'a ready endpoint wins over a terminating one', packet: fromPod('10.96.0.21', 80), expect: reach({ '10.244.1.2:8080': false }) },
  // IPv6 (dual-stack service)
  { name: 'IPv6 ClusterIP from a pod reaches every endpoint', packet: tcp('pod', T.clientPod6, 'fd00:96::10', 80), expect: pods6(false) },
  { name: 'IPv6 ClusterIP from outside is masqueraded', packet: tcp('external', T.outsideClient6, 'fd00:96::10', 80), expect: pods6(true) },
  {
    name: 'IPv6 hairpin is masqueraded towards itself', packet: tcp('pod', 'fd00:244:1::3', 'fd00:96::10', 80),
    expect: pods6([false, true, false]),
  },
  { name: 'IPv6 UDP ClusterIP', packet: tcp('pod', T.clientPod6, 'fd00:96::10', 53, 'UDP'), expect: pods6(false) },
  { name: 'an IPv4-only service has no IPv6 address', packet: tcp('pod', T.clientPod6, 'fd00:96::11', 80), expect: UNTOUCHED },
];
