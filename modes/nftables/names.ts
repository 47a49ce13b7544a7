// Names of kproxy's nftables objects. Everything lives in one table per family, `kproxy`, so nothing here can
// collide with another program's objects; per-service objects carry a hash of the service port's identity (stable
// across restarts) and its readable name.
import { hash } from 'node:crypto';
import type { ServicePortPlan } from '../../src/model/types.ts';

export const TABLE = 'kproxy';
export const TABLE_COMMENT = 'kproxy: Kubernetes service proxy (nftables mode); managed, do not edit';

/** Chains that exist whatever the services are. */
export const CHAINS = {
  prerouting: 'nat-prerouting',
  output: 'nat-output',
  postrouting: 'nat-postrouting',
  /** The dispatch: every new connection's destination looked up among the service frontends. */
  services: 'services',
  /** External IP frontends whose outside and in-cluster clients go different ways (externalTrafficPolicy Local). */
  externalSplit: 'external-split',
  nodePortSplit: 'nodeport-split',
  masquerading: 'masquerading',
  noEndpoints: 'no-endpoints',
} as const;

/** Sets and maps that exist whatever the services are. */
export const SETS = {
  clusterCidrs: 'cluster-cidrs',
  nodePortAddresses: 'nodeport-addresses',
  hairpin: 'hairpin',
  firewallIPs: 'firewall-ips',
  firewallAllow: 'firewall-allow',
  serviceIPs: 'service-ips',
  serviceNodePorts: 'service-nodeports',
  externalFromCluster: 'external-from-cluster',
  externalFromOutside: 'external-from-outside',
  nodePortsFromCluster: 'nodeports-from-cluster',
  nodePortsFromOutside: 'nodeports-from-outside',
} as const;

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

/** 8 base32 characters (40 bits) of a SHA-256 of `text`. */
function shortHash(text: string): string {
  const digest = hash('sha256', text, 'buffer');
  let bits = 0n;
  for (let i = 0; i < 5; i++) bits = (bits << 8n) | BigInt(digest[i] ?? 0);
  let out = '';
  for (let i = 7; i >= 0; i--) out += BASE32[Number((bits >> BigInt(i * 5)) & 31n)];
  return out;
}

/** "ns/name/tcp/http" (the port number when the port has no name): readable, and unique per family. */
export function servicePortLabel(plan: ServicePortPlan): string {
  return `${plan.namespace}/${plan.name}/${plan.protocol.toLowerCase()}/${plan.portName || plan.port}`;
}

/**
 * The prefixes of a service port's own objects (only session-affinity services have any): `short` for the objects
 * its rules name over and over (the pick chain and the affinity set: every byte is repeated per endpoint rule),
 * `long` (with the service's name) for the chains the dispatch maps point at, which `nft list` readers follow.
 */
export function serviceObjectNames(plan: ServicePortPlan): { readonly short: string; readonly long: string } {
  const short = `svc-${shortHash(`${plan.key}/${plan.protocol}`)}`;
  return { short, long: `${short}-${servicePortLabel(plan)}` };
}

/** A 32-bit number standing for an endpoint of a service in its affinity set (see compile.ts). */
export function endpointTag(plan: ServicePortPlan, endpoint: string): number {
  return hash('sha256', `${plan.key}/${plan.protocol}/${endpoint}`, 'buffer').readUInt32BE(0);
}
