// The behavioural oracle's pure parts: the grid of packets (every frontend of every service port × the sources of the
// namespace harness), what an observation is (which backend answered each connection and the source it saw, or why
// none did), and how two observations compare: the same outcomes, shares that agree within a binomial bound, and for
// a plain service the even split both proxies promise.
import type { ProbeSummary } from '../harness/cluster.ts';

export type SourceRole = 'pod' | 'hairpin' | 'node' | 'external';
export type Family = 'IPv4' | 'IPv6';

export interface GridCase {
  /** Stable, readable: "pod → 10.96.0.10:80/TCP (default/echo http, ClusterIP)". */
  readonly name: string;
  readonly source: SourceRole;
  readonly family: Family;
  readonly dst: string;
  readonly port: number;
  readonly protocol: 'TCP' | 'UDP';
  readonly service: string;
  readonly frontend: 'ClusterIP' | 'NodePort' | 'LoadBalancer' | 'ExternalIP';
  /** ClientIP affinity: one client sticks to one backend, so only "one backend" is compared, not which. */
  readonly sticky: boolean;
}

export interface GridAddresses {
  readonly nodeIP: Record<Family, string>;
}

type Raw = Record<string, unknown>;

const familyOf = (ip: string): Family => (ip.includes(':') ? 'IPv6' : 'IPv4');
const SOURCES: readonly SourceRole[] = ['pod', 'hairpin', 'node', 'external'];

/** Every (source, frontend) pair of the TCP and UDP ports of `services` (raw Service objects). */
export function packetGrid(services: readonly Raw[], addresses: GridAddresses): GridCase[] {
  const cases: GridCase[] = [];
  for (const service of services) {
    const metadata = service.metadata as { namespace?: string; name: string };
    const spec = service.spec as Raw;
    const key = `${metadata.namespace ?? 'default'}/${metadata.name}`;
    const sticky = spec.sessionAffinity === 'ClientIP';
    const clusterIPs = (spec.clusterIPs as string[] | undefined) ?? [spec.clusterIP as string];
    const ingress = (((service.status as Raw | undefined)?.loadBalancer as Raw | undefined)?.ingress as Array<{ ip?: string }> | undefined) ?? [];
    for (const port of spec.ports as Raw[]) {
      const protocol = (port.protocol as string | undefined) ?? 'TCP';
      if (protocol !== 'TCP' && protocol !== 'UDP') continue; // the pod servers speak TCP and UDP
      const frontends: Array<{ ip: string; port: number; frontend: GridCase['frontend']; sources: readonly SourceRole[] }> = [];
      for (const ip of clusterIPs) frontends.push({ ip, port: port.port as number, frontend: 'ClusterIP', sources: SOURCES });
      if (port.nodePort !== undefined) {
        for (const ip of clusterIPs) {
          frontends.push({ ip: addresses.nodeIP[familyOf(ip)], port: port.nodePort as number, frontend: 'NodePort', sources: SOURCES });
        }
        // localhost NodePorts: only the node itself can address them
        frontends.push({ ip: '127.0.0.1', port: port.nodePort as number, frontend: 'NodePort', sources: ['node'] });
      }
      for (const { ip } of ingress) if (ip) frontends.push({ ip, port: port.port as number, frontend: 'LoadBalancer', sources: SOURCES });
      for (const ip of (spec.externalIPs as string[] | undefined) ?? []) frontends.push({ ip, port: port.port as number, frontend: 'ExternalIP', sources: SOURCES });
      for (const f of frontends) {
        for (const source of f.sources) {
          const family = familyOf(f.ip);
          const host = family === 'IPv6' ? `[${f.ip}]` : f.ip;
          cases.push({
            name: `${source} → ${host}:${f.port}/${protocol} (${key} ${(port.name as string | undefined) ?? ''}, ${f.frontend})`,
            source, family, dst: f.ip, port: f.port, protocol: protocol as 'TCP' | 'UDP', service: key, frontend: f.frontend, sticky,
          });
        }
      }
    }
  }
  return cases;
}

/** What the connections of one case came to: outcome key → count. */
export interface Observation {
  readonly n: number;
  /** "pod1 <- 10.244.1.200" (backend, and the source it saw), or "refused", "unanswered" for failures. */
  readonly counts: ReadonlyMap<string, number>;
}

const REFUSED = new Set(['ECONNREFUSED']);

/** Fold a probe's summary into outcomes. A refusal and silence are kept apart: REJECT and DROP differ. */
export function observation(summary: ProbeSummary): Observation {
  const counts = new Map<string, number>();
  for (const [pair, count] of Object.entries(summary.pairs)) {
    const [backend = '', peer = ''] = pair.split(' ');
    counts.set(`${backend} <- ${peer}`, count);
  }
  for (const [code, count] of Object.entries(summary.errors)) {
    const key = REFUSED.has(code) ? 'refused' : 'unanswered';
    counts.set(key, (counts.get(key) ?? 0) + count);
  }
  const n = [...counts.values()].reduce((a, b) => a + b, 0);
  return { n, counts };
}

