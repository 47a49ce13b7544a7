// compile(state, family): the desired state → the typed iptables ruleset of one IP family. Pure.
//
// Layout (kube-proxy's proven structure, with kproxy's own KPROXY- chains):
//   nat PREROUTING/OUTPUT → KPROXY-SERVICES: one rule per service frontend (ClusterIP → SVC, externalIP → EXT,
//     LB IP → FW or EXT), then — last — the jump to KPROXY-NODEPORTS for local destinations (never loopback).
//   SVC-<hash>: masquerade off-cluster traffic to the ClusterIP, session affinity (`recent`), then a
//     `statistic` split over SEP chains. SVL-<hash>: the same split over local endpoints only (ETP Local).
//   EXT-<hash>: external destinations: mark for masquerade (policy Cluster), or short-circuit pod/node traffic
//     to SVC and send the rest to SVL (policy Local). FW-<hash>: loadBalancerSourceRanges.
//   SEP-<hash>: hairpin masquerade + DNAT (and the affinity `recent --set`).
//   nat POSTROUTING → KPROXY-POSTROUTING masquerades what was marked (bit from settings).
//   filter: KPROXY-SERVICES / KPROXY-EXTERNAL-SERVICES reject (no endpoints) or drop (policy forbids),
//     KPROXY-FIREWALL drops what FW did not accept, KPROXY-FORWARD accepts marked and established flows,
//     KPROXY-NODEPORTS accepts health-check node ports.
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
import type { DesiredState, Endpoint, FamilyPlan, Frontend, IPFamily, Protocol, ServicePortPlan } from '../../src/model/types.ts';
import { isIPv4, isIPv6 } from 'node:net';
import { cidrContains, parseCidr } from '../../src/util/ip.ts';
import { endpointChainName, serviceChainNames, TOP_CHAINS } from './names.ts';
import type { Chain, HookRule, Match, Rule, Ruleset, RulesetSource, ServiceRules, Table, Target } from './ruleset.ts';
import { DISPATCH_SLOTS } from './ruleset.ts';

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

/** Everything the per-service compilation needs to know about the family and the settings. */
interface FamilyContext {
  readonly family: IPFamily;
  readonly masqMark: number;
  readonly masqueradeAll: boolean;
  /** Cluster (pod) CIDRs of this family, canonical. */
  readonly clusterCidrs: readonly string[];
  readonly nodeIPs: readonly string[];
  /** Everything above as one string: a memoised service output is reused only under the same context. */
  readonly key: string;
}

/** Rules of a service (or of every service), gathered by the chain they go to. */
type Collector = { -readonly [K in keyof ServiceRules]: Rule[] } & { readonly chains: Chain[] };

function familyContext(state: DesiredState, family: IPFamily): FamilyContext {
  const plan = state.families[family];
  const masqMark = (1 << state.settings.masqueradeBit) >>> 0;
  const clusterCidrs = localCidrs(plan, family);
  return {
    family, masqMark, masqueradeAll: state.settings.masqueradeAll, clusterCidrs, nodeIPs: plan.nodeIPs,
    key: [family, masqMark, state.settings.masqueradeAll, clusterCidrs.join(','), plan.nodeIPs.join(',')].join('|'),
  };
}

/** The family's ruleset with its service rules left to compile on demand (see RulesetSource). */
export function compileSource(state: DesiredState, family: IPFamily): RulesetSource {
  const ctx = familyContext(state, family);
  const plan = state.families[family];
  const services = plan.services.filter((service) => service.family === family);
  return {
    family, contextKey: ctx.key, base: baseRuleset(ctx, plan), services,
    compileService: (service) => {
      const out = emptyCollector();
      compileService(service, ctx, out);
      return out;
    },
  };
}

/** The whole ruleset of one family, every rule materialised (for `kproxy plan`, the tracer and tests). */
export function compile(state: DesiredState, family: IPFamily): Ruleset {
  return materialize(compileSource(state, family));
}

