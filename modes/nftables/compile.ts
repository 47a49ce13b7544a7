// compile: the routes of each service port (decided in src/compute) → kproxy's nftables table of one family. Pure.
//
// Layout (modes/nftables/README.md has the why and the measurements):
//   nat-prerouting / nat-output (dstnat, -100) → services: a verdict map keyed by address . protocol . port
//     (cluster IPs, external IPs, LoadBalancer IPs) and one keyed by protocol . port for NodePorts on local
//     addresses; LoadBalancer source ranges are one set lookup before them.
//   A frontend's verdict: `goto no-endpoints` (reject) or `drop` when its route has no endpoint; `goto` a shared
//     balancing chain; or, under externalTrafficPolicy Local, `goto external-split` / `nodeport-split`, which tell
//     pods and the node from outside clients and look the frontend up again in one map per class.
//   Balancing chains are shared by every frontend with the same number of endpoints, protocol and masquerade
//     policy: `dnat to <frontend> . numgen random mod N map @endpoints-N`. The endpoints are elements of that map
//     keyed by the frontend and the bucket. No chain, set or rule per service: one endpoint change is a few
//     element changes, and the kernel's cost of a transaction does not grow with the number of services.
//   Session affinity needs per-endpoint rules: those service ports (only) get a pick chain per endpoint set, a small
//   chain per route (its masquerade, jump to the pick chain, else the shared balancer) and a dynamic set.
//   nat-postrouting (srcnat, 100): hairpin (an endpoint reaching itself) marks, then marked packets are masqueraded
//     and the mark bit cleared, as in the iptables mode.
//
// Per service port, compileService returns its contribution grouped by frontend (a frontend address . port
// claimed by two services goes to the first by key, as kube-proxy's rule order does), so a partial sync
// (diff.ts) recompiles only the services whose plan changed.
import type { DesiredState, Endpoint, IPFamily, Route, ServicePortPlan } from '../../src/model/types.ts';
import { cidrContains, ipFamily, parseCidr, type Cidr } from '../../src/util/ip.ts';
import { CHAINS, endpointTag, serviceObjectNames, SETS, TABLE } from './names.ts';
import { element, FAMILY_OF, type Chain, type Element, type Expr, type Match, type NftFamily, type Protocol4, type Rule, type SetSpec, type Statement, type Table } from './ruleset.ts';

const DADDR: Expr = { kind: 'addr', dir: 'daddr' };
const SADDR: Expr = { kind: 'addr', dir: 'saddr' };
const L4PROTO: Expr = { kind: 'l4proto' };
const DPORT: Expr = { kind: 'dport' };
/** Key of the address frontends: destination address . protocol . port. */
export const IP_KEY: readonly Expr[] = [DADDR, L4PROTO, DPORT];
/** Key of NodePorts (on any local address): protocol . port. */
export const NODEPORT_KEY: readonly Expr[] = [L4PROTO, DPORT];
/** Largest number of clients an affinity set remembers per service port (the kernel's default is 65535). */
export const AFFINITY_SET_SIZE = 1 << 20;
const LOOPBACK: Readonly<Record<NftFamily, string>> = { ip: '127.0.0.0/8', ip6: '::1' };

export type KeyKind = 'ip' | 'nodeport';
export type PickMasquerade = 'always' | 'off-cluster' | 'none';

/** A shared balancing chain and its endpoint map: one per key kind, class, size, protocol and masquerade. */
export interface Balancer {
  readonly keyKind: KeyKind;
  /** The outside-clients class of a split frontend (its own map: the same frontend key has two endpoint sets). */
  readonly outside: boolean;
  readonly size: number;
  readonly protocol: Protocol4;
  readonly masquerade: PickMasquerade;
}

