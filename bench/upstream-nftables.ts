// The benchmark's baseline: the same cluster in a layout shaped like upstream kube-proxy's nftables mode (v1.34,
// pkg/proxy/nftables): a chain per service port and per endpoint, each service picking its endpoint with
// `numgen random mod N vmap { … }` (an anonymous map per service), per-endpoint affinity sets, the same dispatch
// maps. Written from the routes, like kproxy's own layout, so both load the very same services and endpoints.
// Benchmark code only: nothing in the agent uses it.
import { hash } from 'node:crypto';
import type { DesiredState, Endpoint, IPFamily, Route, ServicePortPlan } from '../src/model/types.ts';
import { ipFamily } from '../src/util/ip.ts';

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
function hash8(text: string): string {
  const digest = hash('sha256', text, 'buffer');
  let out = '';
  for (let i = 0; i < 8; i++) out += BASE32[(digest[i] ?? 0) & 31];
  return out;
}

/** The whole transaction for one family, as upstream's first sync would write it (one `nft -f`). */
export function upstreamTransaction(state: DesiredState, family: IPFamily): string {
  const plan = state.families[family];
  const ipx = family === 'IPv4' ? 'ip' : 'ip6';
  const addr = family === 'IPv4' ? 'ipv4_addr' : 'ipv6_addr';
  const noLocalhost = family === 'IPv4' ? 'ip daddr != 127.0.0.0/8' : 'ip6 daddr != ::1';
  const mark = `0x${(1 << state.settings.masqueradeBit).toString(16)}`;
  const cidrs = plan.localDetector.kind === 'ClusterCIDR' ? plan.localDetector.cidrs.filter((c) => ipFamily(c.split('/')[0] ?? '') === family) : [];
  const notLocal = cidrs.length === 0 ? undefined : `${ipx} saddr != { ${cidrs.join(', ')} }`;
  const isLocal = cidrs.length === 0 ? undefined : `${ipx} saddr { ${cidrs.join(', ')} }`;
  const t = `${ipx} kube-proxy`;
  const out: string[] = [];
  const line = (text: string): void => { out.push(text); };
  line(`add table ${t} { comment "rules for kube-proxy"; }`);
  const base: Array<[string, string, string, string]> = [
    ['filter-prerouting-pre-dnat', 'filter', 'prerouting', '-110'], ['filter-output-pre-dnat', 'filter', 'output', '-110'],
    ['filter-input', 'filter', 'input', '0'], ['filter-forward', 'filter', 'forward', '0'], ['filter-output', 'filter', 'output', '0'],
    ['nat-prerouting', 'nat', 'prerouting', '-100'], ['nat-output', 'nat', 'output', '-100'], ['nat-postrouting', 'nat', 'postrouting', '100'],
  ];
  for (const [name, type, hook, priority] of base) line(`add chain ${t} ${name} { type ${type} hook ${hook} priority ${priority}; policy accept; }`);
  for (const name of ['nodeport-endpoints-check', 'service-endpoints-check', 'firewall-check', 'services', 'masquerading', 'cluster-ips-check', 'mark-for-masquerade', 'reject-chain']) {
    line(`add chain ${t} ${name}`);
  }
  line(`add rule ${t} filter-input ct state new jump nodeport-endpoints-check`);
  line(`add rule ${t} filter-input ct state new jump service-endpoints-check`);
  line(`add rule ${t} filter-forward ct state new jump service-endpoints-check`);
  line(`add rule ${t} filter-output ct state new jump service-endpoints-check`);
  line(`add rule ${t} filter-prerouting-pre-dnat ct state new jump firewall-check`);
  line(`add rule ${t} filter-output-pre-dnat ct state new jump firewall-check`);
  line(`add rule ${t} nat-output jump services`);
  line(`add rule ${t} nat-prerouting jump services`);
  line(`add rule ${t} nat-postrouting jump masquerading`);
  line(`add rule ${t} filter-forward ct state new jump cluster-ips-check`);
  line(`add rule ${t} filter-output ct state new jump cluster-ips-check`);
  line(`add rule ${t} mark-for-masquerade mark set mark or ${mark}`);
  line(`add rule ${t} masquerading mark and ${mark} == 0 return`);
  line(`add rule ${t} masquerading mark set mark xor ${mark}`);
  line(`add rule ${t} masquerading masquerade fully-random`);
  line(`add set ${t} cluster-ips { type ${addr}; comment "Active ClusterIPs"; }`);
  line(`add rule ${t} cluster-ips-check ${ipx} daddr @cluster-ips reject`);
  const vmap = (name: string, key: string): void => line(`add map ${t} ${name} { type ${key} : verdict; }`);
  vmap('no-endpoint-services', `${addr} . inet_proto . inet_service`);
  vmap('no-endpoint-nodeports', 'inet_proto . inet_service');
  vmap('firewall-ips', `${addr} . inet_proto . inet_service`);
  vmap('service-ips', `${addr} . inet_proto . inet_service`);
  vmap('service-nodeports', 'inet_proto . inet_service');
  line(`add rule ${t} reject-chain reject`);
  line(`add rule ${t} service-endpoints-check ${ipx} daddr . meta l4proto . th dport vmap @no-endpoint-services`);
  line(`add rule ${t} nodeport-endpoints-check ${noLocalhost} meta l4proto . th dport vmap @no-endpoint-nodeports`);
  line(`add rule ${t} firewall-check ${ipx} daddr . meta l4proto . th dport vmap @firewall-ips`);
  line(`add rule ${t} services ${ipx} daddr . meta l4proto . th dport vmap @service-ips`);
  line(`add rule ${t} services fib daddr type local ${noLocalhost} meta l4proto . th dport vmap @service-nodeports`);

  const elements = new Map<string, string[]>();
  const element = (set: string, text: string): void => {
    let list = elements.get(set);
    if (!list) elements.set(set, list = []);
    list.push(text);
  };
  for (const svc of plan.services) writeService(svc, { t, ipx, notLocal, isLocal, line, element });
  for (const [set, list] of elements) {
    for (let i = 0; i < list.length; i += 500) line(`add element ${t} ${set} { ${list.slice(i, i + 500).join(', ')} }`);
  }
  return `${out.join('\n')}\n`;
}

