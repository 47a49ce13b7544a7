// Writes the metrics table of docs/reference.md (between its "metrics:begin" and "metrics:end" markers) from the
// metrics kproxy registers for each mode (src/metrics), so the reference lists exactly what /metrics serves.
// test/unit/docs-reference.test.ts fails when the committed table differs from this script's output.
//   node tools/docs/metrics.ts            rewrite the table
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { PROXY_MODES } from '../../src/config/index.ts';
import { ProxyMetrics } from '../../src/metrics/proxy-metrics.ts';
import type { ProxyModeName } from '../../src/model/types.ts';

export const REFERENCE_PATH = fileURLToPath(new URL('../../docs/reference.md', import.meta.url));
const BEGIN = '<!-- metrics:begin (node tools/docs/metrics.ts writes this table) -->';
const END = '<!-- metrics:end -->';

interface MetricRow {
  readonly name: string;
  readonly type: string;
  readonly labels: readonly string[];
  readonly help: string;
  readonly modes: ProxyModeName[];
}

/** Every metric registered in some mode, with the modes that register it (process/nodejs defaults left out). */
export function metricRows(): MetricRow[] {
  const rows = new Map<string, MetricRow>();
  for (const mode of PROXY_MODES) {
    const metrics = new ProxyMetrics({ mode, families: ['IPv4'], processMetrics: false });
    for (const metric of metrics.registry.getMetricsAsArray()) {
      const described = metric as unknown as { name: string; help: string; labelNames?: readonly string[] };
      const row = rows.get(described.name) ?? {
        name: described.name, type: metric.constructor.name.toLowerCase(), labels: described.labelNames ?? [], help: described.help, modes: [],
      };
      row.modes.push(mode);
      rows.set(described.name, row);
    }
  }
  return [...rows.values()];
}

const cell = (text: string): string => text.replaceAll('|', '\\|');

export function metricsTable(): string {
  const lines = ['| Metric | Type | Labels | Modes | Meaning |', '|--------|------|--------|-------|---------|'];
  for (const row of metricRows()) {
    const modes = row.modes.length === PROXY_MODES.length ? 'all' : row.modes.join(', ');
    lines.push(`| \`${row.name}\` | ${row.type} | ${row.labels.map((l) => `\`${l}\``).join(', ') || '—'} | ${modes} | ${cell(row.help)} |`);
  }
  return lines.join('\n');
}

/** The reference with its metrics section replaced by the current table. */
export function withCurrentTable(text: string): string {
  const start = text.indexOf(BEGIN);
  const end = text.indexOf(END);
  if (start < 0 || end < start) throw new Error(`${REFERENCE_PATH}: no ${BEGIN} … ${END} section`);
  return `${text.slice(0, start + BEGIN.length)}\n${metricsTable()}\n${text.slice(end)}`;
}

if (import.meta.main) {
  writeFileSync(REFERENCE_PATH, withCurrentTable(readFileSync(REFERENCE_PATH, 'utf8')));
}
