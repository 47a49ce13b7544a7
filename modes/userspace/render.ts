// render (pure): the listener table as text for `kproxy plan --proxy-mode userspace`.
import type { Listener, ListenerTable } from './table.ts';

const endpointsText = (list: Listener['route']['internal']): string =>
  list.length === 0 ? '-' : list.map((e) => e.id).join(',');

function externalText(listener: Listener): string {
  const { route } = listener;
  if (route.frontend === 'ClusterIP') return '(same)';
  if (route.external === route.internal) return '(same)';
  return route.external.length === 0 ? `- (${route.externalEmpty})` : endpointsText(route.external);
}

function row(listener: Listener): string[] {
  const { route } = listener;
  const options = [
    route.affinityTimeoutMs !== undefined ? `affinity=ClientIP/${route.affinityTimeoutMs / 1000}s` : '',
    route.sourceRanges.length > 0 ? `from=${route.sourceRanges.join(',')}` : '',
  ].filter((o) => o !== '');
  return [
    listener.key,
    route.frontend,
    route.serviceKey,
    route.internal.length === 0 ? `- (${route.internalEmpty})` : endpointsText(route.internal),
    externalText(listener),
    options.join(' ') || '-',
  ];
}

export function renderTable(table: ListenerTable): string {
  const header = ['LISTENER', 'FRONTEND', 'SERVICE', 'ENDPOINTS', 'EXTERNAL CLIENTS', 'OPTIONS'];
  const rows = [header, ...table.listeners.map(row)];
  const widths = header.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  const lines = rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  '));
  lines.push(`# ${table.listeners.length} listeners; connections to a service with no endpoints are reset`);
  if (table.internalCidrs.length > 0) lines.push(`# cluster-internal clients: ${table.internalCidrs.join(', ')}`);
  for (const c of table.conflicts) lines.push(`# conflict: ${c.key} is served for ${c.kept}; ${c.dropped} left out`);
  for (const u of table.unsupported) lines.push(`# not relayed (SCTP is left to the kernel modes): ${u}`);
  return `${lines.join('\n')}\n`;
}