interface Writer {
  readonly t: string;
  readonly ipx: string;
  readonly notLocal: string | undefined;
  readonly isLocal: string | undefined;
  line(text: string): void;
  element(set: string, text: string): void;
}

function writeService(svc: ServicePortPlan, w: Writer): void {
  const proto = svc.protocol.toLowerCase();
  const label = `${svc.namespace}/${svc.name}/${proto}/${svc.portName || svc.port}`;
  const base = `${hash8(`${svc.key}/${proto}`)}-${label}`;
  const epChain = (ep: Endpoint): string => `endpoint-${hash8(`${svc.key}/${proto}/${ep.ip}:${ep.port}`)}-${label}__${ep.ip}/${ep.port}`;
  const affinitySet = (ep: Endpoint): string => `affinity-${epChain(ep).slice('endpoint-'.length)}`;
  const routes = svc.routes;
  const external = routes.external;
  const affinity = routes.clusterIP.affinity;
  const addrType = w.ipx === 'ip' ? 'ipv4_addr' : 'ipv6_addr';
  const key = (ip: string, port: number): string => `${ip} . ${proto} . ${port}`;
  const clusterChain = `service-${base}`;
  const externalChain = `external-${base}`;
  const localChain = `local-${base}`;
  const clusterIP = svc.frontends.find((f) => f.kind === 'ClusterIP');
  const split = external !== undefined && external.fromOutside !== external.fromCluster;
  // The cluster policy chain serves the ClusterIP and, under ETP Local, pods and the node on external frontends.
  const clusterRoute = routes.clusterIP.endpoints.length > 0 ? routes.clusterIP : split && external.fromCluster.endpoints.length > 0 ? external.fromCluster : undefined;
  const localRoute = split && external.fromOutside.endpoints.length > 0 ? external.fromOutside : undefined;
  const nonSplitExternal = external && !split && external.fromOutside.endpoints.length > 0 ? external.fromOutside : undefined;

  // Endpoint chains (and affinity sets) first: the policy chains' maps point at them.
  const endpoints = new Map<string, Endpoint>();
  for (const route of [clusterRoute, localRoute, nonSplitExternal]) for (const ep of route?.endpoints ?? []) endpoints.set(`${ep.ip}:${ep.port}`, ep);
  for (const ep of endpoints.values()) {
    if (affinity) w.line(`add set ${w.t} ${affinitySet(ep)} { type ${addrType}; flags dynamic,timeout; timeout ${affinity.timeoutSeconds}s; }`);
    const chain = epChain(ep);
    w.line(`add chain ${w.t} ${chain}`);
    w.line(`add rule ${w.t} ${chain} ${w.ipx} saddr ${ep.ip} jump mark-for-masquerade`);
    if (affinity) w.line(`add rule ${w.t} ${chain} update @${affinitySet(ep)} { ${w.ipx} saddr }`);
    w.line(`add rule ${w.t} ${chain} meta l4proto ${proto} dnat to ${w.ipx === 'ip' ? ep.ip : `[${ep.ip}]`}:${ep.port}`);
  }
  const policyChain = (name: string, route: Route, first: readonly string[]): void => {
    w.line(`add chain ${w.t} ${name}`);
    for (const rule of first) w.line(`add rule ${w.t} ${name} ${rule}`);
    if (affinity) for (const ep of route.endpoints) w.line(`add rule ${w.t} ${name} ${w.ipx} saddr @${affinitySet(ep)} goto ${epChain(ep)}`);
    const picks = route.endpoints.map((ep, i) => `${i} : goto ${epChain(ep)}`).join(', ');
    w.line(`add rule ${w.t} ${name} numgen random mod ${route.endpoints.length} vmap { ${picks} }`);
  };
  const masqueradeOffCluster = clusterIP && clusterIP.kind === 'ClusterIP' && w.notLocal ? [`${w.ipx} daddr ${clusterIP.ip} ${w.notLocal} jump mark-for-masquerade`] : [];
  if (clusterRoute) policyChain(clusterChain, clusterRoute, masqueradeOffCluster);
  if (localRoute) policyChain(localChain, localRoute, []);
  if (nonSplitExternal && !clusterRoute) policyChain(clusterChain, nonSplitExternal, []);

  if (clusterIP && clusterIP.kind === 'ClusterIP') {
    w.element('cluster-ips', clusterIP.ip);
    if (routes.clusterIP.endpoints.length > 0) w.element('service-ips', `${key(clusterIP.ip, clusterIP.port)} : goto ${clusterChain}`);
    else w.element('no-endpoint-services', `${key(clusterIP.ip, clusterIP.port)} : ${routes.clusterIP.whenEmpty === 'reject' ? 'goto reject-chain' : 'drop'}`);
  }
  if (!external) return;
  const hasExternal = external.fromOutside.endpoints.length > 0;
  w.line(`add chain ${w.t} ${externalChain}`);
  if (!split) {
    w.line(`add rule ${w.t} ${externalChain} jump mark-for-masquerade`);
    if (hasExternal) w.line(`add rule ${w.t} ${externalChain} goto ${clusterChain}`);
  } else {
    if (clusterRoute) {
      if (w.isLocal) w.line(`add rule ${w.t} ${externalChain} ${w.isLocal} goto ${clusterChain}`);
      w.line(`add rule ${w.t} ${externalChain} fib saddr type local jump mark-for-masquerade`);
      w.line(`add rule ${w.t} ${externalChain} fib saddr type local goto ${clusterChain}`);
    }
    if (localRoute) w.line(`add rule ${w.t} ${externalChain} goto ${localChain}`);
  }
  for (const f of svc.frontends) {
    if (f.kind === 'ClusterIP') continue;
    const k = f.kind === 'NodePort' ? `${proto} . ${f.port}` : key(f.ip, f.port);
    w.element(f.kind === 'NodePort' ? 'service-nodeports' : 'service-ips', `${k} : goto ${externalChain}`);
    if (!hasExternal) w.element(f.kind === 'NodePort' ? 'no-endpoint-nodeports' : 'no-endpoint-services', `${k} : ${external.fromOutside.whenEmpty === 'reject' ? 'goto reject-chain' : 'drop'}`);
    if (f.kind === 'LoadBalancer' && svc.sourceRanges.length > 0) {
      const fw = `firewall-${base}`;
      w.line(`add chain ${w.t} ${fw}`);
      w.line(`add rule ${w.t} ${fw} ${w.ipx} saddr != { ${svc.sourceRanges.join(', ')} } drop`);
      w.element('firewall-ips', `${k} : goto ${fw}`);
    }
  }
}
