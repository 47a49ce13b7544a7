// One Service (+ its EndpointSlices) → the ServicePortPlans of each family. Pure.
import type { Endpoint, Frontend, IPFamily, ServicePortPlan } from '../model/types.ts';
import { ipFamily, parseCidr } from '../util/ip.ts';
import { categorizeEndpoints } from './categorize.ts';
import { collectEndpoints } from './endpoints.ts';
import { decideRoutes } from './routes.ts';
import type { ServicePortRecord, ServiceRecord, SliceRecord } from './records.ts';

/** What a service's plans depend on besides the Service and its slices. */
export interface PlanContext {
  readonly nodeName: string;
  /** This node's zone (topology); undefined when the Node is unknown or unlabelled. */
  readonly zone: string | undefined;
  /** --masquerade-all: every ClusterIP connection is masqueraded. */
  readonly masqueradeAll: boolean;
}

export interface ServicePlans {
  readonly IPv4: readonly ServicePortPlan[];
  readonly IPv6: readonly ServicePortPlan[];
}

export const NO_PLANS: ServicePlans = { IPv4: [], IPv6: [] };

/** NodePort, LoadBalancer or externalIPs: reachable from outside the cluster (externalTrafficPolicy applies). */
export function externallyAccessible(service: ServiceRecord): boolean {
  return service.type === 'NodePort' || service.type === 'LoadBalancer' || service.externalIPs.length > 0;
}

export const planKey = (namespace: string, name: string, portName: string): string => `${namespace}/${name}:${portName}`;

function frontendsFor(service: ServiceRecord, port: ServicePortRecord, family: IPFamily, clusterIP: string): Frontend[] {
  const frontends: Frontend[] = [{ kind: 'ClusterIP', ip: clusterIP, port: port.port }];
  for (const ip of service.externalIPs) if (ipFamily(ip) === family) frontends.push({ kind: 'ExternalIP', ip, port: port.port });
  for (const ip of service.loadBalancerIPs) if (ipFamily(ip) === family) frontends.push({ kind: 'LoadBalancer', ip, port: port.port });
  if (port.nodePort !== undefined) frontends.push({ kind: 'NodePort', port: port.nodePort });
  return frontends;
}

function sourceRangesFor(service: ServiceRecord, family: IPFamily): string[] {
  // Source ranges restrict load-balancer traffic only; other types ignore the field, as upstream does.
  if (service.type !== 'LoadBalancer') return [];
  const ranges = service.sourceRanges.filter((text) => parseCidr(text)?.family === family);
  // A /0 of the family allows everyone: the same as no restriction (upstream drops the family's ranges).
  return ranges.some((text) => parseCidr(text)?.prefix === 0) ? [] : ranges;
}

const sameEndpoints = (a: readonly Endpoint[], b: readonly Endpoint[]): boolean =>
  a.length === b.length && a.every((endpoint, i) => endpoint === b[i]);

/**
 * The plans of one Service: one per (port, family of its cluster IPs), sorted by port name.
 * `slices` are the Service's EndpointSlices in a stable order (by slice name).
 */
export function planService(service: ServiceRecord, slices: readonly SliceRecord[], context: PlanContext): ServicePlans {
  const external = externallyAccessible(service);
  const externalPolicyLocal = service.externalTrafficPolicyLocal && external;
  const internalPolicyLocal = service.internalTrafficPolicyLocal;
  // Cluster-wide endpoints serve internal traffic unless ITP is Local, and every external frontend: outside traffic
  // under ETP Cluster, pod/node traffic short-circuited under ETP Local (upstream UsesClusterEndpoints).
  const usesCluster = !internalPolicyLocal || external;
  const usesLocal = internalPolicyLocal || externalPolicyLocal;
  const healthCheckNodePort = service.type === 'LoadBalancer' && externalPolicyLocal ? service.healthCheckNodePort : undefined;
  const ports = [...service.ports].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const result: { IPv4: ServicePortPlan[]; IPv6: ServicePortPlan[] } = { IPv4: [], IPv6: [] };
  for (const { family, ip: clusterIP } of service.clusterIPs) {
    const sourceRanges = sourceRangesFor(service, family);
    for (const port of ports) {
      const candidates = collectEndpoints(slices, { family, portName: port.name, protocol: port.protocol, nodeName: context.nodeName });
      const categorized = categorizeEndpoints({
        candidates, usesCluster, usesLocal,
        topology: { nodeName: context.nodeName, zone: context.zone },
      });
      const all = candidates.map((c) => c.endpoint);
      // The usual case, every endpoint usable: one array serves both (memory at 10k+ services).
      const cluster = sameEndpoints(categorized.cluster, all) ? all : categorized.cluster;
      const facts = {
        key: planKey(service.namespace, service.name, port.name),
        namespace: service.namespace, name: service.name, portName: port.name, protocol: port.protocol, family,
        port: port.port, clusterIP,
        frontends: frontendsFor(service, port, family, clusterIP),
        ...(port.nodePort !== undefined ? { nodePort: port.nodePort } : {}),
        ...(service.affinityTimeoutSeconds !== undefined ? { affinity: { timeoutSeconds: service.affinityTimeoutSeconds } } : {}),
        externalPolicyLocal, internalPolicyLocal,
        ...(healthCheckNodePort !== undefined ? { healthCheckNodePort } : {}),
        sourceRanges,
        // The model's clusterEndpoints is what in-cluster traffic reaches, so ITP Local narrows it to this node.
        clusterEndpoints: internalPolicyLocal ? categorized.local : cluster,
        // ITP Local narrows clusterEndpoints; external frontends still need the cluster-wide set: for outside traffic
        // under ETP Cluster, and for pod/node traffic that ETP Local short-circuits (upstream's KUBE-SVC chain).
        ...(internalPolicyLocal && external ? { externalClusterEndpoints: cluster } : {}),
        localEndpoints: categorized.local,
        allEndpoints: all,
        hasEndpoints: categorized.hasAny,
      };
      result[family].push({ ...facts, routes: decideRoutes(facts, context.masqueradeAll) });
    }
  }
  return result;
}
