// What kube-proxy sets in the kernel's connection tracking at start (cmd/kube-proxy setupConntrack), as a pure
// function of the conntrack settings and what the node has now:
//   - nf_conntrack_max = max(maxPerCore × CPUs, min) when maxPerCore > 0, and then the hash table
//     (/sys/module/nf_conntrack/parameters/hashsize) to max/4 when it is smaller;
//   - nf_conntrack_tcp_timeout_established / _close_wait, nf_conntrack_udp_timeout / _stream when > 0 (seconds);
//   - nf_conntrack_tcp_be_liberal = 1 when tcpBeLiberal.
// A value already equal is not written. nf_conntrack_max and hashsize are only ever raised: an admin who sized
// the table larger keeps it (kube-proxy 1.34 would lower nf_conntrack_max to its computed value; later
// kube-proxy releases leave a larger one alone, as here). The timeouts are set to the configured value either
// way, as kube-proxy does: lowering the kernel's 5-day established timeout to 24h is their purpose.
import type { ConntrackSettings } from '../model/settings.ts';

/** A sysctl under /proc/sys/net/netfilter, or the module parameter. */
export type ConntrackKnob =
  | 'nf_conntrack_max' | 'hashsize' | 'nf_conntrack_tcp_timeout_established' | 'nf_conntrack_tcp_timeout_close_wait'
  | 'nf_conntrack_tcp_be_liberal' | 'nf_conntrack_udp_timeout' | 'nf_conntrack_udp_timeout_stream';

/** Knobs that hold one value for the whole machine: the kernel refuses writes from other network namespaces. */
export const MACHINE_WIDE: ReadonlySet<ConntrackKnob> = new Set(['nf_conntrack_max', 'hashsize']);

export interface ConntrackObserved {
  /** CPUs of the machine (kube-proxy: cadvisor's topology, else runtime.NumCPU). */
  readonly cpus: number;
  /** Current values; undefined when unreadable (no conntrack module, no sysfs). */
  readonly current: Readonly<Partial<Record<ConntrackKnob, number>>>;
}

export interface ConntrackChange {
  readonly knob: ConntrackKnob;
  readonly value: number;
  /** The value before (undefined: could not be read, written anyway). */
  readonly current: number | undefined;
}

export interface ConntrackPlan {
  readonly changes: readonly ConntrackChange[];
  /** Values left alone on purpose, for a debug line ("nf_conntrack_max 262144 ≥ 131072"). */
  readonly kept: readonly ConntrackChange[];
}

/** nf_conntrack_max as kube-proxy computes it (0: leave it alone). */
export function conntrackMax(settings: Pick<ConntrackSettings, 'maxPerCore' | 'min'>, cpus: number): number {
  if (settings.maxPerCore <= 0) return 0;
  return Math.max(settings.maxPerCore * cpus, settings.min);
}

export function planConntrack(settings: ConntrackSettings, observed: ConntrackObserved): ConntrackPlan {
  const changes: ConntrackChange[] = [];
  const kept: ConntrackChange[] = [];
  const set = (knob: ConntrackKnob, value: number): void => {
    const current = observed.current[knob];
    if (current !== value) changes.push({ knob, value, current });
  };
  const raise = (knob: ConntrackKnob, value: number): boolean => {
    const current = observed.current[knob];
    if (current !== undefined && current >= value) {
      kept.push({ knob, value, current });
      return false;
    }
    changes.push({ knob, value, current });
    return true;
  };

  const max = conntrackMax(settings, observed.cpus);
  if (max > 0 && raise('nf_conntrack_max', max)) raise('hashsize', Math.floor(max / 4));
  const seconds = (ms: number): number => Math.floor(ms / 1000);
  if (settings.tcpEstablishedTimeoutMs > 0) set('nf_conntrack_tcp_timeout_established', seconds(settings.tcpEstablishedTimeoutMs));
  if (settings.tcpCloseWaitTimeoutMs > 0) set('nf_conntrack_tcp_timeout_close_wait', seconds(settings.tcpCloseWaitTimeoutMs));
  if (settings.tcpBeLiberal) set('nf_conntrack_tcp_be_liberal', 1);
  if (settings.udpTimeoutMs > 0) set('nf_conntrack_udp_timeout', seconds(settings.udpTimeoutMs));
  if (settings.udpStreamTimeoutMs > 0) set('nf_conntrack_udp_timeout_stream', seconds(settings.udpStreamTimeoutMs));
  return { changes, kept };
}