/** Outcomes seen often enough to be behaviour rather than a lost packet: ≥ 2 and ≥ 3 % of the connections. */
export function significant(o: Observation): string[] {
  return [...o.counts].filter(([, count]) => count >= Math.max(2, 0.03 * o.n)).map(([key]) => key).sort();
}

/** z of the binomial bounds: a check with this many standard deviations fails by chance ~1 in 150,000. */
export const Z = 4.5;

const backendOf = (key: string): string | undefined => (key.includes(' <- ') ? key.split(' <- ')[0] : undefined);

/**
 * A sticky case reached one backend: which one is chance, so it is named "one backend". From a hairpin source the
 * source it saw depends on that chance too (masqueraded only when the client picked itself), so it is dropped.
 */
function normalise(keys: readonly string[], c: Pick<GridCase, 'sticky' | 'source'>): string[] {
  if (!c.sticky) return [...keys];
  const backends = new Set(keys.map(backendOf).filter((b) => b !== undefined));
  if (backends.size !== 1) return [...keys];
  return keys.map((k) => (!backendOf(k) ? k : c.source === 'hairpin' ? 'one backend' : `one backend <- ${k.split(' <- ')[1]}`));
}

/**
 * Problems of one proxy's observation alone: a plain (not sticky) case where every connection reached a backend must
 * split evenly over the backends it reached, each within Z standard deviations of n/k; a sticky one reaches one.
 */
export function splitProblems(o: Observation, sticky: boolean): string[] {
  const keys = significant(o);
  const backends = new Map<string, number>();
  for (const [key, count] of o.counts) {
    const backend = backendOf(key);
    if (backend) backends.set(backend, (backends.get(backend) ?? 0) + count);
  }
  if (sticky) return backends.size > 1 ? [`affinity: ${backends.size} backends answered one client`] : [];
  if (keys.some((k) => !backendOf(k)) || backends.size < 2) return [];
  const k = backends.size;
  const expected = o.n / k;
  const bound = Z * Math.sqrt(o.n * (1 / k) * (1 - 1 / k));
  return [...backends].filter(([, count]) => Math.abs(count - expected) > bound)
    .map(([backend, count]) => `${backend} took ${count} of ${o.n} (an even split is ${expected.toFixed(0)} ± ${bound.toFixed(0)})`);
}

/** How two proxies' observations of the same case differ (empty: they agree). */
export function differences(ours: Observation, theirs: Observation, c: Pick<GridCase, 'sticky' | 'source'>): string[] {
  const a = normalise(significant(ours), c);
  const b = normalise(significant(theirs), c);
  if (a.join('|') !== b.join('|')) return [`outcomes differ: kproxy {${a.join(', ')}} / kube-proxy {${b.join(', ')}}`];
  if (c.sticky) return [];
  // the same outcomes: their shares must agree (two-sample binomial bound on the pooled share)
  const problems: string[] = [];
  for (const key of a) {
    const x = ours.counts.get(key) ?? 0;
    const y = theirs.counts.get(key) ?? 0;
    const pooled = (x + y) / (ours.n + theirs.n);
    const bound = Z * Math.sqrt(pooled * (1 - pooled) * (1 / ours.n + 1 / theirs.n));
    if (Math.abs(x / ours.n - y / theirs.n) > bound) {
      problems.push(`share of ${key}: kproxy ${x}/${ours.n}, kube-proxy ${y}/${theirs.n}`);
    }
  }
  return problems;
}

/** A difference between kproxy and kube-proxy that is meant, with the reason; it must still be seen. */
export interface DeliberateDifference {
  readonly matches: (c: GridCase) => boolean;
  readonly reason: string;
}

/** One connection of the affinity check: when it started and ended, and which backend answered. */
export interface Connection { readonly start: number; readonly end: number; readonly backend: string }

/**
 * Affinity from timed connections, robust to a slow machine: the proxy records a client when its connection passes
 * (between start and end), so a connection is surely within the timeout of the previous one when it ended less than
 * the timeout after the previous one started (then it must keep the backend), and surely past it when it started
 * more than the timeout (+ 300 ms of clock granularity) after the previous one ended (then it is balanced anew).
 */
export function affinityVerdict(seen: readonly Connection[], timeoutMs: number): { sticky: Array<[string, string]>; fresh: string[] } {
  const sticky: Array<[string, string]> = [];
  const fresh: string[] = seen[0] ? [seen[0].backend] : [];
  for (let i = 1; i < seen.length; i++) {
    const previous = seen[i - 1] as Connection;
    const next = seen[i] as Connection;
    if (next.end - previous.start < timeoutMs) sticky.push([previous.backend, next.backend]);
    else if (next.start - previous.end > timeoutMs + 300) fresh.push(next.backend);
  }
  return { sticky, fresh };
}
