// Creates kproxy's tables for the packet-flow cluster with the mode's netlink writer, inside the namespace it runs in.
// usage: nft-write.ts
import { compileFamilies, assembleSource } from '../../../modes/nftables/diff.ts';
import { NetlinkKernel } from '../../../modes/nftables/kernel.ts';
import { TABLE_COMMENT } from '../../../modes/nftables/names.ts';
import { tableTransaction } from '../../../modes/nftables/render.ts';
import { IP_FAMILIES } from '../../../src/util/ip.ts';
import { flowClusterState } from '../../flows/table.ts';

const compiled = compileFamilies(flowClusterState());
const kernel = new NetlinkKernel();
try {
  for (const family of IP_FAMILIES) {
    const table = assembleSource(compiled.families[family]).table;
    await kernel.transact(tableTransaction(table, TABLE_COMMENT), new Map(table.sets.map((s) => [s.name, s])));
  }
} finally {
  kernel.close();
}
