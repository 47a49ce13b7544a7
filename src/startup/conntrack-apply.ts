// The thin apply of planConntrack: read the knobs, write what the plan says. A write the kernel refuses (a
// machine-wide knob from a network namespace other than the host's, a read-only /sys, no conntrack module) is
// one warning line for all of them, and the agent goes on — kube-proxy 1.34 would exit; the proxy works with the
// kernel's values, so kproxy keeps serving.
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../model/mode.ts';
import type { ConntrackSettings } from '../model/settings.ts';
import { MACHINE_WIDE, planConntrack, type ConntrackChange, type ConntrackKnob } from './conntrack-plan.ts';

export interface ConntrackPaths {
  /** Folder of the nf_conntrack_* sysctls. */
  readonly netfilter: string;
  /** The hash table size module parameter. */
  readonly hashsize: string;
}

export const KERNEL_CONNTRACK_PATHS: ConntrackPaths = {
  netfilter: '/proc/sys/net/netfilter',
  hashsize: '/sys/module/nf_conntrack/parameters/hashsize',
};

const KNOBS: readonly ConntrackKnob[] = [
  'nf_conntrack_max', 'hashsize', 'nf_conntrack_tcp_timeout_established', 'nf_conntrack_tcp_timeout_close_wait',
  'nf_conntrack_tcp_be_liberal', 'nf_conntrack_udp_timeout', 'nf_conntrack_udp_timeout_stream',
];

const pathOf = (paths: ConntrackPaths, knob: ConntrackKnob): string => (knob === 'hashsize' ? paths.hashsize : join(paths.netfilter, knob));

export function readConntrackKnobs(paths: ConntrackPaths = KERNEL_CONNTRACK_PATHS): Partial<Record<ConntrackKnob, number>> {
  const values: Partial<Record<ConntrackKnob, number>> = {};
  for (const knob of KNOBS) {
    try {
      const value = Number.parseInt(readFileSync(pathOf(paths, knob), 'utf8').trim(), 10);
      if (Number.isFinite(value)) values[knob] = value;
    } catch {
      // unreadable: no conntrack module, or no sysfs; the plan writes what it needs and reports failures
    }
  }
  return values;
}

export interface ConntrackApplyOptions {
  readonly log: Logger;
  readonly paths?: ConntrackPaths;
  /** CPUs of the machine; default: every online CPU, as kube-proxy counts them. */
  readonly cpus?: number;
}

export interface ConntrackApplied {
  readonly applied: readonly ConntrackChange[];
  readonly failed: ReadonlyArray<ConntrackChange & { readonly error: string }>;
}

export function applyConntrack(settings: ConntrackSettings, options: ConntrackApplyOptions): ConntrackApplied {
  const paths = options.paths ?? KERNEL_CONNTRACK_PATHS;
  const plan = planConntrack(settings, { cpus: options.cpus ?? cpus().length, current: readConntrackKnobs(paths) });
  for (const kept of plan.kept) options.log.debug({ knob: kept.knob, current: kept.current, wanted: kept.value }, `Leaving ${kept.knob} at ${kept.current} (not lowered to ${kept.value})`);
  const applied: ConntrackChange[] = [];
  const failed: Array<ConntrackChange & { error: string }> = [];
  for (const change of plan.changes) {
    try {
      writeFileSync(pathOf(paths, change.knob), String(change.value));
      applied.push(change);
    } catch (err) {
      failed.push({ ...change, error: (err as NodeJS.ErrnoException).code ?? String(err) });
    }
  }
  if (applied.length > 0) {
    options.log.info({ set: Object.fromEntries(applied.map((c) => [c.knob, c.value])) }, `Set conntrack ${applied.map((c) => `${c.knob}=${c.value}`).join(', ')}`);
  }
  if (failed.length > 0) {
    const what = failed.map((f) => `${f.knob}=${f.value} (now ${f.current ?? 'unreadable'}: ${f.error}${MACHINE_WIDE.has(f.knob) ? ', machine-wide: set it on the host' : ''})`);
    options.log.warn({ failed: failed.map((f) => ({ knob: f.knob, value: f.value, current: f.current, error: f.error })) },
      `Could not set conntrack ${what.join(', ')}; the kernel's values stay`);
  }
  return { applied, failed };
}