/** Everything family-wide that per-service compilation depends on. */
export interface FamilyContext {
  readonly family: NftFamily;
  readonly ipFamily: IPFamily;
  /** The masquerade mark bit. */
  readonly mark: number;
  /** The local-traffic detector's CIDRs (minimal); undefined when there is none. */
  readonly clusterCidrs: readonly string[] | undefined;
  /** CIDRs (minimal) NodePorts are served on, or every local address but loopback. */
  readonly nodePortAddresses: 'all' | readonly string[];
  readonly nodeIPs: readonly string[];
  /** All of the above as one string: per-service output is comparable only under the same key. */
  readonly key: string;
}

/** One element of one set. */
export interface SetElement {
  readonly set: string;
  readonly element: Element;
}
const put = (set: string, key: string, value?: string): SetElement => ({ set, element: element(key, value) });

/** What one frontend of a service port puts in the table. */
export interface FrontendPart {
  /** "ip 10.96.0.1 . tcp . 80" or "nodeport tcp . 30080": frontends with the same id conflict. */
  readonly id: string;
  readonly elements: readonly SetElement[];
  readonly balancers: readonly Balancer[];
}

/** What one service port puts in the table. */
export interface ServiceContribution {
  readonly frontends: readonly FrontendPart[];
  /** Shared balancers its own chains fall back to (they must exist whichever frontends it wins). */
  readonly balancers: readonly Balancer[];
  /** Its own objects: session affinity chains and set. */
  readonly chains: readonly Chain[];
  readonly sets: readonly SetSpec[];
  /** Keys of the hairpin set (endpoints on this node, "ip . ip"); shared by every service they serve. */
  readonly hairpin: readonly string[];
}

// --- family context ------------------------------------------------------------------------------------------

/** CIDRs of one family, canonical, without duplicates or any that another one contains (nft refuses overlaps). */
function minimalCidrs(texts: readonly string[], family: IPFamily): Cidr[] {
  const unique = new Map<string, Cidr>();
  for (const text of texts) {
    const cidr = parseCidr(text);
    if (cidr && cidr.family === family) unique.set(cidr.text, cidr);
  }
  const all = [...unique.values()];
  const covered = (cidr: Cidr): boolean => all.some((o) => o !== cidr && o.prefix < cidr.prefix && cidrContains(o, cidr.network));
  return all.filter((c) => !covered(c)).sort((a, b) => (a.text < b.text ? -1 : a.text > b.text ? 1 : 0));
}

/** A CIDR as an interval set element: the bare address for a single host. */
function cidrElement(cidr: Cidr): string {
  return cidr.prefix === (cidr.family === 'IPv4' ? 32 : 128) ? cidr.network : cidr.text;
}

export function familyContext(state: DesiredState, ipFam: IPFamily): FamilyContext {
  const plan = state.families[ipFam];
  const family = FAMILY_OF[ipFam];
  const mark = (1 << state.settings.masqueradeBit) >>> 0;
  const clusterCidrs = plan.localDetector.kind === 'ClusterCIDR'
    ? minimalCidrs(plan.localDetector.cidrs, ipFam).map(cidrElement) : undefined;
  let nodePortAddresses: FamilyContext['nodePortAddresses'] = 'all';
  if (plan.nodePortAddresses !== 'all') {
    const loopback = parseCidr(LOOPBACK[family]);
    const cidrs = minimalCidrs(plan.nodePortAddresses, ipFam);
    // A range wider than loopback that covers it (e.g. 0.0.0.0/0) means every local address; loopback itself, or
    // a part of it, is never served (CVE-2020-8558).
    const inLoopback = (c: Cidr): boolean => loopback !== undefined && c.prefix >= loopback.prefix && cidrContains(loopback, c.network);
    nodePortAddresses = loopback && cidrs.some((c) => c.prefix < loopback.prefix && cidrContains(c, loopback.network))
      ? 'all' : cidrs.filter((c) => !inLoopback(c)).map(cidrElement);
  }
  const key = [family, mark, clusterCidrs?.join(',') ?? '-', nodePortAddresses === 'all' ? 'all' : nodePortAddresses.join(','), plan.nodeIPs.join(',')].join('|');
  return { family, ipFamily: ipFam, mark, clusterCidrs, nodePortAddresses, nodeIPs: plan.nodeIPs, key };
}

