// Hand-built desired states for tests that drive a mode without the compute layer.
import { decideRoutes } from '../../src/compute/routes.ts';
import type { DesiredState, Endpoint, FamilyPlan, IPFamily, ServicePortPlan } from '../../src/model/types.ts';

export function endpoint(ip: string, port: number, extra: Partial<Endpoint> = {}): Endpoint {
  return { ip, port, local: true, ready: true, serving: true, terminating: false, nodeName: 'node1', ...extra };
}

/** Facts of a plan without its routes: what tests write by hand. */
export type PlanFacts = Omit<ServicePortPlan, 'routes'>;

/**
 * A ServicePortPlan with ClusterIP semantics; every endpoint given is reachable from inside the cluster. Its routes
 * are decided from the other fields by compute's own rule (masqueradeAll off), unless given.
 */
export function servicePort(fields: Partial<ServicePortPlan> & Pick<ServicePortPlan, 'name' | 'clusterIP' | 'port'>): ServicePortPlan {
  const namespace = fields.namespace ?? 'default';
  const portName = fields.portName ?? '';
  const endpoints = fields.clusterEndpoints ?? [];
  const facts: PlanFacts = {
    key: `${namespace}/${fields.name}:${portName}`,
    namespace,
    portName,
    protocol: 'TCP',
    family: fields.clusterIP.includes(':') ? 'IPv6' : 'IPv4',
    frontends: [{ kind: 'ClusterIP', ip: fields.clusterIP, port: fields.port }],
    externalPolicyLocal: false,
    internalPolicyLocal: false,
    sourceRanges: [],
    clusterEndpoints: endpoints,
    localEndpoints: endpoints.filter((e) => e.local),
    allEndpoints: endpoints,
    hasEndpoints: endpoints.length > 0,
    ...fields,
  };
  return fields.routes ? { ...facts, routes: fields.routes } : withRoutes(facts);
}

/** Hand-written facts → a plan, its routes decided by compute's own rule. */
export function withRoutes(facts: PlanFacts, masqueradeAll = false): ServicePortPlan {
  return { ...facts, routes: decideRoutes(facts, masqueradeAll) };
}

/** `plan` with some facts changed and its routes decided again (a spread alone would keep the old routes). */
export function replan(plan: ServicePortPlan, changes: Partial<PlanFacts>, masqueradeAll = false): ServicePortPlan {
  return withRoutes({ ...plan, ...changes }, masqueradeAll);
}

function familyPlan(family: IPFamily, services: readonly ServicePortPlan[]): FamilyPlan {
  return {
    family,
    services: services.filter((s) => s.family === family).sort((a, b) => a.key.localeCompare(b.key)),
    nodePortAddresses: 'all',
    localDetector: { kind: 'ClusterCIDR', cidrs: [family === 'IPv4' ? '10.244.0.0/16' : 'fd00:244::/32'] },
    nodeIPs: [],
  };
}

export function desiredState(services: readonly ServicePortPlan[], node = 'node1'): DesiredState {
  return {
    node: { name: node, shuttingDown: false },
    settings: { masqueradeAll: false, masqueradeBit: 14, conntrackTcpLiberal: false },
    families: { IPv4: familyPlan('IPv4', services), IPv6: familyPlan('IPv6', services) },
  };
}