export function materialize(source: RulesetSource): Ruleset {
  const all = emptyCollector();
  for (const service of source.services) {
    const rules = source.compileService(service);
    for (const { slot } of DISPATCH_SLOTS) for (const rule of rules[slot]) all[slot].push(rule); // loops: no spread of 100k+ items
    for (const chain of rules.chains) all.chains.push(chain);
  }
  const filled = (table: Table): Table => {
    const chains: Chain[] = table.chains.map((chain) => {
      const slot = DISPATCH_SLOTS.find((d) => d.table === table.name && d.chain === chain.name)?.slot;
      return chain.kind === 'dispatch' && slot ? { ...chain, rules: all[slot] } : chain;
    });
    if (table.name === 'nat') for (const chain of all.chains) chains.push(chain);
    return { ...table, chains };
  };
  const { base } = source;
  return { family: base.family, nat: filled(base.nat), filter: filled(base.filter) };
}

/** Every chain that is not per-service, with empty dispatch chains (but their tails), and the hooks. */
function baseRuleset(ctx: FamilyContext, plan: FamilyPlan): Ruleset {
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
        { ...markRule, comment: 'kproxy forwarding rules' },
        {
          matches: [{ kind: 'conntrack', states: ['RELATED', 'ESTABLISHED'] }], target: { kind: 'ACCEPT' },
          comment: 'kproxy forwarding conntrack rule',
        },
      ],
    },
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
  const proto = service.protocol;
  const key = service.key;
  const externalFrontends = service.frontends.filter((f) => f.kind !== 'ClusterIP');
  const hasCluster = service.clusterEndpoints.length > 0;
  const hasLocal = service.localEndpoints.length > 0;
  // ITP Local with external frontends: those keep the cluster-wide set (SVX), in-cluster ClusterIP traffic gets SVC.
  const externalCluster = service.externalClusterEndpoints;
  const hasExternalCluster = externalCluster ? externalCluster.length > 0 : hasCluster;
  const hasExternal = service.externalPolicyLocal ? hasLocal : hasExternalCluster;
  const hasAny = service.hasEndpoints || hasCluster || hasLocal || hasExternalCluster;
  const usesExt = hasAny && externalFrontends.length > 0;
  const usesSvl = usesExt && service.externalPolicyLocal && hasLocal;
  const lbIPs = service.frontends.flatMap((f) => (f.kind === 'LoadBalancer' ? [f.ip] : []));
  const sourceRanges = service.sourceRanges.flatMap((r) => {
    const cidr = parseCidr(r);
    return cidr && cidr.family === ctx.family ? [cidr.text] : [];
  });
  // As upstream: the FW chain exists whenever the service has endpoints, even when policy leaves none for outside
  // traffic (allowed pod/node sources are still short-circuited by EXT).
  const usesFw = usesExt && sourceRanges.length > 0 && lbIPs.length > 0;
  // Pod/node traffic to an external frontend under ETP Local goes to the cluster-wide set (SVX under ITP Local).
  const shortCircuit = externalCluster ? (hasExternalCluster ? names.svx : undefined) : (hasCluster ? names.svc : undefined);
  // When no endpoint may take the traffic: refuse at once if the service has none, drop if policy forbids.
  const unusable = (local: boolean): { target: Target; comment: string } => hasAny
    ? { target: { kind: 'DROP' }, comment: `${key} has no ${local ? 'local ' : ''}endpoints` }
    : { target: { kind: 'REJECT' }, comment: `${key} has no endpoints` };

  for (const frontend of service.frontends) {
    compileFrontend(frontend, { service, names, ctx, out, hasCluster, hasExternal, usesExt, usesFw, unusable });
  }
  if (service.healthCheckNodePort !== undefined && service.healthCheckNodePort > 0) {
    out.filterNodePorts.push({
      matches: [{ kind: 'protocol', protocol: 'TCP', dport: service.healthCheckNodePort }],
      target: { kind: 'ACCEPT' }, comment: `${key} health check node port`,
    });
  }

  // Endpoint chains are shared by SVC and SVL.
  const endpointChains = new Map<string, Chain>();
  const addEndpointChains = (endpoints: readonly Endpoint[]): void => {
    for (const ep of endpoints) {
      const chain = endpointChain(service, ep, ctx);
      if (chain && !endpointChains.has(chain.name)) endpointChains.set(chain.name, chain);
    }
  };
  if (hasCluster) {
    const clusterIPMatches = clusterIPMatch(service, ctx);
    const masq: Rule[] = [];
    if (clusterIPMatches) {
      const comment = `${key} cluster IP`;
      if (ctx.masqueradeAll) masq.push({ matches: clusterIPMatches, target: jump(TOP_CHAINS.markMasq), comment });
      else if (ctx.clusterCidrs.length === 1 && ctx.clusterCidrs[0] !== undefined) {
        masq.push({
          matches: [{ kind: 'src', cidr: ctx.clusterCidrs[0], negate: true }, ...clusterIPMatches],
          target: jump(TOP_CHAINS.markMasq), comment,
        });
      } else if (ctx.clusterCidrs.length > 1) {
        masq.push({ matches: clusterIPMatches, target: jump(TOP_CHAINS.markOffCluster), comment });
      }
    }
    out.chains.push({ kind: 'plain', name: names.svc, rules: [...masq, ...balance(service, service.clusterEndpoints, ctx)] });
    addEndpointChains(service.clusterEndpoints);
  }
  if (usesExt && externalCluster && hasExternalCluster) {
    out.chains.push({ kind: 'plain', name: names.svx, rules: balance(service, externalCluster, ctx) });
    addEndpointChains(externalCluster);
  }
  if (usesSvl) {
    out.chains.push({ kind: 'plain', name: names.svl, rules: balance(service, service.localEndpoints, ctx) });
    addEndpointChains(service.localEndpoints);
  }
  if (usesExt) out.chains.push({ kind: 'plain', name: names.ext, rules: externalChainRules(service, ctx, shortCircuit, usesSvl) });
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
  for (const c of endpointChains.values()) out.chains.push(c);
  sepNames.delete(service);
}