// --- shared objects ------------------------------------------------------------------------------------------

const MASQ_SUFFIX: Readonly<Record<PickMasquerade, string>> = { always: '-masq', 'off-cluster': '-masq-off-cluster', none: '' };

/** One map per protocol: its values are typed with the protocol's port (see Expr 'port-value'). */
export function balancerMap(b: Balancer): string {
  return `${b.keyKind === 'nodeport' ? 'nodeport-' : ''}${b.outside ? 'outside-' : ''}endpoints-${b.protocol}-${b.size}`;
}

export function balancerChainName(b: Balancer): string {
  return `${balancerMap(b)}${MASQ_SUFFIX[b.masquerade]}`;
}

const bucketKey = (b: { keyKind: KeyKind; size: number }): readonly Expr[] =>
  [...(b.keyKind === 'ip' ? IP_KEY : NODEPORT_KEY), { kind: 'numgen', mod: b.size }];

export function balancerMapSpec(b: Balancer): SetSpec {
  return { name: balancerMap(b), key: bucketKey(b), data: [DADDR, { kind: 'port-value', protocol: b.protocol }] };
}

const markRule = (ctx: FamilyContext, matches: readonly Match[], comment?: string): Rule =>
  ({ matches, statements: [{ kind: 'mark-or', value: ctx.mark }], ...(comment ? { comment } : {}) });

/** The rules that mark a packet for masquerading under `policy` (none, or one). */
function masqueradeRules(policy: PickMasquerade, ctx: FamilyContext): Rule[] {
  if (policy === 'always') return [markRule(ctx, [])];
  if (policy === 'off-cluster') return [markRule(ctx, [{ kind: 'lookup', key: [SADDR], set: SETS.clusterCidrs, negate: true }], 'from outside the cluster')];
  return [];
}

export function balancerChain(b: Balancer, ctx: FamilyContext): Chain {
  return {
    name: balancerChainName(b),
    rules: [
      ...masqueradeRules(b.masquerade, ctx),
      { matches: [], statements: [{ kind: 'dnat-map', protocol: b.protocol, key: bucketKey(b), map: balancerMap(b) }] },
    ],
  };
}

// --- the base table ------------------------------------------------------------------------------------------

const jump = (chain: string): Statement => ({ kind: 'verdict', verdict: { kind: 'jump', chain } });
const vmap = (key: readonly Expr[], map: string): Statement => ({ kind: 'vmap', key, map });

/** The sets and maps that always exist. */
export function baseSets(): SetSpec[] {
  return [
    { name: SETS.clusterCidrs, key: [SADDR], flags: ['interval'] },
    { name: SETS.nodePortAddresses, key: [DADDR], flags: ['interval'] },
    { name: SETS.hairpin, key: [SADDR, DADDR] },
    { name: SETS.firewallIPs, key: IP_KEY },
    { name: SETS.firewallAllow, key: [...IP_KEY, SADDR], flags: ['interval'] },
    { name: SETS.serviceIPs, key: IP_KEY, data: 'verdict' },
    { name: SETS.serviceNodePorts, key: NODEPORT_KEY, data: 'verdict' },
    { name: SETS.externalFromCluster, key: IP_KEY, data: 'verdict' },
    { name: SETS.externalFromOutside, key: IP_KEY, data: 'verdict' },
    { name: SETS.nodePortsFromCluster, key: NODEPORT_KEY, data: 'verdict' },
    { name: SETS.nodePortsFromOutside, key: NODEPORT_KEY, data: 'verdict' },
  ];
}

