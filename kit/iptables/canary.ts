// kube-proxy's canary, for the iptables kit: a chain holding one rule in each table the mode writes, put there by
// every full sync and never touched by a partial one. A firewall reload (-F and -X of every table) removes the chain,
// an admin's `iptables -F` or `-t nat -F` empties it; either way the probe says so and kit/drift-watch.ts asks for a
// full resync. kube-proxy watches a canary in mangle only (cheap to list), which misses a flush of nat or filter; the
// canary here is in the tables that hold the rules, and a legacy table is listed only when its size changed
// (xt-info.ts), since listing a legacy nat table of 10k services copies all of it out of the kernel.
import type { IPFamily } from '../../src/model/types.ts';
import type { DriftProbe } from '../drift-watch.ts';
import type { CommandRunner } from '../exec.ts';
import type { Chain, TableName } from './ruleset.ts';
import type { IptablesTools } from './variant.ts';
import type { TableSize, TableSizeReader } from './xt-info.ts';

/** The canary chain a layout puts in each table it wants watched (one rule, so a flush shows). */
export function canaryChain(name: string): Chain {
  return {
    kind: 'plain', name,
    rules: [{ matches: [], target: { kind: 'RETURN' }, comment: 'kproxy canary: when this rule is gone, something else flushed the table' }],
  };
}

export interface CanaryProbeOptions {
  readonly run: CommandRunner;
  /** The tools of the families that hold the mode's rules now (a family with nothing installed has no canary). */
  readonly families: () => readonly IptablesTools[];
  readonly chain: string;
  readonly tables: readonly TableName[];
  /** Sizes of legacy tables in the namespace the tools run in: a table whose size did not change is not listed. */
  readonly sizes?: TableSizeReader;
}

/**
 * The iptables tool refused `-S CHAIN`: the chain does not exist (versus a lock timeout or a missing tool).
 * iptables-legacy says "No chain/target/match by that name"; iptables-nft 1.8.9 says the chain "is incompatible".
 */
function noSuchChain(stderr: string): boolean {
  return /No chain\/target\/match by that name|does not exist|is incompatible/i.test(stderr);
}

export function canaryProbe(options: CanaryProbeOptions): DriftProbe {
  /** Each legacy table whose canary was seen in place, with its size then (or after the mode's own write since). */
  const seen = new Map<string, { readonly family: IPFamily; readonly table: TableName; size: TableSize }>();
  const sameSize = (a: TableSize | undefined, b: TableSize | undefined): boolean => a !== undefined && b !== undefined && a.entries === b.entries && a.bytes === b.bytes;

  /** What is wrong with one table's canary, or undefined when it is in place (or cannot be told now). */
  const checkTable = async (tools: IptablesTools, table: TableName): Promise<string | undefined> => {
    const key = `${tools.family}/${table}`;
    const size = tools.variant === 'legacy' ? options.sizes?.read(tools.family, table) : undefined;
    if (sameSize(size, seen.get(key)?.size)) return undefined;
    const listed = await options.run(tools.iptables, ['-w', '5', '-t', table, '-S', options.chain]);
    if (listed.code !== 0) {
      if (noSuchChain(listed.stderr)) return `${family(tools.family)} ${table} table: chain ${options.chain} is gone`;
      return undefined; // the lock was busy, or the tool failed: try again next time
    }
    if (!listed.stdout.split('\n').some((line) => line.startsWith(`-A ${options.chain} `))) {
      return `${family(tools.family)} ${table} table: chain ${options.chain} was flushed`;
    }
    if (size !== undefined) seen.set(key, { family: tools.family, table, size });
    return undefined;
  };

  return {
    async check() {
      for (const tools of options.families()) {
        for (const table of options.tables) {
          const gone = await checkTable(tools, table);
          if (gone !== undefined) return gone;
        }
      }
      return undefined;
    },
    // A table whose size was still the one seen with its canary just before the mode's own write holds the canary
    // after it too (partial syncs never touch it; full ones write it): its new size is the reference. A table that
    // changed before the write (someone else wrote) is listed at the next check.
    async beforeWrite() {
      for (const [key, entry] of seen) if (!sameSize(options.sizes?.read(entry.family, entry.table), entry.size)) seen.delete(key);
    },
    async settle() {
      for (const [key, entry] of seen) {
        const size = options.sizes?.read(entry.family, entry.table);
        if (size === undefined) seen.delete(key);
        else entry.size = size;
      }
    },
  };
}

const family = (f: IPFamily): string => (f === 'IPv4' ? 'iptables' : 'ip6tables');
