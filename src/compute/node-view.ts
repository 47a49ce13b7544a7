// This node as the model sees it, and the per-family node settings (NodePort addresses, local-traffic detector).
import type { FamilyPlan, IPFamily, LocalTrafficDetector, NodeView } from '../model/types.ts';
import { cidrContains, parseCidr, type Cidr } from '../util/ip.ts';
import type { ComputeOptions } from './options.ts';
import type { NodeRecord } from './records.ts';

export function nodeView(options: ComputeOptions, node: NodeRecord | undefined): NodeView {
  return {
    name: options.nodeName,
    ...(node?.zone !== undefined ? { zone: node.zone } : {}),
    shuttingDown: node?.shuttingDown ?? false,
  };
}

const cidrsOf = (texts: readonly string[], family: IPFamily): Cidr[] =>
  texts.map((text) => parseCidr(text)).filter((cidr): cidr is Cidr => cidr !== undefined && cidr.family === family);

/**
 * `--nodeport-addresses` for one family: empty list → 'all'; 'primary' → the Node's primary address of the
 * family; CIDRs → the Node's addresses inside them. As upstream: no CIDR of this family, or a /0, → 'all'.
 * Without a Node object, 'primary' and CIDRs match nothing (NodePorts wait for the Node to be known).
 */
export function nodePortAddresses(options: ComputeOptions, node: NodeRecord | undefined, family: IPFamily): readonly string[] | 'all' {
  const entries = options.nodePortAddresses;
  if (entries.length === 0) return 'all';
  const wantsPrimary = entries.some((entry) => entry.trim() === 'primary');
  const cidrs = cidrsOf(entries.filter((entry) => entry.trim() !== 'primary'), family);
  if (!wantsPrimary && cidrs.length === 0) return 'all';
  if (cidrs.some((cidr) => cidr.prefix === 0)) return 'all';
  const addresses = node?.addresses[family] ?? [];
  const primary = node?.primary[family];
  const chosen = new Set<string>();
  if (wantsPrimary && primary !== undefined) chosen.add(primary);
  for (const ip of addresses) if (cidrs.some((cidr) => cidrContains(cidr, ip))) chosen.add(ip);
  return [...chosen];
}

/**
 * Detect-local by CIDR: `--cluster-cidr` of this family, or with detectLocalMode NodeCIDR the Node's own pod
 * CIDRs (none until the Node is known); no CIDR → no detection.
 */
export function localDetector(options: ComputeOptions, family: IPFamily, node?: NodeRecord): LocalTrafficDetector {
  const source = options.detectLocal === 'NodeCIDR' ? node?.podCIDRs ?? [] : options.clusterCIDRs;
  const cidrs = [...new Set(cidrsOf(source, family).map((cidr) => cidr.text))];
  return cidrs.length === 0 ? { kind: 'None' } : { kind: 'ClusterCIDR', cidrs };
}

/** FamilyPlan without its services (everything that depends only on the options and the Node). */
export function familyFrame(options: ComputeOptions, node: NodeRecord | undefined, family: IPFamily): Omit<FamilyPlan, 'services'> {
  return {
    family,
    nodePortAddresses: nodePortAddresses(options, node, family),
    localDetector: localDetector(options, family, node),
    nodeIPs: node?.addresses[family] ?? [],
  };
}