/** Elements of the base sets that come from the family context, not from services. */
export function baseElements(ctx: FamilyContext): Map<string, Element[]> {
  const out = new Map<string, Element[]>();
  if (ctx.clusterCidrs) out.set(SETS.clusterCidrs, [...ctx.clusterCidrs]);
  if (ctx.nodePortAddresses !== 'all') out.set(SETS.nodePortAddresses, [...ctx.nodePortAddresses]);
  return out;
}

/** The chains that always exist (hooks, dispatch, traffic-class split, masquerading). */
export function baseChains(ctx: FamilyContext): Chain[] {
  const nodePortMatches: Match[] = [{ kind: 'cmp', left: DADDR, negate: true, value: { kind: 'cidr', value: LOOPBACK[ctx.family] } }];
  if (ctx.nodePortAddresses !== 'all') nodePortMatches.push({ kind: 'lookup', key: [DADDR], set: SETS.nodePortAddresses });
  nodePortMatches.push({ kind: 'fib-local', dir: 'daddr' });
  const split = (key: readonly Expr[], fromCluster: string, fromOutside: string): Rule[] => {
    const rules: Rule[] = [];
    // Pods (no detector: none can be told apart, they count as outside clients).
    if (ctx.clusterCidrs) rules.push({ matches: [{ kind: 'lookup', key: [SADDR], set: SETS.clusterCidrs }], statements: [vmap(key, fromCluster)], comment: 'pods' });
    // The node itself talks from an address the endpoints may not route back to.
    rules.push(markRule(ctx, [{ kind: 'fib-local', dir: 'saddr' }], 'the node'));
    rules.push({ matches: [{ kind: 'fib-local', dir: 'saddr' }], statements: [vmap(key, fromCluster)], comment: 'the node' });
    rules.push({ matches: [], statements: [vmap(key, fromOutside)], comment: 'outside clients' });
    return rules;
  };
  return [
    { name: CHAINS.prerouting, base: { type: 'nat', hook: 'prerouting', priority: -100 }, rules: [{ matches: [], statements: [jump(CHAINS.services)] }] },
    { name: CHAINS.output, base: { type: 'nat', hook: 'output', priority: -100 }, rules: [{ matches: [], statements: [jump(CHAINS.services)] }] },
    {
      name: CHAINS.postrouting, base: { type: 'nat', hook: 'postrouting', priority: 100 }, rules: [
        markRule(ctx, [{ kind: 'ct-dnat' }, { kind: 'lookup', key: [SADDR, DADDR], set: SETS.hairpin }], 'hairpin: an endpoint reaching itself'),
        { matches: [], statements: [jump(CHAINS.masquerading)] },
      ],
    },
    {
      name: CHAINS.services, rules: [
        {
          matches: [{ kind: 'lookup', key: IP_KEY, set: SETS.firewallIPs }, { kind: 'lookup', key: [...IP_KEY, SADDR], set: SETS.firewallAllow, negate: true }],
          statements: [{ kind: 'verdict', verdict: { kind: 'drop' } }], comment: 'loadBalancerSourceRanges',
        },
        { matches: [], statements: [vmap(IP_KEY, SETS.serviceIPs)] },
        { matches: nodePortMatches, statements: [vmap(NODEPORT_KEY, SETS.serviceNodePorts)], comment: 'NodePorts' },
      ],
    },
    { name: CHAINS.externalSplit, rules: split(IP_KEY, SETS.externalFromCluster, SETS.externalFromOutside) },
    { name: CHAINS.nodePortSplit, rules: split(NODEPORT_KEY, SETS.nodePortsFromCluster, SETS.nodePortsFromOutside) },
    {
      name: CHAINS.masquerading, rules: [
        { matches: [{ kind: 'mark-clear', mask: ctx.mark }], statements: [{ kind: 'verdict', verdict: { kind: 'return' } }] },
        // Clear the bit so a packet that is routed again (e.g. into a tunnel) is not masqueraded twice.
        { matches: [], statements: [{ kind: 'mark-xor', value: ctx.mark }] },
        { matches: [], statements: [{ kind: 'masquerade' }], comment: 'service traffic that needs the node as source' },
      ],
    },
    { name: CHAINS.noEndpoints, rules: [{ matches: [], statements: [{ kind: 'reject' }], comment: 'service without endpoints' }] },
  ];
}

