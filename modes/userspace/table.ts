// compile (pure): DesiredState → the listener table of the relay. One listener per (protocol, address, port)
// on which some service frontend must answer, with everything the relay needs to route a client there.
import type { DesiredState, Endpoint, FamilyPlan, FrontendKind, IPFamily, Route, ServicePortPlan } from '../../src/model/types.ts';
import { cidrContains, ipFamily, isLoopback, joinHostPort, normalizeIP, parseCidr } from '../../src/util/ip.ts';

/** Node's sockets relay TCP and UDP; SCTP is left to the kernel modes. */
export type RelayProtocol = 'TCP' | 'UDP';

export interface RelayEndpoint {
  /** "ip:port" ("[ip]:port" for IPv6): the identity used by counters, affinity and drain. */
  readonly id: string;
  readonly ip: string;
  readonly port: number;
}

export interface ListenerRoute {
  readonly serviceKey: string;
  readonly frontend: FrontendKind;
  /** Endpoints for clients on this node or in the cluster. Empty: refuse. */
  readonly internal: readonly RelayEndpoint[];
  /** Endpoints for clients from outside (externalTrafficPolicy: Local applied on external frontends). */
  readonly external: readonly RelayEndpoint[];
  /** When `internal` is empty: refuse (no endpoints at all) or drop (there are some, none for this node: ITP Local). */
  readonly internalEmpty: 'reject' | 'drop';
  /** When a client from outside finds `external` empty: refuse (no endpoints at all) or drop (none local). */
  readonly externalEmpty: 'reject' | 'drop';
  /** ClientIP session affinity, in milliseconds. */
  readonly affinityTimeoutMs?: number;
  /** loadBalancerSourceRanges (LoadBalancer frontends only). Empty: anyone. */
  readonly sourceRanges: readonly string[];
}

export interface Listener {
  /** "TCP 10.96.0.10:53": unique in a table, and stable across syncs. */
  readonly key: string;
  readonly protocol: RelayProtocol;
  readonly family: IPFamily;
  readonly ip: string;
  readonly port: number;
  readonly route: ListenerRoute;
}

export interface ListenerConflict {
  readonly key: string;
  /** The service that keeps the listener (first by key) and the one that was left out. */
  readonly kept: string;
  readonly dropped: string;
}

export interface ListenerTable {
  /** Sorted by key. */
  readonly listeners: readonly Listener[];
  /** CIDRs whose clients count as cluster-internal (the local-traffic detector of both families). */
  readonly internalCidrs: readonly string[];
  readonly conflicts: readonly ListenerConflict[];
  /** Service ports this mode cannot serve (SCTP), by key. */
  readonly unsupported: readonly string[];
}

export interface CompileOptions {
  /**
   * This node's own addresses, used for NodePorts when nodePortAddresses is 'all' or a CIDR list. Pure callers
   * (plan, trace) leave it out and get the Node object's addresses; the relay passes the interfaces' addresses.
   */
  readonly localAddresses?: readonly string[];
}

export function listenerKey(protocol: RelayProtocol, ip: string, port: number): string {
  return `${protocol} ${joinHostPort(ip, port)}`;
}

/** The addresses NodePorts of one family listen on. Loopback only when the address list names it. */
export function nodePortAddresses(plan: FamilyPlan, options: CompileOptions): string[] {
  const candidates = (options.localAddresses ?? plan.nodeIPs)
    .map((ip) => normalizeIP(ip))
    .filter((ip): ip is string => ip !== undefined && ipFamily(ip) === plan.family);
  const out = new Set<string>();
  if (plan.nodePortAddresses === 'all') {
    for (const ip of candidates) if (!isLoopback(ip)) out.add(ip);
  } else {
    for (const entry of plan.nodePortAddresses) {
      const cidr = parseCidr(entry);
      if (!cidr || cidr.family !== plan.family) continue;
      const host = cidr.prefix === (cidr.family === 'IPv4' ? 32 : 128);
      if (host) out.add(cidr.network);
      else for (const ip of candidates) if (cidrContains(cidr, ip)) out.add(ip);
    }
  }
  return [...out].sort();
}