function clusterIPMatch(service: ServicePortPlan, ctx: FamilyContext): Match[] | undefined {
  const frontend = service.frontends.find((f) => f.kind === 'ClusterIP');
  if (!frontend || frontend.kind !== 'ClusterIP') return undefined;
  const cidr = hostCidr(frontend.ip, ctx.family);
  return cidr ? [{ kind: 'dst', cidr }, { kind: 'protocol', protocol: service.protocol, dport: frontend.port }] : undefined;
}

interface FrontendInput {
  readonly service: ServicePortPlan;
  readonly names: ReturnType<typeof serviceChainNames>;
  readonly ctx: FamilyContext;
  readonly out: Collector;
  readonly hasCluster: boolean;
  readonly hasExternal: boolean;
  readonly usesExt: boolean;
  readonly usesFw: boolean;
  readonly unusable: (local: boolean) => { target: Target; comment: string };
}

function compileFrontend(frontend: Frontend, input: FrontendInput): void {
  const { service, names, ctx, out } = input;
  const key = service.key;
  if (frontend.kind === 'NodePort') {
    const portMatch: Match = { kind: 'protocol', protocol: service.protocol, dport: frontend.port };
    if (input.usesExt) out.natNodePorts.push({ matches: [portMatch], target: jump(names.ext), comment: key });
    if (!input.hasExternal) {
      const { target, comment } = input.unusable(service.externalPolicyLocal);
      out.filterExternal.push({ matches: [{ kind: 'addrtype', direction: 'dst', type: 'LOCAL' }, portMatch], target, comment });
    }
    return;
  }
  const cidr = hostCidr(frontend.ip, ctx.family);
  if (!cidr) return;
  const matches: Match[] = [{ kind: 'dst', cidr }, { kind: 'protocol', protocol: service.protocol, dport: frontend.port }];
  if (frontend.kind === 'ClusterIP') {
    if (input.hasCluster) out.natServices.push({ matches, target: jump(names.svc), comment: `${key} cluster IP` });
    else {
      const { target, comment } = input.unusable(service.internalPolicyLocal);
      out.filterServices.push({ matches, target, comment });
    }
    return;
  }
  const label = frontend.kind === 'ExternalIP' ? 'external IP' : 'loadbalancer IP';
  const sourceRestricted = frontend.kind === 'LoadBalancer' && input.usesFw;
  // EXT is entered whenever the service has endpoints: even with none for outside traffic (ETP Local, none here),
  // it short-circuits pod and node traffic to the cluster-wide set; the filter rule below drops the rest.
  if (input.usesExt) {
    out.natServices.push({ matches, target: jump(sourceRestricted ? names.fw : names.ext), comment: `${key} ${label}` });
  }
  if (!input.hasExternal) {
    const { target, comment } = input.unusable(service.externalPolicyLocal);
    out.filterExternal.push({ matches, target, comment });
  }
  if (sourceRestricted) {
    // What FW-<hash> did not accept was not DNATed and still has the LB IP as destination.
    out.filterFirewall.push({ matches, target: { kind: 'DROP' }, comment: `${key} traffic not accepted by ${names.fw}` });
  }
}

