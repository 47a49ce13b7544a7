// This node as the model sees it, and the per-family node settings (NodePort addresses, local-traffic detector).
import type { FamilyPlan, IPFamily, LocalTrafficDetector, NodeView } from '../model/types.ts';
import { cidrContains, ipFamily, parseCidr, type Cidr } from '../util/ip.ts';
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
 * `--nodeport-addresses` for one family: empty list → 'all'; 'primary' → the node's primary address of the
 * family (--bind-address, else the Node's); CIDRs → the Node's addresses inside them. As upstream: no CIDR of this family, or a /0, → 'all'.
 * Without a Node object, CIDRs match nothing and 'primary' only --bind-address (NodePorts wait for the Node).
 */
export function nodePortAddresses(options: ComputeOptions, node: NodeRecord | undefined, family: IPFamily): readonly string[] | 'all' {
  const entries = options.nodePortAddresses;
  if (entries.length === 0) return 'all';
  const wantsPrimary = entries.some((entry) => entry.trim() === 'primary');
  const cidrs = cidrsOf(entries.filter((entry) => entry.trim() !== 'primary'), family);
  if (!wantsPrimary && cidrs.length === 0) return 'all';
  if (cidrs.some((cidr) => cidr.prefix === 0)) return 'all';
  const addresses = nodeIPs(options, node, family);
  const primary = primaryIP(options, node, family);
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

/** The node's primary address of `family`: --bind-address when it is of this family, else the Node's. */
export function primaryIP(options: ComputeOptions, node: NodeRecord | undefined, family: IPFamily): string | undefined {
  if (options.primaryIP !== undefined && ipFamily(options.primaryIP) === family) return options.primaryIP;
  return node?.primary[family];
}

/** The node's addresses of `family` (from the Node's status), with --bind-address first when it is of this family. */
export function nodeIPs(options: ComputeOptions, node: NodeRecord | undefined, family: IPFamily): readonly string[] {
  const fromNode = node?.addresses[family] ?? [];
  const bind = options.primaryIP;
  if (bind === undefined || ipFamily(bind) !== family) return fromNode;
  return [bind, ...fromNode.filter((ip) => ip !== bind)];
}

/** FamilyPlan without its services (everything that depends only on the options and the Node). */
export function familyFrame(options: ComputeOptions, node: NodeRecord | undefined, family: IPFamily): Omit<FamilyPlan, 'services'> {
  return {
    family,
    nodePortAddresses: nodePortAddresses(options, node, family),
    localDetector: localDetector(options, family, node),
    nodeIPs: nodeIPs(options, node, family),
  };
}
