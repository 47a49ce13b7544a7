// The reference docs that are derived from code stay in step with it: the metrics table of docs/reference.md is
// what tools/docs/metrics.ts writes from the registered metrics, and docs/install.md describes every chart value.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { REFERENCE_PATH, metricRows, withCurrentTable } from '../../tools/docs/metrics.ts';

const read = (relative: string): string => readFileSync(new URL(`../../${relative}`, import.meta.url), 'utf8');

test('docs/reference.md lists exactly the metrics kproxy registers (node tools/docs/metrics.ts rewrites it)', () => {
  const text = readFileSync(REFERENCE_PATH, 'utf8');
  assert.equal(text, withCurrentTable(text), 'the metrics table is out of date: run node tools/docs/metrics.ts');
  const rows = metricRows();
  assert.ok(rows.length > 20, `${rows.length} metrics`);
  for (const name of ['kubeproxy_sync_proxy_rules_duration_seconds', 'kproxy_source_stale', 'kubeproxy_sync_proxy_rules_iptables_total']) {
    assert.ok(rows.some((row) => row.name === name), name);
  }
});

test('docs/install.md describes every value of the chart', () => {
  const values = parse(read('charts/kproxy/values.yaml')) as Record<string, unknown>;
  const table = read('docs/install.md');
  for (const key of Object.keys(values)) assert.match(table, new RegExp(`\`${key}(\\.[a-zA-Z]+)?\``), `chart value ${key} is not in docs/install.md`);
});
