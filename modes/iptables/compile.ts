// compile(state, family): the desired state → the typed iptables ruleset of one IP family. Pure.
//
// Layout (kube-proxy's proven structure, with kproxy's own KPROXY- chains):
//   nat PREROUTING/OUTPUT → KPROXY-SERVICES: one rule per service frontend (ClusterIP → SVC, externalIP → EXT,
//     LB IP → FW or EXT), then — last — the jump to KPROXY-NODEPORTS for local destinations (never loopback).
//   SVC-<hash>: masquerade off-cluster traffic to the ClusterIP, then a `statistic` split that DNATs in place.
//     SVL-<hash>: the same split over local endpoints only (ETP Local).
//   EXT-<hash>: external destinations: mark for masquerade (policy Cluster), or short-circuit pod/node traffic
//     to SVC and send the rest to SVL (policy Local). FW-<hash>: loadBalancerSourceRanges.
//   Endpoints are DNATed by the split rule itself, not through a chain per endpoint (kube-proxy's SEP chains): with
//     iptables-legacy every restore rewrites the whole table, and its cost grows with the number of chains far more
//     than with rules (10k services × 10 endpoints: 135k chains took 4-7× as long to restore as the same rules
//     with 22k; see docs/benchmarks.md). An endpoint that may be its own client here (hairpin: it must see the node
//     as the source) gets a guarded pair instead: `-s EP <pick> -j HP-<hash>` then `! -s EP <pick> -j DNAT`,
//     the pick's probability spent once either way; HP-<hash> marks for masquerade and DNATs by source (the source
//     is the endpoint that was picked). Guarded: endpoints on this node (or without a node, or on a node IP), and
//     every endpoint of the chain that ETP Local's pod short-circuit enters (pods of other nodes arrive there).
//     Unguarded endpoints of other nodes cannot be their own client here: their node's proxy handles their cluster
//     traffic, and their external traffic is masqueraded or short-circuited into a guarded chain. (This trusts the
//     slices' nodeName, as topology does; kube-proxy guards every endpoint, see the oracle test's DELIBERATE table.)
//   SEP-<hash>: one chain per endpoint where a DNAT is not enough: ClientIP affinity (`recent --set`), and a service
//     whose guarded endpoints share an IP (HP could not tell them apart by source).
//   nat POSTROUTING → KPROXY-POSTROUTING masquerades what was marked (bit from settings).
//   filter: KPROXY-SERVICES / KPROXY-EXTERNAL-SERVICES reject (no endpoints) or drop (policy forbids),
//     KPROXY-FIREWALL drops what FW did not accept, KPROXY-FORWARD drops what conntrack finds INVALID (kube-proxy's
//     safeguard, unless conntrack is liberal with TCP; counted in its nfacct object) then accepts marked and
//     established flows, KPROXY-NODEPORTS accepts health-check node ports.
//   KPROXY-CANARY in nat and filter: one rule nothing jumps to, written by full syncs only; when it is gone or empty,
//     something else flushed the table (kit/iptables/canary.ts), and a full resync follows.
//   Large clusters (more than LARGE_CLUSTER_ENDPOINTS endpoints in the family): the per-endpoint rules are written
//     without comments, as kube-proxy does (Rule.perEndpoint); `kproxy plan` renders every comment.
//
// Partial-sync choice: the chains that grow with the number of services (nat/filter KPROXY-SERVICES,
// KPROXY-EXTERNAL-SERVICES, KPROXY-FIREWALL, KPROXY-NODEPORTS) are 'dispatch' chains: each rule matches one
// frontend, rules are mutually exclusive, so their order does not matter. A partial sync never flushes them;
// it deletes (-D) and inserts (-I … 1, which keeps the NodePorts jump last) only the rules of services that
// changed, in the same `iptables-restore --noflush` transaction that rewrites that service's own chains.
// Changing one endpoint therefore writes O(endpoints of that service) lines, whatever the number of services.
// We chose this over a two-level hashed dispatch because it keeps upstream's one-lookup-per-packet shape
// and the same rule set after a full or a partial sync (only the order inside dispatch chains may differ).
//
// Memory and speed: nothing here is memoised. A sync keeps a RulesetSource (the plans, not the rules) and compiles a
// service's rules only while streaming them into iptables-restore, or only for the plans that changed (diffed by
// object identity: the store keeps unchanged plans identical between snapshots). `compile` materialises the whole
// ruleset for `kproxy plan`, the tracer and tests.
import type { DesiredState, Endpoint, ExternalRoutes, FamilyPlan, Frontend, IPFamily, MasqueradePolicy, Protocol, Route, ServicePortPlan } from '../../src/model/types.ts';
import { isIPv4, isIPv6 } from 'node:net';
import { cidrContains, parseCidr } from '../../src/util/ip.ts';
import { endpointChainName, serviceChainNames, TOP_CHAINS, type ServiceChainNames } from './names.ts';
import type { Chain, DispatchChain, HookRule, Match, Rule, Ruleset, RulesetSource, ServiceRules, Target } from '../../kit/iptables/ruleset.ts';
import { materialize } from '../../kit/iptables/ruleset.ts';
import type { CompiledFamilies } from '../../kit/family-sync.ts';
import { CT_STATE_INVALID_DROPPED } from '../../kit/nfacct.ts';
import { canaryChain } from '../../kit/iptables/canary.ts';

