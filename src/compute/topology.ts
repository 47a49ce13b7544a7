// Topology-aware routing (kube-proxy's hints logic): which endpoints cluster-wide traffic may use on this node.
//
// As upstream (pkg/proxy/topology.go), the decision rests on the EndpointSlice hints alone, not on the Service's
// trafficDistribution or topology-mode annotation: the EndpointSlice controller writes hints only when the Service
// asks for them, and kube-proxy honours whatever hints are there. Node hints are used when EVERY ready endpoint
// carries one and at least one names this node; otherwise zone hints, under the same all-or-nothing rule for this
// node's zone; otherwise every endpoint is used.

export interface HintedEndpoint {
  readonly ready: boolean;
  readonly zoneHints?: readonly string[];
  readonly nodeHints?: readonly string[];
}

/** 'node' / 'zone': filter by that hint; undefined: no topology filtering. */
export type TopologyFilter = 'node' | 'zone' | undefined;

export interface TopologyInput {
  readonly nodeName: string;
  readonly zone: string | undefined;
}

function hintsQualify(endpoints: readonly HintedEndpoint[], pick: (e: HintedEndpoint) => readonly string[] | undefined, wanted: string): boolean {
  let anyForUs = false;
  for (const endpoint of endpoints) {
    if (!endpoint.ready) continue;
    const hints = pick(endpoint);
    if (hints === undefined || hints.length === 0) return false;
    if (hints.includes(wanted)) anyForUs = true;
  }
  return anyForUs;
}

/** Decide the topology filter for one service port's endpoints. */
export function topologyFilter(endpoints: readonly HintedEndpoint[], input: TopologyInput): TopologyFilter {
  if (!endpoints.some((e) => e.ready)) return undefined;
  if (hintsQualify(endpoints, (e) => e.nodeHints, input.nodeName)) return 'node';
  if (input.zone !== undefined && input.zone !== '' && hintsQualify(endpoints, (e) => e.zoneHints, input.zone)) return 'zone';
  return undefined;
}

/** Whether an endpoint passes the chosen filter (no fallback here: that was decided by topologyFilter). */
export function passesTopology(endpoint: HintedEndpoint, filter: TopologyFilter, input: TopologyInput): boolean {
  if (filter === undefined) return true;
  if (filter === 'node') return endpoint.nodeHints?.includes(input.nodeName) === true;
  return input.zone !== undefined && endpoint.zoneHints?.includes(input.zone) === true;
}