// --- per service port ----------------------------------------------------------------------------------------

const PROTOCOL: Readonly<Record<ServicePortPlan['protocol'], Protocol4>> = { TCP: 'tcp', UDP: 'udp', SCTP: 'sctp' };

function pickMasquerade(route: Route, ctx: FamilyContext): PickMasquerade {
  if (route.masquerade === 'always') return 'always';
  if (route.masquerade === 'off-cluster') return ctx.clusterCidrs ? 'off-cluster' : 'none';
  // 'never'; 'node-originated' is applied by the split chain, which alone knows the source is the node.
  return 'none';
}

/** The route's endpoints of this family, in the route's order. */
function usable(route: Route, ctx: FamilyContext): readonly Endpoint[] {
  return route.endpoints.every((ep) => ipFamily(ep.ip) === ctx.ipFamily) ? route.endpoints : route.endpoints.filter((ep) => ipFamily(ep.ip) === ctx.ipFamily);
}

const endpointText = (ep: Endpoint): string => `${ep.ip} . ${ep.port}`;

type AffinityRole = 'cluster-ip' | 'external' | 'from-cluster' | 'from-outside';

/** Compiles one service port; `ctx` must be the family's (see familyContext). */
export function compileService(plan: ServicePortPlan, ctx: FamilyContext): ServiceContribution {
  const protocol = PROTOCOL[plan.protocol];
  const routes = plan.routes;
  const objectName = serviceObjectNames(plan);
  const affinitySet = `${objectName.short}-affinity`;
  const chains: Chain[] = [];
  const sets: SetSpec[] = [];
  let tags: Map<string, number> | undefined;
  const roleChains = new Set<string>();
  /** One pick chain per distinct endpoint set (routes share their array when they share their set). */
  const pickChains = new Map<readonly Endpoint[], string>();
  const fallbacks: Balancer[] = [];

  /**
   * A session-affinity route: its role chain applies the route's masquerade, jumps to the pick chain of its
   * endpoint set (whose every rule ends in DNAT, a final verdict), and when that returns (the affinity set is full,
   * nothing could be remembered) goes to the shared balancer `fallback` of its frontend's key kind.
   */
  const affinityChain = (route: Route, role: AffinityRole, fallback: Balancer, timeoutSeconds: number): string => {
    const roleName = `${objectName.long}-${role}-${fallback.keyKind === 'nodeport' ? 'nodeport' : 'ip'}${fallback.outside ? '-outside' : ''}`;
    if (roleChains.has(roleName)) return roleName;
    if (!tags) {
      tags = affinityTags(plan, ctx);
      sets.push({ name: affinitySet, key: [SADDR, { kind: 'numgen', mod: 1 }], flags: ['dynamic', 'timeout'], size: AFFINITY_SET_SIZE, dynamic: true });
    }
    let pick = pickChains.get(route.endpoints);
    if (!pick) {
      pick = `${objectName.short}-pick${pickChains.size > 0 ? `-${pickChains.size}` : ''}`;
      pickChains.set(route.endpoints, pick);
      chains.push({ name: pick, rules: affinityRules(route, ctx, protocol, affinitySet, tags, timeoutSeconds) });
    }
    fallbacks.push(fallback);
    chains.push({
      name: roleName,
      rules: [
        ...masqueradeRules(pickMasquerade(route, ctx), ctx),
        { matches: [], statements: [{ kind: 'verdict', verdict: { kind: 'jump', chain: pick } }] },
        { matches: [], statements: [{ kind: 'verdict', verdict: { kind: 'goto', chain: balancerChainName(fallback) } }], comment: 'affinity set full' },
      ],
    });
    roleChains.add(roleName);
    return roleName;
  };

  /** A route's verdict for a frontend key; the endpoint elements it needs go to `out`. */
  const target = (route: Route, role: AffinityRole, keyKind: KeyKind, outside: boolean, key: string, out: { elements: SetElement[]; balancers: Balancer[] }): string => {
    const endpoints = usable(route, ctx);
    if (endpoints.length === 0) return route.whenEmpty === 'reject' ? `goto ${CHAINS.noEndpoints}` : 'drop';
    const masquerade = route.affinity ? 'none' : pickMasquerade(route, ctx);
    const balancer: Balancer = { keyKind, outside, size: endpoints.length, protocol, masquerade };
    const map = balancerMap(balancer);
    endpoints.forEach((ep, i) => out.elements.push(put(map, `${key} . ${i}`, endpointText(ep))));
    out.balancers.push(balancer);
    if (route.affinity) return `goto ${affinityChain(route, role, balancer, route.affinity.timeoutSeconds)}`;
    return `goto ${balancerChainName(balancer)}`;
  };

  const frontends: FrontendPart[] = [];
  const external = routes.external;
  const sourceRanges = minimalCidrs(plan.sourceRanges, ctx.ipFamily);
  const nodeAllowed = ctx.nodeIPs.some((ip) => sourceRanges.some((r) => cidrContains(r, ip)));

  for (const frontend of plan.frontends) {
    const out = { elements: [] as SetElement[], balancers: [] as Balancer[] };
    if (frontend.kind === 'NodePort') {
      if (!external) continue;
      const key = `${protocol} . ${frontend.port}`;
      if (external.fromOutside === external.fromCluster) {
        out.elements.push(put(SETS.serviceNodePorts, key, target(external.fromOutside, 'external', 'nodeport', false, key, out)));
      } else {
        out.elements.push(put(SETS.serviceNodePorts, key, `goto ${CHAINS.nodePortSplit}`));
        out.elements.push(put(SETS.nodePortsFromCluster, key, target(external.fromCluster, 'from-cluster', 'nodeport', false, key, out)));
        out.elements.push(put(SETS.nodePortsFromOutside, key, target(external.fromOutside, 'from-outside', 'nodeport', true, key, out)));
      }
      frontends.push({ id: `nodeport ${key}`, ...out });
      continue;
    }
    if (ipFamily(frontend.ip) !== ctx.ipFamily) continue;
    const key = `${frontend.ip} . ${protocol} . ${frontend.port}`;
    if (frontend.kind === 'ClusterIP') {
      out.elements.push(put(SETS.serviceIPs, key, target(routes.clusterIP, 'cluster-ip', 'ip', false, key, out)));
    } else {
      if (!external) continue;
      if (external.fromOutside === external.fromCluster) {
        out.elements.push(put(SETS.serviceIPs, key, target(external.fromOutside, 'external', 'ip', false, key, out)));
      } else {
        out.elements.push(put(SETS.serviceIPs, key, `goto ${CHAINS.externalSplit}`));
        out.elements.push(put(SETS.externalFromCluster, key, target(external.fromCluster, 'from-cluster', 'ip', false, key, out)));
        out.elements.push(put(SETS.externalFromOutside, key, target(external.fromOutside, 'from-outside', 'ip', true, key, out)));
      }
      // loadBalancerSourceRanges, as upstream's nftables mode: whether or not the service has endpoints (a source outside
      // the ranges is dropped before DNAT; upstream's iptables mode checks them only while there are endpoints).
      if (frontend.kind === 'LoadBalancer' && sourceRanges.length > 0) {
        out.elements.push(put(SETS.firewallIPs, key));
        for (const range of sourceRanges) out.elements.push(put(SETS.firewallAllow, `${key} . ${cidrElement(range)}`));
        // The node reaching its own LoadBalancer IP may arrive with that IP as its source.
        if (nodeAllowed) out.elements.push(put(SETS.firewallAllow, `${key} . ${frontend.ip}`));
      }
    }
    frontends.push({ id: `ip ${key}`, ...out });
  }
  return { frontends, balancers: fallbacks, chains, sets, hairpin: hairpinKeys(plan, ctx) };
}