const NEW_CONN: Match = { kind: 'conntrack', states: ['NEW'] };
const jump = (chain: string): Target => ({ kind: 'jump', chain });
// Shared, immutable pieces: at 10k services these occur hundreds of thousands of times.
const JUMP_MARK_MASQ: Target = jump(TOP_CHAINS.markMasq);
const PROTOCOL_ONLY: Readonly<Record<Protocol, Match>> = {
  TCP: { kind: 'protocol', protocol: 'TCP' }, UDP: { kind: 'protocol', protocol: 'UDP' }, SCTP: { kind: 'protocol', protocol: 'SCTP' },
};
const statisticMatches = new Map<number, Match>();
/** The match that picks one of `remaining` endpoints evenly. */
function pickOneOf(remaining: number): Match {
  let match = statisticMatches.get(remaining);
  if (!match) statisticMatches.set(remaining, match = { kind: 'statistic', probability: 1 / remaining });
  return match;
}
const LOOPBACK: Readonly<Record<IPFamily, string>> = { IPv4: '127.0.0.0/8', IPv6: '::1/128' };
/**
 * kube-proxy's largeClusterEndpointsThreshold: with more endpoints than this in a family, the per-endpoint rules
 * (balancing to SEP chains, the SEP chains' own) are written without comments, which makes the restore input and
 * the kernel's table about a third smaller. Service-level comments stay, and `kproxy plan` shows every comment.
 */
export const LARGE_CLUSTER_ENDPOINTS = 1000;

/** Everything the per-service compilation needs to know about the family and the settings. */
interface FamilyContext {
  readonly family: IPFamily;
  readonly masqMark: number;
  /** Cluster (pod) CIDRs of this family, canonical. */
  readonly clusterCidrs: readonly string[];
  readonly nodeIPs: readonly string[];
  /** More endpoints than LARGE_CLUSTER_ENDPOINTS: per-endpoint rules are written without comments. */
  readonly largeCluster: boolean;
  /** Everything above as one string: a memoised service output is reused only under the same context. */
  readonly key: string;
}

/** The dispatch chains a service adds rules to. */
const DISPATCH = {
  natServices: { table: 'nat', chain: TOP_CHAINS.services },
  natNodePorts: { table: 'nat', chain: TOP_CHAINS.nodePorts },
  filterServices: { table: 'filter', chain: TOP_CHAINS.services },
  filterExternal: { table: 'filter', chain: TOP_CHAINS.externalServices },
  filterFirewall: { table: 'filter', chain: TOP_CHAINS.firewall },
  filterNodePorts: { table: 'filter', chain: TOP_CHAINS.nodePorts },
} as const satisfies Record<string, DispatchChain>;
type DispatchSlot = keyof typeof DISPATCH;
const SLOTS = Object.keys(DISPATCH) as DispatchSlot[];
const DISPATCH_CHAINS: readonly DispatchChain[] = SLOTS.map((slot) => DISPATCH[slot]);

/** Rules of a service, gathered by the chain they go to. */
type Collector = { readonly [K in DispatchSlot]: Rule[] } & { readonly chains: Chain[] };

const collected = (out: Collector): ServiceRules => ({ dispatch: SLOTS.map((slot) => out[slot]), chains: out.chains });

function familyContext(state: DesiredState, family: IPFamily): FamilyContext {
  const plan = state.families[family];
  const masqMark = (1 << state.settings.masqueradeBit) >>> 0;
  const clusterCidrs = localCidrs(plan, family);
  const largeCluster = endpointCount(plan, family) > LARGE_CLUSTER_ENDPOINTS;
  return {
    family, masqMark, clusterCidrs, nodeIPs: plan.nodeIPs, largeCluster,
    key: [family, masqMark, clusterCidrs.join(','), plan.nodeIPs.join(','), largeCluster ? 'large' : ''].join('|'),
  };
}

