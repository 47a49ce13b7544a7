// The desired state as a readable table for `kproxy plan` (text). JSON output is the model itself.
import type { DesiredState, Endpoint, FamilyPlan, Frontend, ServicePortPlan } from '../model/types.ts';
import { joinHostPort } from '../util/ip.ts';
import type { PacketOrigin, Verdict } from '../model/trace.ts';

export function formatDesiredState(state: DesiredState): string {
  const { node, settings } = state;
  const lines = [
    `Node ${node.name}${node.zone ? ` (zone ${node.zone})` : ''}${node.shuttingDown ? ' [shutting down]' : ''}` +
      `  masqueradeAll=${settings.masqueradeAll} masqueradeBit=${settings.masqueradeBit}`,
  ];
  for (const family of [state.families.IPv4, state.families.IPv6]) {
    if (family.services.length === 0 && family.nodeIPs.length === 0) continue;
    lines.push('', familyHeader(family), ...table(family.services));
  }
  if (lines.length === 1) lines.push('', 'No services.');
  return `${lines.join('\n')}\n`;
}

function familyHeader(family: FamilyPlan): string {
  const detector = family.localDetector.kind === 'ClusterCIDR' ? `clusterCIDR ${family.localDetector.cidrs.join(',')}` : 'nothing (no --cluster-cidr)';
  const nodePorts = family.nodePortAddresses === 'all' ? 'all local addresses' : family.nodePortAddresses.join(',');
  return `${family.family}: ${family.services.length} service ports; node IPs ${family.nodeIPs.join(',') || '-'}; ` +
    `NodePorts on ${nodePorts}; local traffic detected by ${detector}`;
}

function table(services: readonly ServicePortPlan[]): string[] {
  if (services.length === 0) return ['  (no service ports)'];
  const rows = services.map((s) => [s.key, s.protocol, frontends(s), policies(s), endpoints(s)]);
  const header = ['SERVICE', 'PROTO', 'FRONTENDS', 'POLICY', 'ENDPOINTS (* local)'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const render = (cells: readonly string[]): string =>
    `  ${cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ')}`.trimEnd();
  return [render(header), ...rows.map(render)];
}

function frontends(s: ServicePortPlan): string {
  return s.frontends.map(frontend).join(' ');
}

function frontend(f: Frontend): string {
  switch (f.kind) {
    case 'ClusterIP': return joinHostPort(f.ip, f.port);
    case 'ExternalIP': return `ext:${joinHostPort(f.ip, f.port)}`;
    case 'LoadBalancer': return `lb:${joinHostPort(f.ip, f.port)}`;
    case 'NodePort': return `node:${f.port}`;
  }
}

function policies(s: ServicePortPlan): string {
  const parts: string[] = [];
  if (s.externalPolicyLocal) parts.push(`eTP=Local${s.healthCheckNodePort ? `(hc ${s.healthCheckNodePort})` : ''}`);
  if (s.internalPolicyLocal) parts.push('iTP=Local');
  if (s.affinity) parts.push(`affinity ${s.affinity.timeoutSeconds}s`);
  if (s.sourceRanges.length > 0) parts.push(`from ${s.sourceRanges.join(',')}`);
  return parts.join(' ') || '-';
}

function endpoints(s: ServicePortPlan): string {
  if (s.clusterEndpoints.length === 0) return s.hasEndpoints ? '(none usable here)' : '(no endpoints: reject)';
  return s.clusterEndpoints.map(endpoint).join(' ');
}

function endpoint(e: Endpoint): string {
  return `${joinHostPort(e.ip, e.port)}${e.local ? '*' : ''}${e.terminating ? '(terminating)' : ''}`;
}

export interface TraceDescription {
  readonly mode: string;
  readonly protocol: string;
  readonly src: string;
  readonly dst: string;
  readonly from: PacketOrigin;
  readonly verdict: Verdict;
}

export function formatVerdict(t: TraceDescription): string {
  const head = `${t.protocol} ${t.src} -> ${t.dst} from ${t.from} (${t.mode} mode): `;
  switch (t.verdict.kind) {
    case 'untouched': return `${head}not service traffic; the proxy leaves it alone\n`;
    case 'reject': return `${head}rejected (the service has no usable endpoint)\n`;
    case 'drop': return `${head}dropped\n`;
    case 'forward': {
      const { reaches } = t.verdict;
      const lines = reaches.map((r) => `  ${r.endpoint}${r.masquerade ? '  (source masqueraded to the node address)' : ''}`);
      return `${head}forwarded to ${reaches.length === 1 ? 'the endpoint' : `one of ${reaches.length} endpoints`}\n${lines.join('\n')}\n`;
    }
  }
}