/** "ip . ip" of every endpoint on this node: only those can be the source of a packet to the service here. */
function hairpinKeys(plan: ServicePortPlan, ctx: FamilyContext): string[] {
  const ips = new Set<string>();
  const add = (route: Route | undefined): void => {
    for (const ep of route?.endpoints ?? []) if (ep.local && ipFamily(ep.ip) === ctx.ipFamily) ips.add(ep.ip);
  };
  add(plan.routes.clusterIP);
  add(plan.routes.external?.fromOutside);
  add(plan.routes.external?.fromCluster);
  return [...ips].sort().map((ip) => `${ip} . ${ip}`);
}

/**
 * A distinct 32-bit number per endpoint of the service port (the same in every route), which its affinity set
 * stores beside the client address. Hashes of "ip:port"; the rare collision moves to the next free number.
 */
function affinityTags(plan: ServicePortPlan, ctx: FamilyContext): Map<string, number> {
  const all = new Set<string>();
  for (const route of [plan.routes.clusterIP, plan.routes.external?.fromOutside, plan.routes.external?.fromCluster]) {
    for (const ep of route ? usable(route, ctx) : []) all.add(endpointText(ep));
  }
  const tags = new Map<string, number>();
  const used = new Set<number>();
  for (const ep of [...all].sort()) {
    let tag = endpointTag(plan, ep);
    while (used.has(tag)) tag = (tag + 1) >>> 0;
    used.add(tag);
    tags.set(ep, tag);
  }
  return tags;
}