/** Endpoints of every service port of the family, whatever their condition (as kube-proxy counts them). */
function endpointCount(plan: FamilyPlan, family: IPFamily): number {
  let count = 0;
  for (const service of plan.services) if (service.family === family) count += service.allEndpoints.length;
  return count;
}

/** The family's ruleset with its service rules left to compile on demand (see RulesetSource). */
export function compileSource(state: DesiredState, family: IPFamily): RulesetSource {
  const ctx = familyContext(state, family);
  const plan = state.families[family];
  const services = plan.services.filter((service) => service.family === family);
  return {
    family, contextKey: ctx.key, base: baseRuleset(ctx, plan, !state.settings.conntrackTcpLiberal), dispatch: DISPATCH_CHAINS, services,
    omitEndpointComments: ctx.largeCluster,
    compileService: (service) => {
      const out = emptyCollector();
      compileService(service, ctx, out);
      return collected(out);
    },
  };
}

/** Both families' sources, with the state they came from (what a sync applies). */
export function compileFamilies(state: DesiredState): CompiledFamilies<RulesetSource> {
  return { state, families: { IPv4: compileSource(state, 'IPv4'), IPv6: compileSource(state, 'IPv6') } };
}

/** The whole ruleset of one family, every rule materialised (for `kproxy plan`, the tracer and tests). */
export function compile(state: DesiredState, family: IPFamily): Ruleset {
  return materialize(compileSource(state, family));
}

/**
 * kube-proxy's safeguard against spurious resets (kubernetes#74839): a forwarded packet conntrack finds INVALID (out
 * of the TCP window, typically) would pass un-DNATed and reach a pod from the service IP's peer, which answers with
 * a reset that kills the connection. Dropped, and counted in the nfacct object kube-proxy uses for the metric.
 */
const DROP_INVALID: Rule = {
  matches: [{ kind: 'conntrack', states: ['INVALID'] }, { kind: 'nfacct', name: CT_STATE_INVALID_DROPPED }],
  target: { kind: 'DROP' }, comment: 'kproxy drops packets conntrack finds invalid (kubernetes#74839)',
};

/**
 * Every chain that is not per-service, with empty dispatch chains (but their tails), and the hooks. `dropInvalid`:
 * KPROXY-FORWARD starts with DROP_INVALID (unless the node's conntrack is liberal with TCP, as in kube-proxy).
 */
function baseRuleset(ctx: FamilyContext, plan: FamilyPlan, dropInvalid: boolean): Ruleset {
  const markRule: Rule = { matches: [{ kind: 'mark', value: ctx.masqMark, mask: ctx.masqMark }], target: { kind: 'ACCEPT' } };
  const natChains: Chain[] = [
    { kind: 'dispatch', name: TOP_CHAINS.services, rules: [], tail: nodePortJumps(plan, ctx.family) },
    { kind: 'dispatch', name: TOP_CHAINS.nodePorts, rules: [], tail: [] },
    { kind: 'plain', name: TOP_CHAINS.markMasq, rules: [{ matches: [], target: { kind: 'MARK', op: 'or', value: ctx.masqMark } }] },
    {
      kind: 'plain', name: TOP_CHAINS.postrouting, rules: [
        { matches: [{ kind: 'mark', value: ctx.masqMark, mask: ctx.masqMark, negate: true }], target: { kind: 'RETURN' } },
        // Clear the bit so a packet that is re-routed (e.g. through a tunnel) is not masqueraded twice.
        { matches: [], target: { kind: 'MARK', op: 'xor', value: ctx.masqMark } },
        { matches: [], target: { kind: 'MASQUERADE', randomFully: true }, comment: 'kproxy service traffic requiring SNAT' },
      ],
    },
    canaryChain(TOP_CHAINS.canary),
  ];
  if (ctx.clusterCidrs.length > 1) {
    natChains.push({
      kind: 'plain', name: TOP_CHAINS.markOffCluster, rules: [
        ...ctx.clusterCidrs.map((cidr): Rule => ({ matches: [{ kind: 'src', cidr }], target: { kind: 'RETURN' } })),
        { matches: [], target: JUMP_MARK_MASQ },
      ],
    });
  }
  const filterChains: Chain[] = [
    { kind: 'dispatch', name: TOP_CHAINS.services, rules: [], tail: [] },
    { kind: 'dispatch', name: TOP_CHAINS.externalServices, rules: [], tail: [] },
    { kind: 'dispatch', name: TOP_CHAINS.firewall, rules: [], tail: [] },
    { kind: 'dispatch', name: TOP_CHAINS.nodePorts, rules: [], tail: [] },
    {
      kind: 'plain', name: TOP_CHAINS.forward, rules: [
        ...(dropInvalid ? [DROP_INVALID] : []),
        { ...markRule, comment: 'kproxy forwarding rules' },
        {
          matches: [{ kind: 'conntrack', states: ['RELATED', 'ESTABLISHED'] }], target: { kind: 'ACCEPT' },
          comment: 'kproxy forwarding conntrack rule',
        },
      ],
    },
    canaryChain(TOP_CHAINS.canary),
  ];
  return {
    family: ctx.family,
    nat: { name: 'nat', chains: natChains, hooks: natHooks() },
    filter: { name: 'filter', chains: filterChains, hooks: filterHooks() },
  };
}

