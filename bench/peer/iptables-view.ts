// What the peer benchmark reads from an iptables-legacy node: the nat table's entry count as it changes (a getsockopt
// per poll, test/harness/table-watch.ts) and, when a phase is over, the table itself (iptables-save) to check that it
// holds what it must and to find the first and last service of the dispatch chain.
import type { ChildProcess } from 'node:child_process';
import { nsRun } from '../../test/harness/netns.ts';
import { watchTable, type TableWatch } from '../../test/harness/table-watch.ts';

export interface DispatchRule {
  readonly ip: string;
  readonly port: number;
}

export interface NatListing {
  /** Rules (-A lines) in the nat table. */
  readonly rules: number;
  /** Destination IPs matched anywhere in the nat table (-d). */
  readonly destinations: ReadonlySet<string>;
  /** Endpoint IPs DNATed to (--to-destination). */
  readonly endpoints: ReadonlySet<string>;
  /** The TCP cluster-IP rules of the service dispatch chain (KUBE-SERVICES, KPROXY-SERVICES), in chain order. */
  readonly dispatch: readonly DispatchRule[];
}

const DISPATCH_CHAIN = /^-A [A-Z]+-SERVICES /;

/** Read the node's nat table with iptables-legacy-save (seconds at 10k services: only between timed phases). */
export async function readNat(nodeNs: string, serviceRange: (ip: string) => boolean): Promise<NatListing> {
  const { stdout } = await nsRun(nodeNs, 'iptables-legacy-save', ['-t', 'nat'], { timeoutMs: 300_000 });
  const destinations = new Set<string>();
  const endpoints = new Set<string>();
  const dispatch: DispatchRule[] = [];
  let rules = 0;
  let start = 0;
  while (start < stdout.length) {
    let end = stdout.indexOf('\n', start);
    if (end < 0) end = stdout.length;
    const line = stdout.slice(start, end);
    start = end + 1;
    if (!line.startsWith('-A ')) continue;
    rules++;
    const destination = / -d (\S+?)\/32 /.exec(line)?.[1];
    if (destination) destinations.add(destination);
    const dnat = / --to-destination (\d+\.\d+\.\d+\.\d+):/.exec(line)?.[1];
    if (dnat) endpoints.add(dnat);
    if (destination && DISPATCH_CHAIN.test(line) && / -p tcp /.test(line) && serviceRange(destination)) {
      const port = / --dport (\d+)/.exec(line)?.[1];
      if (port) dispatch.push({ ip: destination, port: Number(port) });
    }
  }
  return { rules, destinations, endpoints, dispatch };
}

/** Follow the nat table's entry count (IPv4) in the node namespace. */
export function watchNat(spawnInNode: (cmd: string, args: readonly string[]) => ChildProcess): Promise<TableWatch> {
  return watchTable(spawnInNode, { family: 'ipv4', table: 'nat', intervalMs: 10 });
}