/**
 * The pick chain of a session-affinity endpoint set: a client seen within the timeout goes back to its endpoint
 * (and refreshes it); a new one is spread evenly (numgen per rule: 1/N, then 1/(N-1)…) and remembered. When the
 * set is full no rule can remember it (the update fails, the rule stops before its DNAT): the chain returns.
 */
function affinityRules(route: Route, ctx: FamilyContext, protocol: Protocol4, set: string, tags: ReadonlyMap<string, number>, timeoutSeconds: number): Rule[] {
  const endpoints = usable(route, ctx);
  const rules: Rule[] = [];
  const client = (ep: Endpoint): readonly Expr[] => [SADDR, { kind: 'numgen', mod: 1, offset: tags.get(endpointText(ep)) ?? 0 }];
  const remember = (ep: Endpoint): Statement => ({ kind: 'update', set, key: client(ep), timeoutSeconds });
  const dnat = (ep: Endpoint): Statement => ({ kind: 'dnat', protocol, ip: ep.ip, port: ep.port });
  const pick = (i: number): Match[] => (endpoints.length - i > 1 ? [{ kind: 'cmp', left: { kind: 'numgen', mod: endpoints.length - i }, value: { kind: 'number', value: 0 } }] : []);
  for (const ep of endpoints) rules.push({ matches: [{ kind: 'lookup', key: client(ep), set }], statements: [remember(ep), dnat(ep)] });
  endpoints.forEach((ep, i) => rules.push({ matches: pick(i), statements: [remember(ep), dnat(ep)] }));
  return rules;
}

// --- the whole table -----------------------------------------------------------------------------------------

/** Where an assembled table goes, piece by piece, declarations always before what refers to them. */
export interface TableSink {
  addSet(set: SetSpec): void;
  /** Declares the chains, then fills them (their rules may refer to each other). */
  addChains(chains: readonly Chain[]): void;
  addElements(set: string, elements: readonly Element[]): void;
}