function externalChainRules(service: ServicePortPlan, ctx: FamilyContext, shortCircuit: string | undefined, usesSvl: boolean): Rule[] {
  const key = service.key;
  const names = serviceChainNames(key, service.protocol);
  const rules: Rule[] = [];
  if (!service.externalPolicyLocal) {
    rules.push({ matches: [], target: jump(TOP_CHAINS.markMasq), comment: `masquerade traffic for ${key} external destinations` });
    if (shortCircuit !== undefined) rules.push({ matches: [], target: jump(shortCircuit) });
    return rules;
  }
  if (shortCircuit !== undefined) {
    // Pods reaching an external destination behave as if they went out to a load balancer and came back:
    // no traffic policy applies to them.
    for (const cidr of ctx.clusterCidrs) {
      rules.push({ matches: [{ kind: 'src', cidr }], target: jump(shortCircuit), comment: `pod traffic for ${key} external destinations` });
    }
    // The node itself talks from an address the endpoints may not route back to: masquerade it.
    const fromNode: Match = { kind: 'addrtype', direction: 'src', type: 'LOCAL' };
    rules.push({ matches: [fromNode], target: jump(TOP_CHAINS.markMasq), comment: `masquerade LOCAL traffic for ${key} external destinations` });
    rules.push({ matches: [fromNode], target: jump(shortCircuit), comment: `route LOCAL traffic for ${key} external destinations` });
  }
  if (usesSvl) rules.push({ matches: [], target: jump(names.svl) });
  return rules;
}

/** Session affinity first (a client seen recently goes back to its endpoint), then an even random split. */
function balance(service: ServicePortPlan, endpoints: readonly Endpoint[], ctx: FamilyContext): Rule[] {
  const usable = endpoints.filter((ep) => hostCidr(ep.ip, ctx.family) !== undefined);
  const rules: Rule[] = [];
  const target = (ep: Endpoint): { chain: string; comment: string } => {
    const text = joinEndpoint(ep, ctx.family);
    return { chain: sepName(service, text), comment: `${service.key} -> ${text}` };
  };
  if (service.affinity) {
    for (const ep of usable) {
      const { chain, comment } = target(ep);
      rules.push({
        matches: [{ kind: 'recent', mode: 'check', name: chain, seconds: service.affinity.timeoutSeconds, reap: true }],
        target: jump(chain), comment,
      });
    }
  }
  usable.forEach((ep, i) => {
    const { chain, comment } = target(ep);
    const remaining = usable.length - i;
    const matches: Match[] = remaining > 1 ? [pickOneOf(remaining)] : [];
    rules.push({ matches, target: jump(chain), comment });
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

function endpointChain(service: ServicePortPlan, ep: Endpoint, ctx: FamilyContext): Chain | undefined {
  const src = hostCidr(ep.ip, ctx.family);
  if (!src) return undefined;
  const name = sepName(service, joinEndpoint(ep, ctx.family));
  const dnatMatches: Match[] = [PROTOCOL_ONLY[service.protocol]];
  if (service.affinity) dnatMatches.push({ kind: 'recent', mode: 'set', name });
  return {
    kind: 'plain', name, rules: [
      // Hairpin: an endpoint reaching itself through the service must see the node as the source.
      { matches: [{ kind: 'src', cidr: src }], target: JUMP_MARK_MASQ, comment: service.key },
      { matches: dnatMatches, target: { kind: 'DNAT', ip: ep.ip, port: ep.port }, comment: service.key },
    ],
  };
}
