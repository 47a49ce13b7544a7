// The start-up check that this kernel can hold kproxy's layout: a throwaway table with every kind of object,
// expression and statement the layout uses, written the way kproxy writes everything, then deleted.
import type { DesiredState, IPFamily } from '../../src/model/types.ts';
import { baseChains, baseSets, balancerChain, balancerMapSpec, familyContext } from './compile.ts';
import type { Kernel } from './kernel.ts';
import { tableTransaction } from './render.ts';
import { FAMILY_OF, type Table } from './ruleset.ts';
import { deleteTableTransaction } from './transaction.ts';

export const PROBE_TABLE = 'kproxy-probe';

export function probeTable(family: IPFamily): Table {
  const state: DesiredState = {
    node: { name: 'probe', shuttingDown: false },
    settings: { masqueradeAll: false, masqueradeBit: 14, conntrackTcpLiberal: false },
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
    elements: new Map([[balancerMapSpec(balancer).name, [`${ip} . tcp . 80 . 0 : ${ip} . 80`]], ['firewall-allow', [`${ip} . tcp . 80 . ${family === 'IPv4' ? '10.0.0.0/8' : 'fd00::/8'}`]]]),
  };
}

/**
 * Resolves to undefined when this kernel can hold the layout, else to one line saying what it refused. Two
 * transactions: the kernel validates hooks at commit, which a table deleted in the same batch never reaches.
 */
export async function checkFeatures(kernel: Kernel, family: IPFamily): Promise<string | undefined> {
  const table = probeTable(family);
  const sets = new Map(table.sets.map((s) => [s.name, s]));
  try {
    await kernel.transact(tableTransaction(table, 'kproxy feature check'), sets);
  } catch (error) {
    return `this kernel cannot hold the nftables mode's ${FAMILY_OF[family]} table (${(error as Error).message}); `
      + 'it needs nf_tables with nat, numgen, fib, reject, dynamic sets and concatenated intervals (Linux >= 5.6)';
  } finally {
    await kernel.transact(deleteTableTransaction(table.family, PROBE_TABLE), sets).catch(() => {});
  }
  return undefined;
}
