// Traffic policy, decided once: from what compute knows of a service port (its frontends, its traffic policies and
// its categorized endpoint sets) → one Route per class of traffic. Every mode and conntrack cleanup read these.
// Pure; exported for hand-built plans in tests too.
import type { Route, ServicePortPlan, ServiceRoutes } from '../model/types.ts';

/** The facts the routes are decided from (everything of a plan but its routes). */
export type RouteFacts = Pick<ServicePortPlan,
  'frontends' | 'affinity' | 'externalPolicyLocal' | 'clusterEndpoints' | 'externalClusterEndpoints' | 'localEndpoints' | 'hasEndpoints'>;

/**
 * - ClusterIP: the cluster set (internalTrafficPolicy already applied); masqueraded when the source is off-cluster,
 *   or always with masqueradeAll.
 * - External frontends from outside: the local set under externalTrafficPolicy Local (source kept), else the
 *   cluster-wide set (masqueraded: the reply must come back through this node).
 * - External frontends from pods and the node: the cluster-wide set; under ETP Local only the node's own traffic is
 *   masqueraded (pods behave as if they went out to a load balancer and came back).
 * An empty set rejects when the service has no usable endpoint at all, and drops when policy alone leaves none here.
 * Routes that use the same set share its array (modes build one balancing target per distinct array).
 */
export function decideRoutes(facts: RouteFacts, masqueradeAll: boolean): ServiceRoutes {
  const whenEmpty = facts.hasEndpoints ? 'drop' : 'reject';
  const affinity = facts.affinity;
  const route = (endpoints: Route['endpoints'], masquerade: Route['masquerade']): Route =>
    (affinity ? { endpoints, whenEmpty, masquerade, affinity } : { endpoints, whenEmpty, masquerade });
  const clusterIP = route(facts.clusterEndpoints, masqueradeAll ? 'always' : 'off-cluster');
  if (!facts.frontends.some((f) => f.kind !== 'ClusterIP')) return { clusterIP };
  // ITP Local narrows only the ClusterIP's set; external frontends keep the cluster-wide one.
  const clusterWide = facts.externalClusterEndpoints ?? facts.clusterEndpoints;
  if (!facts.externalPolicyLocal) {
    const both = route(clusterWide, 'always');
    return { clusterIP, external: { fromOutside: both, fromCluster: both } };
  }
  return {
    clusterIP,
    external: { fromOutside: route(facts.localEndpoints, 'never'), fromCluster: route(clusterWide, 'node-originated') },
  };
}
