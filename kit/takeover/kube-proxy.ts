// What the upstream kube-proxy (the pinned v1.34, in any of its modes) leaves on a node, by name, and the parsers of
// the listings that show it: the facts a takeover removes by, and nothing else. Pure. Names from kube-proxy's
// pkg/proxy/iptables, pkg/proxy/ipvs and pkg/proxy/nftables; kubelet's own chains (KUBE-FIREWALL,
// KUBE-KUBELET-CANARY, KUBE-MARK-DROP, KUBE-IPTABLES-HINT) are not kube-proxy's and stay.
import type { ChainOwner } from '../iptables/save.ts';
import type { Protocol } from '../../src/model/types.ts';
import { normalizeIP } from '../../src/util/ip.ts';

/** The fixed chains of kube-proxy's iptables and ipvs modes (nat and filter). */
const KUBE_PROXY_FIXED_CHAINS: ReadonlySet<string> = new Set([
  // iptables mode
  'KUBE-SERVICES', 'KUBE-EXTERNAL-SERVICES', 'KUBE-NODEPORTS', 'KUBE-POSTROUTING', 'KUBE-MARK-MASQ', 'KUBE-FORWARD',
  'KUBE-PROXY-FIREWALL', 'KUBE-PROXY-CANARY',
  // ipvs mode
  'KUBE-NODE-PORT', 'KUBE-LOAD-BALANCER', 'KUBE-SOURCE-RANGES-FIREWALL', 'KUBE-IPVS-FILTER', 'KUBE-IPVS-OUT-FILTER',
]);
/** Per-service and per-endpoint chains of the iptables mode. */
const KUBE_PROXY_CHAIN_PREFIXES: readonly string[] = ['KUBE-SVC-', 'KUBE-SVL-', 'KUBE-EXT-', 'KUBE-FW-', 'KUBE-SEP-'];

export function isKubeProxyChain(chain: string): boolean {
  return KUBE_PROXY_FIXED_CHAINS.has(chain) || KUBE_PROXY_CHAIN_PREFIXES.some((prefix) => chain.startsWith(prefix));
}

/** Reading an iptables-save listing for kube-proxy's chains and the hooks into them. */
export const KUBE_PROXY_IPTABLES: ChainOwner = { prefix: 'KUBE-', owns: isKubeProxyChain };

/** The mangle-table canary of kube-proxy's iptables (and ipvs) mode: nothing jumps to it. */
export const KUBE_PROXY_MANGLE_CANARY = 'KUBE-PROXY-CANARY';

/** kube-proxy's nftables mode keeps everything in one table per family with this name. */
export const KUBE_PROXY_NFT_TABLE = 'kube-proxy';

/** `nft list tables` → the families ("ip", "ip6", …) that hold a table named kube-proxy. */
export function kubeProxyNftFamilies(listing: string): string[] {
  const families: string[] = [];
  for (const line of listing.split('\n')) {
    const match = /^table (\S+) (\S+)$/.exec(line.trim());
    if (match && match[2] === KUBE_PROXY_NFT_TABLE && match[1] !== undefined) families.push(match[1]);
  }
  return families;
}

/** The dummy interface kube-proxy's ipvs mode binds every service address to. */
export const KUBE_PROXY_IPVS_INTERFACE = 'kube-ipvs0';

const IPSET_NAMES: readonly string[] = [
  'KUBE-LOOP-BACK', 'KUBE-CLUSTER-IP', 'KUBE-EXTERNAL-IP', 'KUBE-EXTERNAL-IP-LOCAL', 'KUBE-LOAD-BALANCER',
  'KUBE-LOAD-BALANCER-LOCAL', 'KUBE-LOAD-BALANCER-FW', 'KUBE-LOAD-BALANCER-SOURCE-IP', 'KUBE-LOAD-BALANCER-SOURCE-CIDR',
  'KUBE-NODE-PORT-TCP', 'KUBE-NODE-PORT-LOCAL-TCP', 'KUBE-NODE-PORT-UDP', 'KUBE-NODE-PORT-LOCAL-UDP',
  'KUBE-NODE-PORT-SCTP-HASH', 'KUBE-NODE-PORT-LOCAL-SCTP-HASH', 'KUBE-HEALTH-CHECK-NODE-PORT', 'KUBE-IPVS-IPS',
];

