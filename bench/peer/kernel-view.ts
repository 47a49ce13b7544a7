// What the peer benchmark reads from a node's kernel, per mode: a cheap signal that changes when the rules change
// (iptables-legacy: the nat table's entry count, a getsockopt per poll; nftables: the nf_tables generation, a netlink
// query per poll; test/harness/table-watch.ts), and, when a phase is over, a listing (iptables-save, nft list ruleset)
// to check that the kernel holds what it must and to find the first and last service of a dispatch chain.
import type { ChildProcess } from 'node:child_process';
import { nsRun } from '../../test/harness/netns.ts';
import { watchNftGeneration, watchTable, type TableWatch } from '../../test/harness/table-watch.ts';
import type { PeerMode } from '../../test/kube/peers.ts';

export interface DispatchRule {
  readonly ip: string;
  readonly port: number;
}

export interface Listing {
  /** Rules in the listing (iptables: -A lines of nat; nftables: lines of the ruleset). */
  readonly rules: number;
  /** Every IPv4 address the rules name: service frontends and endpoints alike. */
  readonly addresses: ReadonlySet<string>;
  /** The TCP cluster-IP rules of the service dispatch chain in chain order (iptables); empty where lookup is a map. */
  readonly dispatch: readonly DispatchRule[];
}

export interface KernelView {
  readonly mode: PeerMode;
  watch(spawnInNode: (cmd: string, args: readonly string[]) => ChildProcess): Promise<TableWatch>;
  /** The watched value above which a fresh node holds some proxy's rules (from the value before the proxy started). */
  programmedAbove(before: number): number;
  read(nodeNs: string, serviceRange: (ip: string) => boolean): Promise<Listing>;
}

const DISPATCH_CHAIN = /^-A [A-Z]+-SERVICES /;
const IPV4 = /\b(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})\b/g;

function* lines(text: string): Generator<string> {
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    yield text.slice(start, end);
    start = end + 1;
  }
}

/** iptables-legacy: the nat table (seconds of iptables-save at 10k services: only between timed phases). */
export const iptablesView: KernelView = {
  mode: 'iptables',
  watch: (spawnInNode) => watchTable(spawnInNode, { family: 'ipv4', table: 'nat', intervalMs: 10 }),
  programmedAbove: (before) => before + 10, // a service with two endpoints takes more than a dozen entries
  async read(nodeNs, serviceRange) {
    const { stdout } = await nsRun(nodeNs, 'iptables-legacy-save', ['-t', 'nat'], { timeoutMs: 300_000 });
    const addresses = new Set<string>();
    const dispatch: DispatchRule[] = [];
    let rules = 0;
    for (const line of lines(stdout)) {
      if (!line.startsWith('-A ')) continue;
      rules++;
      const destination = / -d (\S+?)\/32 /.exec(line)?.[1];
      if (destination) addresses.add(destination);
      const dnat = / --to-destination (\d+\.\d+\.\d+\.\d+):/.exec(line)?.[1];
      if (dnat) addresses.add(dnat);
      if (destination && DISPATCH_CHAIN.test(line) && / -p tcp /.test(line) && serviceRange(destination)) {
        const port = / --dport (\d+)/.exec(line)?.[1];
        if (port) dispatch.push({ ip: destination, port: Number(port) });
      }
    }
    return { rules, addresses, dispatch };
  },
};

/** nftables: every table of the namespace (the proxy's own; nothing else runs there). */
export const nftablesView: KernelView = {
  mode: 'nftables',
  watch: (spawnInNode) => watchNftGeneration(spawnInNode, 10),
  programmedAbove: (before) => before, // any transaction; the listing decides
  async read(nodeNs) {
    const { stdout } = await nsRun(nodeNs, 'nft', ['list', 'ruleset'], { timeoutMs: 300_000 });
    const addresses = new Set<string>();
    let rules = 0;
    for (const line of lines(stdout)) {
      if (line.trim() === '') continue;
      rules++;
      for (const match of line.matchAll(IPV4)) addresses.add(match[1] as string);
    }
    return { rules, addresses, dispatch: [] };
  },
};

export const KERNEL_VIEWS: Readonly<Record<PeerMode, KernelView>> = { iptables: iptablesView, nftables: nftablesView };
