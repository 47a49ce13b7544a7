// Which UDP conntrack entries a sync makes stale (pure). UDP has no connection teardown: an entry DNATed to an
// endpoint that went away keeps steering a client's datagrams into the void, and an entry created while a
// service had no endpoints (no DNAT) keeps them away from the endpoint that just appeared. Both must be deleted.
import type { DesiredState, Endpoint, FamilyPlan, IPFamily, Route, ServicePortPlan } from '../src/model/types.ts';
import { IP_FAMILIES, normalizeIP } from '../src/util/ip.ts';

export interface ConntrackDeletion {
  readonly family: IPFamily;
  /** Original destination address; undefined for a NodePort (any local address). */
  readonly destination?: string;
  readonly port: number;
  /**
   * 'endpoint-gone': entries whose reply comes from `endpoint` (DNATed to it).
   * 'not-translated': entries whose reply still comes from the frontend itself, i.e. created while no rule
   * DNATed them. Deleting only those never disturbs a live flow, so it is also safe on the first sync.
   */
  readonly kind: 'endpoint-gone' | 'not-translated';
  readonly endpoint?: string;
  /** With 'endpoint-gone': only entries answered from this port of `endpoint` (one exact stale DNAT target). */
  readonly endpointPort?: number;
}

interface UdpTarget {
  readonly destination?: string;
  readonly port: number;
}

/** Every (address, port) a client can send a UDP datagram to for this service port. */
function targetsOf(service: ServicePortPlan): UdpTarget[] {
  const targets: UdpTarget[] = [];
  for (const frontend of service.frontends) {
    if (frontend.kind === 'NodePort') targets.push({ port: frontend.port });
    else targets.push({ destination: frontend.ip, port: frontend.port });
  }
  if (service.nodePort !== undefined && !targets.some((t) => t.destination === undefined && t.port === service.nodePort)) {
    targets.push({ port: service.nodePort });
  }
  if (!targets.some((t) => t.destination === service.clusterIP && t.port === service.port)) {
    targets.unshift({ destination: service.clusterIP, port: service.port });
  }
  return targets;
}

/** The routes of a service port (each traffic class once). */
function routesOf(service: ServicePortPlan): Route[] {
  const { clusterIP, external } = service.routes;
  return external ? [clusterIP, external.fromCluster, external.fromOutside] : [clusterIP];
}

/** Endpoints some traffic class of this service port may be DNATed to (what its routes reach), keyed "ip|port". */
function reachable(service: ServicePortPlan): Map<string, Endpoint> {
  const map = new Map<string, Endpoint>();
  for (const route of routesOf(service)) for (const endpoint of route.endpoints) map.set(`${endpoint.ip}|${endpoint.port}`, endpoint);
  return map;
}

function udpServices(plan: FamilyPlan): Map<string, ServicePortPlan> {
  return new Map(plan.services.filter((s) => s.protocol === 'UDP').map((s) => [s.key, s]));
}

function deletionKey(d: ConntrackDeletion): string {
  return `${d.family}|${d.destination ?? '*'}|${d.port}|${d.kind}|${d.endpoint ?? ''}|${d.endpointPort ?? ''}`;
}

/**
 * The conntrack deletions that make `next` take effect for UDP clients that talked to `prev`'s rules.
 * With no `prev` (first sync after start) every UDP service with endpoints counts as newly served; only its
 * untranslated entries go, so a restart does not disturb live flows. (Endpoints removed while kproxy was down
 * are not known here: reconcileUdpEntries finds their entries in the conntrack listing.)
 */
export function staleUdpDeletions(prev: DesiredState | undefined, next: DesiredState): ConntrackDeletion[] {
  const out = new Map<string, ConntrackDeletion>();
  const add = (d: ConntrackDeletion): void => { out.set(deletionKey(d), d); };
  for (const family of IP_FAMILIES) {
    const before = prev ? udpServices(prev.families[family]) : new Map<string, ServicePortPlan>();
    const after = udpServices(next.families[family]);
    for (const [key, old] of before) {
      const current = after.get(key);
      const stillReachable = current ? reachable(current) : new Map<string, Endpoint>();
      const gone = [...reachable(old).entries()].filter(([id]) => !stillReachable.has(id)).map(([, e]) => e.ip);
      for (const endpoint of new Set(gone)) {
        for (const target of targetsOf(old)) add({ family, ...target, kind: 'endpoint-gone', endpoint });
      }
    }
    for (const [key, current] of after) {
      const old = before.get(key);
      const hadEndpoints = old !== undefined && reachable(old).size > 0;
      if (hadEndpoints || reachable(current).size === 0) continue;
      for (const target of targetsOf(current)) add({ family, ...target, kind: 'not-translated' });
    }
  }
  return [...out.values()].sort((a, b) => deletionKey(a).localeCompare(deletionKey(b)));
}

/** Arguments of the `conntrack` tool for one deletion. */
export function conntrackDeleteArgs(deletion: ConntrackDeletion): string[] {
  const args = ['-D', '-f', deletion.family === 'IPv4' ? 'ipv4' : 'ipv6', '-p', 'udp'];
  if (deletion.destination !== undefined) args.push('--orig-dst', deletion.destination);
  args.push('--orig-port-dst', String(deletion.port));
  if (deletion.kind === 'endpoint-gone' && deletion.endpoint !== undefined) args.push('--reply-src', deletion.endpoint);
  if (deletion.kind === 'endpoint-gone' && deletion.endpointPort !== undefined) args.push('--reply-port-src', String(deletion.endpointPort));
  if (deletion.kind === 'not-translated') {
    if (deletion.destination !== undefined) args.push('--reply-src', deletion.destination);
    args.push('--reply-port-src', String(deletion.port));
  }
  return args;
}

