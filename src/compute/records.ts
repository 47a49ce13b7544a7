// The internal, validated form of the Kubernetes objects the store keeps: only what the semantics need,
// so memory stays bounded at 10k services × many endpoints. Produced by parse-*.ts, consumed by the planners.
import type { IPFamily, Protocol } from '../model/types.ts';

export type ServiceType = 'ClusterIP' | 'NodePort' | 'LoadBalancer';

export interface ServicePortRecord {
  /** "" for the unnamed single port. */
  readonly name: string;
  readonly protocol: Protocol;
  readonly port: number;
  readonly nodePort?: number;
}

export interface ServiceRecord {
  readonly namespace: string;
  readonly name: string;
  readonly type: ServiceType;
  /** One cluster IP per family, normalised, in spec order (the first is the primary family). */
  readonly clusterIPs: ReadonlyArray<{ readonly family: IPFamily; readonly ip: string }>;
  readonly ports: readonly ServicePortRecord[];
  /** Normalised externalIPs (any family). */
  readonly externalIPs: readonly string[];
  /** Normalised status.loadBalancer.ingress[].ip, without ipMode: Proxy entries. */
  readonly loadBalancerIPs: readonly string[];
  /** Canonical CIDR texts (any family), deduplicated. */
  readonly sourceRanges: readonly string[];
  /** Set for sessionAffinity: ClientIP. */
  readonly affinityTimeoutSeconds?: number;
  /** externalTrafficPolicy: Local as written (whether it applies is decided by the planner). */
  readonly externalTrafficPolicyLocal: boolean;
  readonly internalTrafficPolicyLocal: boolean;
  readonly healthCheckNodePort?: number;
}

export interface EndpointRecord {
  /** addresses[0], normalised (kube-proxy only ever uses the first address). */
  readonly ip: string;
  readonly nodeName?: string;
  readonly zone?: string;
  readonly ready: boolean;
  readonly serving: boolean;
  readonly terminating: boolean;
  readonly zoneHints?: readonly string[];
  readonly nodeHints?: readonly string[];
}

export interface SlicePortRecord {
  readonly name: string;
  readonly protocol: Protocol;
  readonly port: number;
}

export interface SliceRecord {
  readonly namespace: string;
  readonly name: string;
  /** Value of the kubernetes.io/service-name label. */
  readonly serviceName: string;
  readonly family: IPFamily;
  readonly ports: readonly SlicePortRecord[];
  readonly endpoints: readonly EndpointRecord[];
}

export interface NodeRecord {
  readonly name: string;
  readonly zone?: string;
  readonly shuttingDown: boolean;
  /** Per family: InternalIPs first, then ExternalIPs, normalised, deduplicated. */
  readonly addresses: { readonly IPv4: readonly string[]; readonly IPv6: readonly string[] };
  /** Per family: the first InternalIP (else the first ExternalIP). */
  readonly primary: { readonly IPv4?: string; readonly IPv6?: string };
  /** spec.podCIDRs (else spec.podCIDR), canonical: the local-traffic detector of detectLocalMode NodeCIDR. */
  readonly podCIDRs: readonly string[];
}