function emptyCollector(): Collector {
  return {
    natServices: [], natNodePorts: [], filterServices: [], filterExternal: [], filterFirewall: [], filterNodePorts: [],
    chains: [],
  };
}

function natHooks(): HookRule[] {
  const hook = (builtin: HookRule['builtin'], chain: string, comment: string): HookRule =>
    ({ table: 'nat', builtin, rule: { matches: [], target: jump(chain), comment } });
  return [
    hook('PREROUTING', TOP_CHAINS.services, 'kproxy service portals'),
    hook('OUTPUT', TOP_CHAINS.services, 'kproxy service portals'),
    hook('POSTROUTING', TOP_CHAINS.postrouting, 'kproxy postrouting rules'),
  ];
}

function filterHooks(): HookRule[] {
  const hook = (builtin: HookRule['builtin'], chain: string, comment: string, onlyNew: boolean): HookRule =>
    ({ table: 'filter', builtin, rule: { matches: onlyNew ? [NEW_CONN] : [], target: jump(chain), comment } });
  return [
    hook('INPUT', TOP_CHAINS.firewall, 'kproxy load balancer firewall', true),
    hook('INPUT', TOP_CHAINS.nodePorts, 'kproxy health check service ports', false),
    hook('INPUT', TOP_CHAINS.externalServices, 'kproxy externally-visible service portals', true),
    hook('FORWARD', TOP_CHAINS.firewall, 'kproxy load balancer firewall', true),
    hook('FORWARD', TOP_CHAINS.forward, 'kproxy forwarding rules', false),
    hook('FORWARD', TOP_CHAINS.services, 'kproxy service portals', true),
    hook('FORWARD', TOP_CHAINS.externalServices, 'kproxy externally-visible service portals', true),
    hook('OUTPUT', TOP_CHAINS.firewall, 'kproxy load balancer firewall', true),
    hook('OUTPUT', TOP_CHAINS.services, 'kproxy service portals', true),
  ];
}

function localCidrs(plan: FamilyPlan, family: IPFamily): string[] {
  if (plan.localDetector.kind !== 'ClusterCIDR') return [];
  const out: string[] = [];
  for (const text of plan.localDetector.cidrs) {
    const cidr = parseCidr(text);
    if (cidr && cidr.family === family && !out.includes(cidr.text)) out.push(cidr.text);
  }
  return out;
}

/**
 * The tail of nat KPROXY-SERVICES: NodePorts answer on local destinations ('all') or on the listed ones, never on
 * loopback (CVE-2020-8558: that would need route_localnet and expose NodePorts to the node's neighbours).
 */
function nodePortJumps(plan: FamilyPlan, family: IPFamily): Rule[] {
  const comment = 'kproxy service nodeports; NOTE: this must be the last rule in this chain';
  const allLocal: Rule = {
    matches: [{ kind: 'dst', cidr: LOOPBACK[family], negate: true }, { kind: 'addrtype', direction: 'dst', type: 'LOCAL' }],
    target: jump(TOP_CHAINS.nodePorts), comment,
  };
  if (plan.nodePortAddresses === 'all') return [allLocal];
  const loopback = family === 'IPv4' ? '127.0.0.1' : '::1';
  const rules: Rule[] = [];
  const seen = new Set<string>();
  for (const text of plan.nodePortAddresses) {
    const cidr = parseCidr(text);
    if (!cidr || cidr.family !== family || seen.has(cidr.text)) continue;
    seen.add(cidr.text);
    const loop = parseCidr(LOOPBACK[family]);
    if (loop && cidrContains(loop, cidr.network) && cidr.prefix >= loop.prefix) continue; // loopback itself: never
    // A range wider than loopback that covers it (e.g. 0.0.0.0/0) means "every local address", loopback excluded.
    if (cidrContains(cidr, loopback)) return [allLocal];
    rules.push({
      matches: [{ kind: 'dst', cidr: cidr.text }, { kind: 'addrtype', direction: 'dst', type: 'LOCAL' }],
      target: jump(TOP_CHAINS.nodePorts), comment,
    });
  }
  return rules;
}

