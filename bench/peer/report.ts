// The peer benchmark's figures: each as kproxy / kube-proxy, the ratio taken within each round (the two proxies ran
// back to back there) and summarised by its median, with the target where it has one.
import type { TrialResult } from './trial.ts';

export interface Figure {
  readonly name: string;
  readonly unit: string;
  readonly digits: number;
  readonly value: (trial: TrialResult) => number | undefined;
  /** Whether kproxy should be below kube-proxy (times, memory) or above (rates). */
  readonly better: 'lower' | 'higher';
  /** The target ratio (kproxy / kube-proxy), and from which size on it applies. */
  readonly target?: { readonly ratio: number; readonly fromServices?: number };
}

export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length / 2;
  return sorted.length % 2 === 1 ? sorted[Math.floor(mid)] ?? NaN : ((sorted[mid - 1] ?? NaN) + (sorted[mid] ?? NaN)) / 2;
}

export const FIGURES: readonly Figure[] = [
  { name: 'start → all rules in the kernel', unit: 's', digits: 2, value: (t) => t.startSeconds, better: 'lower', target: { ratio: 0.5, fromServices: 10_000 } },
  { name: 'one EndpointSlice change → kernel, p50', unit: 'ms', digits: 0, value: (t) => percentile(t.changeMs, 50), better: 'lower' },
  { name: 'one EndpointSlice change → kernel, p99', unit: 'ms', digits: 0, value: (t) => percentile(t.changeMs, 99), better: 'lower', target: { ratio: 0.5 } },
  { name: 'burst: last change → kernel matches', unit: 's', digits: 2, value: (t) => t.burstCatchUpSeconds, better: 'lower', target: { ratio: 0.5 } },
  { name: 'burst: first change → kernel matches', unit: 's', digits: 2, value: (t) => t.burstTotalSeconds, better: 'lower' },
  { name: 'CPU over the run (with the tools it ran)', unit: 's', digits: 1, value: (t) => t.cpuSeconds, better: 'lower' },
  { name: 'peak RSS', unit: 'MiB', digits: 0, value: (t) => t.peakRssMiB, better: 'lower', target: { ratio: 1.0 } },
  { name: 'CPU while idle', unit: 's', digits: 2, value: (t) => t.idleCpuSeconds, better: 'lower', target: { ratio: 1.0, fromServices: 10_000 } },
  { name: 'new connections/s, first service', unit: '/s', digits: 0, value: (t) => t.connFirst, better: 'higher', target: { ratio: 0.97 } },
  { name: 'new connections/s, last service', unit: '/s', digits: 0, value: (t) => t.connLast, better: 'higher', target: { ratio: 0.97 } },
  { name: 'rules in the kernel (iptables: nat -A lines; nftables: ruleset lines)', unit: '', digits: 0, value: (t) => t.kernelRules, better: 'lower' },
];

export interface Round {
  readonly kproxy: TrialResult;
  readonly kubeProxy: TrialResult;
}

const format = (value: number, digits: number): string => (Number.isFinite(value) ? value.toFixed(digits) : '—');

function verdict(ratio: number, figure: Figure, services: number): string {
  const target = figure.target;
  if (!target || (target.fromServices !== undefined && services < target.fromServices) || !Number.isFinite(ratio)) return '';
  const met = figure.better === 'lower' ? ratio <= target.ratio : ratio >= target.ratio;
  return `${figure.better === 'lower' ? '≤' : '≥'} ${target.ratio} ${met ? 'met' : 'MISSED'}`;
}

/** A markdown table: one row per figure, kproxy and kube-proxy medians, the per-round ratios and their median. */
export function ratioTable(rounds: readonly Round[], services: number): string {
  const lines = [
    '| figure | kproxy | kube-proxy | kproxy / kube-proxy (per round) | target |',
    '|---|---|---|---|---|',
  ];
  for (const figure of FIGURES) {
    const pairs = rounds.map((r) => [figure.value(r.kproxy), figure.value(r.kubeProxy)] as const)
      .filter((pair): pair is readonly [number, number] => pair[0] !== undefined && pair[1] !== undefined);
    if (pairs.length === 0) continue;
    const ratios = pairs.map(([ours, theirs]) => ours / theirs);
    const ratio = median(ratios);
    const unit = figure.unit ? ` ${figure.unit}` : '';
    lines.push(`| ${figure.name} | ${format(median(pairs.map((p) => p[0])), figure.digits)}${unit} | ${format(median(pairs.map((p) => p[1])), figure.digits)}${unit} `
      + `| **${format(ratio, 2)}** (${ratios.map((r) => format(r, 2)).join(' ')}) | ${verdict(ratio, figure, services)} |`);
  }
  return lines.join('\n');
}