/** What assembling a family's services leaves behind besides the table: the indexes a partial diff needs. */
export interface Assembly {
  /** Frontend id → service keys claiming it, winner first. */
  readonly claims: Map<string, string[]>;
  readonly balancerUses: Map<string, { balancer: Balancer; uses: number }>;
  readonly hairpinUses: Map<string, number>;
  /** Every set of the table, by name. */
  readonly sets: Map<string, SetSpec>;
}

/**
 * The family's services compiled together into `sink`, conflicts resolved (the first service by key keeps a
 * frontend). Service by service, so a sink that writes as it goes never holds the whole table.
 */
export function assembleInto(ctx: FamilyContext, services: readonly ServicePortPlan[], compile: (plan: ServicePortPlan) => ServiceContribution, sink: TableSink): Assembly {
  const claims = new Map<string, string[]>();
  const balancerUses = new Map<string, { balancer: Balancer; uses: number }>();
  const hairpinUses = new Map<string, number>();
  const sets = new Map<string, SetSpec>();
  const addSet = (set: SetSpec): void => {
    sets.set(set.name, set);
    sink.addSet(set);
  };
  for (const set of baseSets()) addSet(set);
  sink.addChains(baseChains(ctx));
  for (const [set, elements] of baseElements(ctx)) sink.addElements(set, elements);
  for (const plan of [...services].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))) {
    const part = compile(plan);
    const acquire = (balancer: Balancer): void => {
      const name = balancerChainName(balancer);
      const use = balancerUses.get(name);
      if (use) { use.uses++; return; }
      balancerUses.set(name, { balancer, uses: 1 });
      const map = balancerMapSpec(balancer);
      if (!sets.has(map.name)) addSet(map);
      sink.addChains([balancerChain(balancer, ctx)]);
    };
    for (const balancer of part.balancers) acquire(balancer);
    const elements = new Map<string, Element[]>();
    for (const frontend of part.frontends) {
      const claimants = claims.get(frontend.id);
      if (claimants) { claimants.push(plan.key); continue; }
      claims.set(frontend.id, [plan.key]);
      for (const balancer of frontend.balancers) acquire(balancer);
      for (const { set, element } of frontend.elements) {
        let list = elements.get(set);
        if (!list) elements.set(set, list = []);
        list.push(element);
      }
    }
    for (const set of part.sets) addSet(set);
    if (part.chains.length > 0) sink.addChains(part.chains);
    for (const [set, list] of elements) sink.addElements(set, list);
    const hairpin = part.hairpin.filter((key) => {
      const count = hairpinUses.get(key) ?? 0;
      hairpinUses.set(key, count + 1);
      return count === 0;
    });
    if (hairpin.length > 0) sink.addElements(SETS.hairpin, hairpin);
  }
  return { claims, balancerUses, hairpinUses, sets };
}

/** The family's services compiled together, as a table (for `kproxy plan`, the tracer, full diffs, tests). */
export interface Assembled extends Assembly {
  readonly table: Table;
}

export function assemble(ctx: FamilyContext, services: readonly ServicePortPlan[], compile: (plan: ServicePortPlan) => ServiceContribution): Assembled {
  const chains: Chain[] = [];
  const sets: SetSpec[] = [];
  const elements = new Map<string, Element[]>();
  const assembly = assembleInto(ctx, services, compile, {
    addSet: (set) => { sets.push(set); },
    addChains: (list) => { for (const chain of list) chains.push(chain); },
    addElements: (set, list) => {
      const all = elements.get(set);
      if (all) for (const e of list) all.push(e);
      else elements.set(set, [...list]);
    },
  });
  return { ...assembly, table: { family: ctx.family, name: TABLE, chains, sets, elements } };
}

/** The whole table of one family (for `kproxy plan`, the tracer and tests). */
export function compile(state: DesiredState, family: IPFamily): Table {
  const ctx = familyContext(state, family);
  return assemble(ctx, state.families[family].services, (plan) => compileService(plan, ctx)).table;
}