const toRelay = (endpoints: readonly Endpoint[]): RelayEndpoint[] =>
  endpoints.map((e) => ({ id: joinHostPort(e.ip, e.port), ip: e.ip, port: e.port }));

/** The listener routes of a service port, read from the routes compute decided (no policy is decided here). */
function routesOf(service: ServicePortPlan): { internalRoute: ListenerRoute; externalRoute?: ListenerRoute } {
  const { clusterIP, external } = service.routes;
  // One relay list per route: under ETP Cluster both external classes are one route, and render shows "(same)".
  const relayed = new Map<Route, RelayEndpoint[]>();
  const relay = (route: Route): RelayEndpoint[] => {
    let list = relayed.get(route);
    if (!list) relayed.set(route, list = toRelay(route.endpoints));
    return list;
  };
  const affinity = (route: Route) => (route.affinity ? { affinityTimeoutMs: route.affinity.timeoutSeconds * 1000 } : {});
  const internal = relay(clusterIP);
  // The ClusterIP serves every client with its one route.
  const internalRoute: ListenerRoute = {
    serviceKey: service.key, frontend: 'ClusterIP', internal, external: internal,
    internalEmpty: clusterIP.whenEmpty, externalEmpty: clusterIP.whenEmpty, ...affinity(clusterIP), sourceRanges: [],
  };
  if (!external) return { internalRoute };
  // External frontends: in-cluster clients take the route of pods and the node, the others the outside route.
  const externalRoute: ListenerRoute = {
    serviceKey: service.key, frontend: 'NodePort',
    internal: relay(external.fromCluster), external: relay(external.fromOutside),
    internalEmpty: external.fromCluster.whenEmpty, externalEmpty: external.fromOutside.whenEmpty,
    ...affinity(external.fromOutside), sourceRanges: [],
  };
  return { internalRoute, externalRoute };
}

export function compile(state: DesiredState, options: CompileOptions = {}): ListenerTable {
  const byKey = new Map<string, Listener>();
  const conflicts: ListenerConflict[] = [];
  const unsupported: string[] = [];
  const internalCidrs: string[] = [];
  for (const plan of [state.families.IPv4, state.families.IPv6]) {
    if (plan.localDetector.kind === 'ClusterCIDR') internalCidrs.push(...plan.localDetector.cidrs);
    const nodePortIPs = nodePortAddresses(plan, options);
    for (const service of plan.services) {
      if (service.protocol === 'SCTP') {
        unsupported.push(`${service.key}/SCTP`);
        continue;
      }
      const protocol = service.protocol;
      const { internalRoute, externalRoute } = routesOf(service);
      const add = (ip: string, port: number, route: ListenerRoute): void => {
        const canonical = normalizeIP(ip);
        if (!canonical || ipFamily(canonical) !== plan.family) return;
        const key = listenerKey(protocol, canonical, port);
        const existing = byKey.get(key);
        if (existing) {
          if (existing.route.serviceKey !== route.serviceKey) {
            conflicts.push({ key, kept: existing.route.serviceKey, dropped: route.serviceKey });
          }
          return;
        }
        byKey.set(key, { key, protocol, family: plan.family, ip: canonical, port, route });
      };
      for (const frontend of service.frontends) {
        if (frontend.kind === 'ClusterIP') {
          add(frontend.ip, frontend.port, internalRoute);
          continue;
        }
        if (!externalRoute) continue; // compute gives every external frontend a route
        switch (frontend.kind) {
          case 'ExternalIP':
            add(frontend.ip, frontend.port, { ...externalRoute, frontend: 'ExternalIP' });
            break;
          case 'LoadBalancer':
            add(frontend.ip, frontend.port, {
              ...externalRoute,
              frontend: 'LoadBalancer',
              sourceRanges: service.sourceRanges,
            });
            break;
          case 'NodePort':
            for (const ip of nodePortIPs) add(ip, frontend.port, externalRoute);
            break;
        }
      }
    }
  }
  const listeners = [...byKey.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return { listeners, internalCidrs, conflicts, unsupported };
}