/** "ip/32" or "ip/128"; addresses come canonical from compute, so no parsing beyond the family check. */
function hostCidr(ip: string, family: IPFamily): string | undefined {
  if (family === 'IPv4') return isIPv4(ip) ? `${ip}/32` : undefined;
  return isIPv6(ip) && !ip.includes('%') ? `${ip}/128` : undefined;
}

function compileService(service: ServicePortPlan, ctx: FamilyContext, out: Collector): void {
  const names = serviceChainNames(service.key, service.protocol);
  const key = service.key;
  const { clusterIP: internal, external } = service.routes;
  const hasCluster = internal.endpoints.length > 0;
  // One balancing chain per distinct endpoint set: SVC for the ClusterIP's; external frontends reuse it when policy
  // gives pods and the node the same set, else SVX (the cluster-wide set under ITP Local); outside traffic with a
  // route of its own (ETP Local) balances in SVL.
  const targets = external ? externalTargets(external, internal, names) : undefined;
  const usesExt = targets !== undefined && (targets.fromCluster !== undefined || targets.fromOutside !== undefined);
  const lbIPs = service.frontends.flatMap((f) => (f.kind === 'LoadBalancer' ? [f.ip] : []));
  const sourceRanges = service.sourceRanges.flatMap((r) => {
    const cidr = parseCidr(r);
    return cidr && cidr.family === ctx.family ? [cidr.text] : [];
  });
  // As upstream: the FW chain exists whenever the service has endpoints, even when policy leaves none for outside
  // traffic (allowed pod/node sources are still short-circuited by EXT).
  const usesFw = usesExt && sourceRanges.length > 0 && lbIPs.length > 0;

  for (const frontend of service.frontends) {
    compileFrontend(frontend, { service, names, ctx, out, usesExt, usesFw });
  }
  if (service.healthCheckNodePort !== undefined && service.healthCheckNodePort > 0) {
    out.filterNodePorts.push({
      matches: [{ kind: 'protocol', protocol: 'TCP', dport: service.healthCheckNodePort }],
      target: { kind: 'ACCEPT' }, comment: `${key} health check node port`,
    });
  }

  // How the balancing chains reach endpoints (shared by SVC, SVX and SVL): see the header.
  const podShortCircuit = external && external.fromOutside !== external.fromCluster ? targets?.fromCluster : undefined;
  const reach = endpointReach(service, ctx, names);
  const balanced = (chain: string, route: Route): Chain =>
    ({ kind: 'plain', name: chain, rules: balance(service, route, ctx, reach, chain === podShortCircuit) });
  if (hasCluster) {
    const clusterIPMatches = clusterIPMatch(service, ctx);
    const masq = clusterIPMatches ? masqueradeRules(internal.masquerade, clusterIPMatches, ctx, `${key} cluster IP`) : [];
    const chain = balanced(names.svc, internal);
    out.chains.push({ ...chain, rules: [...masq, ...chain.rules] });
  }
  if (external && targets?.fromCluster === names.svx) out.chains.push(balanced(names.svx, external.fromCluster));
  if (external && targets?.fromOutside === names.svl) out.chains.push(balanced(names.svl, external.fromOutside));
  if (external && targets && usesExt) {
    out.chains.push({ kind: 'plain', name: names.ext, rules: externalChainRules(service, external, targets, ctx) });
  }
  if (usesFw) {
    const rules: Rule[] = sourceRanges.map((cidr) => ({ matches: [{ kind: 'src', cidr }], target: jump(names.ext), comment: `${key} loadbalancer IP` }));
    // The node reaching its own LB IP arrives with the LB IP as source; let it through when ranges cover the node.
    const nodeAllowed = ctx.nodeIPs.some((ip) => sourceRanges.some((r) => { const c = parseCidr(r); return c ? cidrContains(c, ip) : false; }));
    if (nodeAllowed) {
      for (const ip of lbIPs) {
        const cidr = hostCidr(ip, ctx.family);
        if (cidr) rules.push({ matches: [{ kind: 'src', cidr }], target: jump(names.ext), comment: `${key} loadbalancer IP` });
      }
    }
    out.chains.push({ kind: 'plain', name: names.fw, rules });
  }
  out.chains.push(...reach.chains());
  sepNames.delete(service);
}

