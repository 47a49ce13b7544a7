// Running `nft`: transactions through `nft -f -` (streamed as they are rendered), the table's removal, and the
// start-up check that the kernel and nft can do everything the layout needs. The only place this mode starts
// processes.
import { FAMILY_OF, type NftFamily, type Table } from './ruleset.ts';
import { renderTransaction, tableTransaction, transactionText } from './render.ts';
import type { Transaction } from './transaction.ts';
import { baseChains, baseSets, balancerChain, balancerMapSpec, familyContext } from './compile.ts';
import type { DesiredState, IPFamily } from '../../src/model/types.ts';

export interface NftResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a tool with optional stdin (a string, or pieces written as they come). Never rejects: 127 when missing. */
export type NftRunner = (cmd: string, args: readonly string[], input?: string | Iterable<string>) => Promise<NftResult>;

/** What nft said went wrong: its first error and the command it refers to. */
export function nftError(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.trim()).filter(Boolean);
  const index = lines.findIndex((l) => l.includes('Error:'));
  if (index < 0) return lines[0] ?? 'no output';
  const error = lines[index]?.replace(/^\/dev\/stdin:[\d:-]+:\s*/, '') ?? '';
  const command = lines[index + 1];
  return command && !command.startsWith('^') ? `${error} (${command.slice(0, 160)})` : error;
}

/** Applies a transaction; rejects with one line naming nft's complaint. */
export async function applyTransaction(run: NftRunner, tx: Transaction): Promise<void> {
  const result = await run('nft', ['-f', '-'], renderTransaction(tx));
  if (result.code !== 0) throw new Error(`nft -f failed: ${nftError(result.stderr)}`);
}

/** Deletes a table; true when it was there. */
export async function deleteTable(run: NftRunner, family: NftFamily, table: string): Promise<boolean> {
  const result = await run('nft', ['delete', 'table', family, table]);
  if (result.code === 0) return true;
  if (/No such file or directory/.test(result.stderr)) return false;
  throw new Error(`nft delete table ${family} ${table} failed: ${nftError(result.stderr)}`);
}

const PROBE_TABLE = 'kproxy-probe';

/** A table using every kind of object, expression and statement the layout uses (see checkFeatures). */
export function probeTable(family: IPFamily): Table {
  const state: DesiredState = {
    node: { name: 'probe', shuttingDown: false },
    settings: { masqueradeAll: false, masqueradeBit: 14 },
    families: {
      IPv4: { family: 'IPv4', services: [], nodePortAddresses: ['10.0.0.0/8'], localDetector: { kind: 'ClusterCIDR', cidrs: ['10.244.0.0/16'] }, nodeIPs: [] },
      IPv6: { family: 'IPv6', services: [], nodePortAddresses: ['fd00::/8'], localDetector: { kind: 'ClusterCIDR', cidrs: ['fd00:244::/32'] }, nodeIPs: [] },
    },
  };
  const ctx = familyContext(state, family);
  const balancer = { keyKind: 'ip', outside: false, size: 2, protocol: 'tcp', masquerade: 'off-cluster' } as const;
  const saddr = { kind: 'addr', dir: 'saddr' } as const;
  const affinityKey = [saddr, { kind: 'numgen', mod: 1, offset: 7 }] as const;
  const ip = family === 'IPv4' ? '10.1.0.1' : 'fd00::1';
  return {
    family: FAMILY_OF[family], name: PROBE_TABLE,
    sets: [...baseSets(), balancerMapSpec(balancer), { name: 'affinity', key: affinityKey, flags: ['dynamic', 'timeout'], size: 1024, dynamic: true }],
    chains: [...baseChains(ctx), balancerChain(balancer, ctx), {
      name: 'affinity', rules: [
        { matches: [{ kind: 'lookup', key: affinityKey, set: 'affinity' }], statements: [{ kind: 'update', set: 'affinity', key: affinityKey, timeoutSeconds: 10 }, { kind: 'dnat', protocol: 'tcp', ip, port: 80 }] },
        { matches: [{ kind: 'cmp', left: { kind: 'numgen', mod: 2 }, value: { kind: 'number', value: 0 } }], statements: [{ kind: 'dnat', protocol: 'tcp', ip, port: 80 }] },
      ],
    }],
    elements: new Map(),
  };
}

/**
 * Whether this kernel and nft can hold kproxy's layout: creates a throwaway table with all of it, then deletes
 * it (`nft -c` would miss what the kernel validates at commit, e.g. which hooks allow `reject`).
 * Resolves to undefined when all is well, else to one line saying what is missing.
 */
export async function checkFeatures(run: NftRunner, family: IPFamily): Promise<string | undefined> {
  const version = await run('nft', ['--version']);
  if (version.code !== 0) return `the nft tool is not usable (${nftError(version.stderr || version.stdout)}); install the nftables package`;
  const table = probeTable(family);
  // Two transactions: the kernel validates hooks at commit, which a table deleted in the same batch never reaches.
  const result = await run('nft', ['-f', '-'], transactionText(tableTransaction(table, 'kproxy feature check')));
  const removed = await run('nft', ['delete', 'table', table.family, PROBE_TABLE]);
  if (result.code === 0 && removed.code === 0) return undefined;
  if (result.code === 0) return `cannot delete nft table ${table.family} ${PROBE_TABLE}: ${nftError(removed.stderr)}`;
  return `${version.stdout.trim().split('\n')[0] ?? 'nft'} or this kernel lacks what the nftables mode needs: ${nftError(result.stderr)} `
    + '(nf_tables with nat, numgen, fib, reject, dynamic sets and concatenated intervals; nft >= 1.0)';
}