/** `conntrack -D` exits non-zero when nothing matched; that is success for us. */
export function isNothingToDelete(stderr: string): boolean {
  return /0 flow entries have been deleted/.test(stderr);
}

/** One UDP entry of `conntrack -L -p udp` (original and reply directions). */
export interface ConntrackEntry {
  readonly origDst: string;
  readonly origDport: number;
  readonly replySrc: string;
  readonly replySport: number;
}

/** Parse `conntrack -L` text output; lines that do not show both directions are skipped. */
export function parseConntrackList(text: string): ConntrackEntry[] {
  const entries: ConntrackEntry[] = [];
  for (const line of text.split('\n')) {
    const dst = [...line.matchAll(/\bdst=(\S+)/g)].map((m) => m[1] ?? '');
    const src = [...line.matchAll(/\bsrc=(\S+)/g)].map((m) => m[1] ?? '');
    const sport = [...line.matchAll(/\bsport=(\d+)/g)].map((m) => Number(m[1]));
    const dport = [...line.matchAll(/\bdport=(\d+)/g)].map((m) => Number(m[1]));
    if (dst.length < 2 || src.length < 2 || sport.length < 2 || dport.length < 1) continue;
    entries.push({ origDst: dst[0] ?? '', origDport: dport[0] ?? 0, replySrc: src[1] ?? '', replySport: sport[1] ?? 0 });
  }
  return entries;
}

function matches(deletion: ConntrackDeletion, entry: ConntrackEntry): boolean {
  if (deletion.destination !== undefined && entry.origDst !== deletion.destination) return false;
  if (entry.origDport !== deletion.port) return false;
  if (deletion.kind === 'endpoint-gone') {
    return entry.replySrc === deletion.endpoint && (deletion.endpointPort === undefined || entry.replySport === deletion.endpointPort);
  }
  return (deletion.destination === undefined || entry.replySrc === deletion.destination) && entry.replySport === deletion.port;
}

/**
 * The deletions that would remove at least one listed entry. Listing once and deleting only what exists keeps a
 * sync that makes thousands of services newly served (the first one) from running thousands of tools.
 */
export function deletionsWithEntries(deletions: readonly ConntrackDeletion[], entries: readonly ConntrackEntry[]): ConntrackDeletion[] {
  return deletions.filter((deletion) => entries.some((entry) => matches(deletion, entry)));
}

const canonical = (ip: string): string => normalizeIP(ip) ?? ip;
const hostPort = (ip: string, port: number): string => `${canonical(ip)}|${port}`;

/** Every endpoint (ip|port) a service port may have DNATed to and still does: any condition counts, so no live flow is cut. */
function currentTargets(service: ServicePortPlan): string[] {
  const all = [...service.allEndpoints, ...routesOf(service).flatMap((route) => route.endpoints)];
  return all.map((e) => hostPort(e.ip, e.port));
}

export interface ReconcileInput {
  readonly family: IPFamily;
  /** The family's UDP entries, as `conntrack -L -p udp` listed them. */
  readonly entries: readonly ConntrackEntry[];
  readonly state: DesiredState;
}

/**
 * Entries that do not match the desired state, whatever happened before (used after a start, when what changed
 * while kproxy was down is unknown): an entry sent to a UDP service frontend (IP:port, or a NodePort on any address)
 * that was DNATed to something other than a current endpoint of that service port. Each yields one exact deletion
 * (orig dst:port, reply src:port). Untranslated entries are left to staleUdpDeletions ('not-translated'); an entry
 * whose NodePort port belongs to no UDP service, or to no frontend at all, is not ours and stays.
 */
export function reconcileUdpEntries(input: ReconcileInput): ConntrackDeletion[] {
  const byFrontend = new Map<string, Set<string>>();
  const byNodePort = new Map<number, Set<string>>();
  const allow = <K>(map: Map<K, Set<string>>, key: K, targets: readonly string[]): void => {
    const set = map.get(key) ?? new Set<string>();
    for (const target of targets) set.add(target);
    map.set(key, set);
  };
  for (const service of udpServices(input.state.families[input.family]).values()) {
    const targets = currentTargets(service);
    for (const target of targetsOf(service)) {
      if (target.destination === undefined) allow(byNodePort, target.port, targets);
      else allow(byFrontend, hostPort(target.destination, target.port), targets);
    }
  }
  const out = new Map<string, ConntrackDeletion>();
  for (const entry of input.entries) {
    const destination = canonical(entry.origDst);
    const replySource = canonical(entry.replySrc);
    const translated = replySource !== destination || entry.replySport !== entry.origDport;
    if (!translated) continue;
    const allowed = byFrontend.get(hostPort(destination, entry.origDport)) ?? byNodePort.get(entry.origDport);
    if (allowed === undefined || allowed.has(hostPort(replySource, entry.replySport))) continue;
    const deletion: ConntrackDeletion = {
      family: input.family, destination, port: entry.origDport, kind: 'endpoint-gone', endpoint: replySource, endpointPort: entry.replySport,
    };
    out.set(deletionKey(deletion), deletion);
  }
  return [...out.values()].sort((a, b) => deletionKey(a).localeCompare(deletionKey(b)));
}