/** The balancing chain each external route jumps to (undefined: its set is empty). */
interface ExternalTargets {
  readonly fromCluster: string | undefined;
  readonly fromOutside: string | undefined;
}

function externalTargets(external: ExternalRoutes, internal: Route, names: ServiceChainNames): ExternalTargets {
  const { fromCluster, fromOutside } = external;
  const clusterChain = fromCluster.endpoints.length === 0 ? undefined : fromCluster.endpoints === internal.endpoints ? names.svc : names.svx;
  if (fromOutside === fromCluster) return { fromCluster: clusterChain, fromOutside: clusterChain };
  return { fromCluster: clusterChain, fromOutside: fromOutside.endpoints.length === 0 ? undefined : names.svl };
}

const FROM_NODE: Match = { kind: 'addrtype', direction: 'src', type: 'LOCAL' };

/** Rules that mark for masquerade the packets among those matching `matches` that `policy` names. */
function masqueradeRules(policy: MasqueradePolicy, matches: readonly Match[], ctx: FamilyContext, comment: string): Rule[] {
  switch (policy) {
    case 'never': return [];
    case 'always': return [{ matches, target: JUMP_MARK_MASQ, comment }];
    case 'node-originated': return [{ matches: [FROM_NODE, ...matches], target: JUMP_MARK_MASQ, comment }];
    case 'off-cluster': {
      const [only, ...more] = ctx.clusterCidrs;
      if (only === undefined) return []; // no local-traffic detector: nothing counts as off-cluster
      if (more.length === 0) return [{ matches: [{ kind: 'src', cidr: only, negate: true }, ...matches], target: JUMP_MARK_MASQ, comment }];
      return [{ matches, target: jump(TOP_CHAINS.markOffCluster), comment }];
    }
  }
}

function clusterIPMatch(service: ServicePortPlan, ctx: FamilyContext): Match[] | undefined {
  const frontend = service.frontends.find((f) => f.kind === 'ClusterIP');
  if (!frontend || frontend.kind !== 'ClusterIP') return undefined;
  const cidr = hostCidr(frontend.ip, ctx.family);
  return cidr ? [{ kind: 'dst', cidr }, { kind: 'protocol', protocol: service.protocol, dport: frontend.port }] : undefined;
}

interface FrontendInput {
  readonly service: ServicePortPlan;
  readonly names: ServiceChainNames;
  readonly ctx: FamilyContext;
  readonly out: Collector;
  readonly usesExt: boolean;
  readonly usesFw: boolean;
}

/** The filter rule for traffic a route has no endpoint for: refused at once, or dropped (policy left none here). */
function unusable(route: Route, key: string): { target: Target; comment: string } {
  return route.whenEmpty === 'drop'
    ? { target: { kind: 'DROP' }, comment: `${key} has no local endpoints` }
    : { target: { kind: 'REJECT' }, comment: `${key} has no endpoints` };
}

function compileFrontend(frontend: Frontend, input: FrontendInput): void {
  const { service, names, ctx, out } = input;
  const key = service.key;
  const { clusterIP: internal, external } = service.routes;
  // Outside traffic that no rule DNATed (its route is empty) is refused or dropped in filter; pods and the node were
  // DNATed by EXT already, if their route has endpoints.
  const outsideEmpty = external !== undefined && external.fromOutside.endpoints.length === 0 ? external.fromOutside : undefined;
  if (frontend.kind === 'NodePort') {
    const portMatch: Match = { kind: 'protocol', protocol: service.protocol, dport: frontend.port };
    if (input.usesExt) out.natNodePorts.push({ matches: [portMatch], target: jump(names.ext), comment: key });
    if (outsideEmpty) {
      const { target, comment } = unusable(outsideEmpty, key);
      out.filterExternal.push({ matches: [{ kind: 'addrtype', direction: 'dst', type: 'LOCAL' }, portMatch], target, comment });
    }
    return;
  }
  const cidr = hostCidr(frontend.ip, ctx.family);
  if (!cidr) return;
  const matches: Match[] = [{ kind: 'dst', cidr }, { kind: 'protocol', protocol: service.protocol, dport: frontend.port }];
  if (frontend.kind === 'ClusterIP') {
    if (internal.endpoints.length > 0) out.natServices.push({ matches, target: jump(names.svc), comment: `${key} cluster IP` });
    else {
      const { target, comment } = unusable(internal, key);
      out.filterServices.push({ matches, target, comment });
    }
    return;
  }
  const label = frontend.kind === 'ExternalIP' ? 'external IP' : 'loadbalancer IP';
  const sourceRestricted = frontend.kind === 'LoadBalancer' && input.usesFw;
  // EXT is entered whenever some route of these frontends has endpoints: even with none for outside traffic (ETP
  // Local, none here), it short-circuits pod and node traffic to the cluster-wide set; the filter rule below drops the rest.
  if (input.usesExt) {
    out.natServices.push({ matches, target: jump(sourceRestricted ? names.fw : names.ext), comment: `${key} ${label}` });
  }
  if (outsideEmpty) {
    const { target, comment } = unusable(outsideEmpty, key);
    out.filterExternal.push({ matches, target, comment });
  }
  if (sourceRestricted) {
    // What FW-<hash> did not accept was not DNATed and still has the LB IP as destination.
    out.filterFirewall.push({ matches, target: { kind: 'DROP' }, comment: `${key} traffic not accepted by ${names.fw}` });
  }
}

