// The desired-state model: plain readonly data that every proxy mode consumes.
// No logic and no imports from the rest of the project live here.

export type Protocol = 'TCP' | 'UDP' | 'SCTP';
export type IPFamily = 'IPv4' | 'IPv6';
export type ProxyModeName = 'iptables' | 'nftables' | 'ipvs' | 'userspace';

/** One backend of a service port, after the EndpointSlice conditions were read. */
export interface Endpoint {
  readonly ip: string;
  readonly port: number;
  /** nodeName of the endpoint, when the slice says. */
  readonly nodeName?: string;
  readonly zone?: string;
  /** true when nodeName is this node. */
  readonly local: boolean;
  readonly ready: boolean;
  readonly serving: boolean;
  readonly terminating: boolean;
}

/** Where a service port can be reached. NodePorts listen on FamilyPlan.nodePortAddresses. */
export type Frontend =
  | { readonly kind: 'ClusterIP'; readonly ip: string; readonly port: number }
  | { readonly kind: 'ExternalIP'; readonly ip: string; readonly port: number }
  | { readonly kind: 'LoadBalancer'; readonly ip: string; readonly port: number }
  | { readonly kind: 'NodePort'; readonly port: number };

export type FrontendKind = Frontend['kind'];

export interface SessionAffinity {
  readonly timeoutSeconds: number;
}

/** What a route does with a new connection when its endpoint set is empty. */
export type EmptyAction =
  /** Refuse at once (ICMP unreachable / TCP reset): the service has no usable endpoint anywhere. */
  | 'reject'
  /** Drop silently: endpoints exist, but traffic policy leaves none for this traffic on this node. */
  | 'drop';

/** Whose source address the endpoint sees replaced by the node's (SNAT). */
export type MasqueradePolicy =
  /** Every packet (masqueradeAll on the ClusterIP; outside traffic under externalTrafficPolicy Cluster). */
  | 'always'
  /** No packet: the endpoint sees the client (outside traffic under externalTrafficPolicy Local). */
  | 'never'
  /**
   * Packets from sources the family's local-traffic detector does not count as the cluster's (the node's own
   * addresses among them); with no detector, none.
   */
  | 'off-cluster'
  /** Only what the node itself sends; pods keep their source (the externalTrafficPolicy Local short-circuit). */
  | 'node-originated';

/**
 * Where one class of traffic to a service port goes: decided once, in src/compute, and consumed by every mode
 * and by conntrack cleanup. Routes that use the same endpoint set by policy share one array, so a mode can build
 * one load-balancing target per distinct set (array identity, not content).
 */
export interface Route {
  /** Endpoints to balance over (ITP/ETP, topology and the terminating fallback already applied). */
  readonly endpoints: readonly Endpoint[];
  /** What to do when `endpoints` is empty. */
  readonly whenEmpty: EmptyAction;
  readonly masquerade: MasqueradePolicy;
  /** ClientIP session affinity; the same for every route of a service port. */
  readonly affinity?: SessionAffinity;
}

/** The routes of the traffic reaching external frontends (NodePort, LoadBalancer IPs, externalIPs). */
export interface ExternalRoutes {
  /** Clients outside the cluster. */
  readonly fromOutside: Route;
  /**
   * Pods and the node itself. The same object as `fromOutside` under externalTrafficPolicy Cluster; under Local a
   * route of its own: they are short-circuited to the cluster-wide set, as if they went out to a load balancer.
   */
  readonly fromCluster: Route;
}

/** Every traffic class of a service port (per family). */
export interface ServiceRoutes {
  /** To the ClusterIP: pods and the node (and anyone outside who can route to it). */
  readonly clusterIP: Route;
  /** Present when the port has external frontends in this family. */
  readonly external?: ExternalRoutes;
}

