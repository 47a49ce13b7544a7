// Chain names: a fixed prefix (so kproxy can run beside kube-proxy's KUBE-* chains) and, per service port or
// endpoint, a hash of its identity, so names are stable across restarts and independent of ordering.
import { nameHash } from '../../kit/name-hash.ts';
import type { Protocol } from '../../src/model/types.ts';

export const CHAIN_PREFIX = 'KPROXY-';

/** iptables refuses chain names longer than this (XT_EXTENSION_MAXNAMELEN - 1). */
export const MAX_CHAIN_NAME_LENGTH = 28;

/** Chains that exist whatever the services are. */
export const TOP_CHAINS = {
  services: 'KPROXY-SERVICES',
  externalServices: 'KPROXY-EXTERNAL-SERVICES',
  nodePorts: 'KPROXY-NODEPORTS',
  postrouting: 'KPROXY-POSTROUTING',
  markMasq: 'KPROXY-MARK-MASQ',
  forward: 'KPROXY-FORWARD',
  firewall: 'KPROXY-FIREWALL',
  /** Only present with several cluster CIDRs in one family: marks traffic from none of them. */
  markOffCluster: 'KPROXY-MARK-OFFCLUSTER',
  /** Nothing jumps here: its rule being gone tells that something else flushed the table (kit/iptables/canary.ts). */
  canary: 'KPROXY-CANARY',
} as const;

export function isKproxyChain(name: string): boolean {
  return name.startsWith(CHAIN_PREFIX);
}

const HASH_LENGTH = 16;

export interface ServiceChainNames {
  /** Cluster endpoints (traffic from inside the cluster, and external traffic under policy Cluster). */
  readonly svc: string;
  /** Local endpoints only (external traffic under externalTrafficPolicy Local). */
  readonly svl: string;
  /** Cluster-wide endpoints for external traffic when internalTrafficPolicy Local narrowed SVC to this node. */
  readonly svx: string;
  /** External destinations (NodePort, externalIPs, LoadBalancer IPs). */
  readonly ext: string;
  /** loadBalancerSourceRanges filter. */
  readonly fw: string;
  /** Hairpin: marks for masquerade, then DNATs to the endpoint that is the source (see compile.ts). */
  readonly hairpin: string;
}

export function serviceChainNames(serviceKey: string, protocol: Protocol): ServiceChainNames {
  const hash = nameHash(`${serviceKey}/${protocol.toLowerCase()}`, HASH_LENGTH);
  return {
    svc: `${CHAIN_PREFIX}SVC-${hash}`,
    svl: `${CHAIN_PREFIX}SVL-${hash}`,
    svx: `${CHAIN_PREFIX}SVX-${hash}`,
    ext: `${CHAIN_PREFIX}EXT-${hash}`,
    fw: `${CHAIN_PREFIX}FW-${hash}`,
    hairpin: `${CHAIN_PREFIX}HP-${hash}`,
  };
}

/** One chain per endpoint of a service port; also the name of its session-affinity `recent` list. */
export function endpointChainName(serviceKey: string, protocol: Protocol, endpoint: string): string {
  return `${CHAIN_PREFIX}SEP-${nameHash(`${serviceKey}/${protocol.toLowerCase()}/${endpoint}`, HASH_LENGTH)}`;
}