/** EXT-<hash>: external destinations, for the routes of outside traffic and of pods and the node. */
function externalChainRules(service: ServicePortPlan, external: ExternalRoutes, targets: ExternalTargets, ctx: FamilyContext): Rule[] {
  const key = service.key;
  const rules: Rule[] = [];
  if (external.fromOutside === external.fromCluster) {
    // One route whatever the source (ETP Cluster).
    rules.push(...masqueradeRules(external.fromOutside.masquerade, [], ctx, `masquerade traffic for ${key} external destinations`));
    if (targets.fromOutside !== undefined) rules.push({ matches: [], target: jump(targets.fromOutside) });
    return rules;
  }
  const shortCircuit = targets.fromCluster;
  if (shortCircuit !== undefined) {
    // Pods reaching an external destination behave as if they went out to a load balancer and came back:
    // no traffic policy applies to them.
    const { masquerade } = external.fromCluster;
    for (const cidr of ctx.clusterCidrs) {
      const fromPods: Match = { kind: 'src', cidr };
      if (masquerade === 'always') rules.push({ matches: [fromPods], target: JUMP_MARK_MASQ, comment: `masquerade pod traffic for ${key} external destinations` });
      rules.push({ matches: [fromPods], target: jump(shortCircuit), comment: `pod traffic for ${key} external destinations` });
    }
    // The node itself talks from an address the endpoints may not route back to: masquerade it.
    if (masquerade !== 'never') {
      rules.push({ matches: [FROM_NODE], target: JUMP_MARK_MASQ, comment: `masquerade LOCAL traffic for ${key} external destinations` });
    }
    rules.push({ matches: [FROM_NODE], target: jump(shortCircuit), comment: `route LOCAL traffic for ${key} external destinations` });
  }
  if (targets.fromOutside !== undefined) {
    rules.push(...masqueradeRules(external.fromOutside.masquerade, [], ctx, `masquerade traffic for ${key} external destinations`));
    rules.push({ matches: [], target: jump(targets.fromOutside) });
  }
  return rules;
}

/** How a service's balancing rules reach an endpoint once it is picked, and the chains that takes. */
interface EndpointReach {
  /** The rules that send a packet matching `pick` to `ep`; `guardAll`: guard every endpoint (hairpin). */
  pick(ep: Endpoint, pick: readonly Match[], comment: string, guardAll: boolean): Rule[];
  /** ClientIP affinity: the check that sends a client back to `ep` (only through endpoint chains). */
  recentCheck?(ep: Endpoint, seconds: number, comment: string): Rule;
  /** The chains the picks jump to. */
  chains(): Chain[];
}

/** SEP chains where a DNAT is not enough (affinity, or guarded endpoints sharing an IP); else DNAT in place. */
function endpointReach(service: ServicePortPlan, ctx: FamilyContext, names: ServiceChainNames): EndpointReach {
  const { clusterIP: internal, external } = service.routes;
  const routes = [internal, ...(external ? [external.fromCluster, external.fromOutside] : [])];
  const ips = new Map<string, number>();
  for (const ep of new Set(routes.flatMap((r) => r.endpoints))) ips.set(ep.ip, (ips.get(ep.ip) ?? 0) + 1);
  const sharedIP = [...ips.values()].some((count) => count > 1);
  return routes.some((r) => r.affinity) || sharedIP ? viaEndpointChains(service, ctx) : inPlace(service, ctx, names);
}