/** What this node must do for one port of one Service, in one IP family. */
export interface ServicePortPlan {
  /** Stable identity: "namespace/name:portName" (portName may be empty), as upstream names it. */
  readonly key: string;
  readonly namespace: string;
  readonly name: string;
  readonly portName: string;
  readonly protocol: Protocol;
  readonly family: IPFamily;
  /** The service port (spec.ports[].port). */
  readonly port: number;
  readonly clusterIP: string;
  readonly frontends: readonly Frontend[];
  readonly nodePort?: number;
  readonly affinity?: SessionAffinity;
  /** externalTrafficPolicy: Local (only meaningful when the service has external frontends). */
  readonly externalPolicyLocal: boolean;
  /** internalTrafficPolicy: Local */
  readonly internalPolicyLocal: boolean;
  readonly healthCheckNodePort?: number;
  /** loadBalancerSourceRanges of this family (CIDRs, normalised). Empty: no restriction. */
  readonly sourceRanges: readonly string[];
  /**
   * Endpoints that traffic originating inside the cluster (ClusterIP, and external frontends reached from
   * pods or the node) may reach: ITP, topology and terminating fallback already applied. Empty: nothing.
   */
  readonly clusterEndpoints: readonly Endpoint[];
  /**
   * Set only when internalTrafficPolicy is Local and the service has external frontends: the cluster-wide set,
   * which external frontends still use although in-cluster ClusterIP traffic may not — traffic from outside
   * under externalTrafficPolicy Cluster, and pod/node traffic that externalTrafficPolicy Local short-circuits.
   */
  readonly externalClusterEndpoints?: readonly Endpoint[];
  /** Endpoints that external traffic may reach when externalPolicyLocal (local ones only). */
  readonly localEndpoints: readonly Endpoint[];
  /** Every endpoint the service has in this family, whatever its condition (for conntrack cleanup and metrics). */
  readonly allEndpoints: readonly Endpoint[];
  /** true when the service has some usable endpoint anywhere (ready, or serving-terminating as fallback). */
  readonly hasEndpoints: boolean;
  /**
   * The traffic policy, decided: which endpoints each class of traffic reaches, what happens when there are none,
   * whether its source is masqueraded. Modes and conntrack cleanup read this, never the fields above.
   */
  readonly routes: ServiceRoutes;
}

/** How traffic from the local cluster is told apart from off-cluster traffic (kube-proxy's detect-local). */
export type LocalTrafficDetector =
  | { readonly kind: 'ClusterCIDR'; readonly cidrs: readonly string[] }
  | { readonly kind: 'None' };

export interface FamilyPlan {
  readonly family: IPFamily;
  /** Sorted by key. */
  readonly services: readonly ServicePortPlan[];
  /** Addresses on which NodePorts are served; 'all' means every local address except loopback. */
  readonly nodePortAddresses: readonly string[] | 'all';
  readonly localDetector: LocalTrafficDetector;
  /** This node's addresses in this family (from the Node object's status, else empty). */
  readonly nodeIPs: readonly string[];
}

export interface ProxySettings {
  readonly masqueradeAll: boolean;
  /** Bit index (0..31) of the fwmark used to mark packets for masquerade. Default 14 (0x4000). */
  readonly masqueradeBit: number;
  /**
   * The node's conntrack is liberal with TCP (nf_conntrack_tcp_be_liberal=1: conntrack.tcpBeLiberal, or the node's
   * own setting): out-of-window packets are not INVALID, so kube-proxy's drop of INVALID packets is left out.
   */
  readonly conntrackTcpLiberal: boolean;
}

export interface NodeView {
  readonly name: string;
  readonly zone?: string;
  /** true while the Node has a deletionTimestamp or the ToBeDeletedByClusterAutoscaler taint. */
  readonly shuttingDown: boolean;
}

export interface DesiredState {
  readonly node: NodeView;
  readonly settings: ProxySettings;
  readonly families: { readonly IPv4: FamilyPlan; readonly IPv6: FamilyPlan };
}
