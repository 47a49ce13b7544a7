// The configuration the Kubernetes semantics depend on (from flags / config file, fixed for a store's life).
import { normalizeIP, parseCidr } from '../util/ip.ts';

export interface ComputeOptions {
  /** This node's name: endpoints with this nodeName are local. */
  readonly nodeName: string;
  /**
   * Value of the `service.kubernetes.io/service-proxy-name` label this proxy answers to. Unset: every Service
   * that carries the label belongs to another proxy and is skipped.
   */
  readonly proxyName?: string;
  /** Pod CIDRs of the cluster (any family); they make the local-traffic detector. Empty: no detection. */
  readonly clusterCIDRs: readonly string[];
  /**
   * detectLocalMode: traffic from the cluster CIDRs (default) or, with NodeCIDR, from this Node's own
   * spec.podCIDRs counts as local.
   */
  readonly detectLocal?: 'ClusterCIDR' | 'NodeCIDR';
  /**
   * `--bind-address` when it names an address (not 0.0.0.0 / ::): this node's primary IP of its family, over the
   * Node object's, as kube-proxy takes it (for `nodePortAddresses: primary` and the node's own addresses).
   */
  readonly primaryIP?: string;
  /** `--nodeport-addresses`: CIDRs and/or the word 'primary'. Empty: NodePorts on every local address. */
  readonly nodePortAddresses: readonly string[];
  readonly masqueradeAll: boolean;
  /** Honour EndpointSlice node hints (feature gate PreferSameTrafficDistribution; default true). */
  readonly nodeHints?: boolean;
  /** fwmark bit for masquerade (0..31). */
  readonly masqueradeBit: number;
  /** nf_conntrack_tcp_be_liberal is in effect (default false): see ProxySettings.conntrackTcpLiberal. */
  readonly conntrackTcpLiberal?: boolean;
}

export const DEFAULT_MASQUERADE_BIT = 14;

/** Options with kube-proxy's defaults for everything but the node name. */
export function defaultComputeOptions(nodeName: string): ComputeOptions {
  return { nodeName, clusterCIDRs: [], nodePortAddresses: [], masqueradeAll: false, masqueradeBit: DEFAULT_MASQUERADE_BIT };
}

/** Problems with the options themselves, one clear line each (empty when they are fine). */
export function validateComputeOptions(options: ComputeOptions): string[] {
  const problems: string[] = [];
  if (options.nodeName.trim() === '') problems.push('nodeName: must not be empty');
  if (!Number.isInteger(options.masqueradeBit) || options.masqueradeBit < 0 || options.masqueradeBit > 31) {
    problems.push(`masqueradeBit: ${String(options.masqueradeBit)} is not an integer in 0..31`);
  }
  if (options.primaryIP !== undefined && normalizeIP(options.primaryIP) !== options.primaryIP) {
    problems.push(`primaryIP: ${JSON.stringify(options.primaryIP)} is not a canonical IP address`);
  }
  options.clusterCIDRs.forEach((text, index) => {
    if (!text.includes('/') || parseCidr(text) === undefined) problems.push(`clusterCIDRs[${index}]: ${JSON.stringify(text)} is not a CIDR`);
  });
  options.nodePortAddresses.forEach((text, index) => {
    if (text.trim() !== 'primary' && (!text.includes('/') || parseCidr(text) === undefined)) {
      problems.push(`nodePortAddresses[${index}]: ${JSON.stringify(text)} is not a CIDR or "primary"`);
    }
  });
  return problems;
}