function viaEndpointChains(service: ServicePortPlan, ctx: FamilyContext): EndpointReach {
  const chains = new Map<string, Chain>();
  const chainOf = (ep: Endpoint): string => {
    const name = sepName(service, joinEndpoint(ep, ctx.family));
    if (!chains.has(name)) chains.set(name, endpointChain(service, ep, name, ctx));
    return name;
  };
  return {
    pick: (ep, pick, comment) => [{ matches: pick, target: jump(chainOf(ep)), comment, perEndpoint: true }],
    recentCheck: (ep, seconds, comment) => {
      const chain = chainOf(ep);
      return { matches: [{ kind: 'recent', mode: 'check', name: chain, seconds, reap: true }], target: jump(chain), comment, perEndpoint: true };
    },
    chains: () => [...chains.values()],
  };
}

function inPlace(service: ServicePortPlan, ctx: FamilyContext, names: ServiceChainNames): EndpointReach {
  const protocol = PROTOCOL_ONLY[service.protocol];
  const dnat = (ep: Endpoint): Target => ({ kind: 'DNAT', ip: ep.ip, port: ep.port });
  const hairpin = new Map<string, Rule>();
  const mayBeOwnClient = (ep: Endpoint): boolean => ep.local || ep.nodeName === undefined || ctx.nodeIPs.includes(ep.ip);
  return {
    pick: (ep, pick, comment, guardAll) => {
      const src = hostCidr(ep.ip, ctx.family) as string; // balance() keeps only endpoints of this family
      if (!guardAll && !mayBeOwnClient(ep)) return [{ matches: [...pick, protocol], target: dnat(ep), comment, perEndpoint: true }];
      if (!hairpin.has(ep.ip)) hairpin.set(ep.ip, { matches: [{ kind: 'src', cidr: src }, protocol], target: dnat(ep), comment, perEndpoint: true });
      return [
        { matches: [{ kind: 'src', cidr: src }, ...pick], target: jump(names.hairpin), comment: `${comment} (hairpin)`, perEndpoint: true },
        { matches: [{ kind: 'src', cidr: src, negate: true }, ...pick, protocol], target: dnat(ep), comment, perEndpoint: true },
      ];
    },
    chains: () => (hairpin.size === 0 ? [] : [{
      kind: 'plain', name: names.hairpin,
      rules: [{ matches: [], target: JUMP_MARK_MASQ, comment: `${service.key} hairpin` }, ...hairpin.values()],
    }]),
  };
}

/** Session affinity first (a client seen recently goes back to its endpoint), then an even random split. */
function balance(service: ServicePortPlan, route: Route, ctx: FamilyContext, reach: EndpointReach, guardAll: boolean): Rule[] {
  const usable = route.endpoints.filter((ep) => hostCidr(ep.ip, ctx.family) !== undefined);
  const rules: Rule[] = [];
  const comment = (ep: Endpoint): string => `${service.key} -> ${joinEndpoint(ep, ctx.family)}`;
  if (route.affinity && reach.recentCheck) {
    for (const ep of usable) rules.push(reach.recentCheck(ep, route.affinity.timeoutSeconds, comment(ep)));
  }
  usable.forEach((ep, i) => {
    const remaining = usable.length - i;
    rules.push(...reach.pick(ep, remaining > 1 ? [pickOneOf(remaining)] : [], comment(ep), guardAll));
  });
  return rules;
}

// Endpoint chain names are needed up to three times per endpoint (affinity, split, the chain itself): hash once
// per compileService call (the entry is dropped when the service is done).
const sepNames = new WeakMap<ServicePortPlan, Map<string, string>>();
function sepName(service: ServicePortPlan, endpoint: string): string {
  let names = sepNames.get(service);
  if (!names) sepNames.set(service, names = new Map());
  let name = names.get(endpoint);
  if (name === undefined) names.set(endpoint, name = endpointChainName(service.key, service.protocol, endpoint));
  return name;
}

function joinEndpoint(ep: Endpoint, family: IPFamily): string {
  return family === 'IPv6' ? `[${ep.ip}]:${ep.port}` : `${ep.ip}:${ep.port}`;
}

function endpointChain(service: ServicePortPlan, ep: Endpoint, name: string, ctx: FamilyContext): Chain {
  const src = hostCidr(ep.ip, ctx.family) as string; // balance() keeps only endpoints of this family
  const dnatMatches: Match[] = [PROTOCOL_ONLY[service.protocol]];
  if (service.routes.clusterIP.affinity) dnatMatches.push({ kind: 'recent', mode: 'set', name });
  return {
    kind: 'plain', name, rules: [
      // Hairpin: an endpoint reaching itself through the service must see the node as the source.
      { matches: [{ kind: 'src', cidr: src }], target: JUMP_MARK_MASQ, comment: service.key, perEndpoint: true },
      { matches: dnatMatches, target: { kind: 'DNAT', ip: ep.ip, port: ep.port }, comment: service.key, perEndpoint: true },
    ],
  };
}