/** The ipsets of kube-proxy's ipvs mode: its names, and for IPv6 the same with KUBE-6- (cut at 31 characters). */
export const KUBE_PROXY_IPSETS: ReadonlySet<string> = new Set(IPSET_NAMES.flatMap((name) => [name, name.replace('KUBE-', 'KUBE-6-').slice(0, 31)]));

/** An IPVS virtual service as `ipvsadm -S -n` lists it. */
export interface IpvsService {
  /** The option that names its kind, for `ipvsadm -D`: -t, -u, --sctp-service or -f. */
  readonly kind: '-t' | '-u' | '--sctp-service' | '-f';
  /** "ADDR:PORT" as listed ("[v6]:PORT" for IPv6), or the firewall mark. */
  readonly key: string;
  readonly address?: string;
  readonly port?: number;
  readonly protocol?: Protocol;
}

const KINDS: Readonly<Record<string, { kind: IpvsService['kind']; protocol?: Protocol }>> = {
  '-t': { kind: '-t', protocol: 'TCP' }, '--tcp-service': { kind: '-t', protocol: 'TCP' },
  '-u': { kind: '-u', protocol: 'UDP' }, '--udp-service': { kind: '-u', protocol: 'UDP' },
  '--sctp-service': { kind: '--sctp-service', protocol: 'SCTP' },
  '-f': { kind: '-f' }, '--fwmark-service': { kind: '-f' },
};

/** The virtual services of `ipvsadm -S -n` (`-A` lines; the real servers, `-a`, are left out). */
export function parseIpvsServices(listing: string): IpvsService[] {
  const services: IpvsService[] = [];
  for (const line of listing.split('\n')) {
    const words = line.trim().split(/\s+/);
    if (words[0] !== '-A' || words[1] === undefined || words[2] === undefined) continue;
    const known = KINDS[words[1]];
    if (!known) continue;
    const key = words[2];
    if (known.kind === '-f') {
      services.push({ kind: '-f', key });
      continue;
    }
    const match = /^\[?([^\]]+?)\]?:(\d+)$/.exec(key);
    if (!match || match[1] === undefined) continue;
    services.push({ kind: known.kind, key, address: normalizeIP(match[1]) ?? match[1], port: Number(match[2]), ...(known.protocol && { protocol: known.protocol }) });
  }
  return services;
}

/** The addresses of `ip -o addr show`, normalised. */
export function parseAddresses(listing: string): string[] {
  const addresses: string[] = [];
  for (const line of listing.split('\n')) {
    const match = /\binet6? ([0-9a-fA-F:.]+)\//.exec(line);
    if (match?.[1]) addresses.push(normalizeIP(match[1]) ?? match[1]);
  }
  return addresses;
}

export interface IpvsOwnership {
  /** Addresses bound to kube-ipvs0: kube-proxy's service addresses. */
  readonly interfaceAddresses: readonly string[];
  /** Every address of the node (kube-proxy serves NodePorts on them through IPVS too). */
  readonly nodeAddresses: readonly string[];
  /** The NodePorts of the services kproxy now serves, by protocol. */
  readonly nodePorts: ReadonlyMap<Protocol, ReadonlySet<number>>;
}

/**
 * kube-proxy's IPVS services: one on an address bound to kube-ipvs0, or on a node address with a NodePort of a
 * current Service. Any other virtual service (a firewall mark, an admin's VIP) is not kube-proxy's.
 */
export function isKubeProxyIpvsService(service: IpvsService, owned: IpvsOwnership): boolean {
  if (service.address === undefined || service.port === undefined || service.protocol === undefined) return false;
  if (owned.interfaceAddresses.includes(service.address)) return true;
  return owned.nodeAddresses.includes(service.address) && (owned.nodePorts.get(service.protocol)?.has(service.port) ?? false);
}
