// Reads kproxy's nftables table with the mode's netlink reader, from inside a namespace (a netlink socket talks to
// the namespace of its process), and prints it as one JSON line.
// usage: nft-read.ts FAMILY TABLE SETS_JSON   (SETS_JSON: the SetSpecs whose elements to read)
import { readElements, readGeneration, readTable } from '../../../modes/nftables/netlink/read.ts';
import { NetfilterSocket } from '../../../modes/nftables/netlink/socket.ts';
import type { NftFamily, SetSpec } from '../../../modes/nftables/ruleset.ts';

const [family = 'ip', table = 'kproxy', setsJson = '[]'] = process.argv.slice(2);
const specs = JSON.parse(setsJson) as SetSpec[];
const socket = await NetfilterSocket.open();
try {
  const generation = await readGeneration(socket);
  const found = await readTable(socket, family as NftFamily, table);
  const elements: Record<string, string[]> = {};
  if (found) {
    for (const spec of specs) {
      const list: string[] = [];
      await readElements(socket, family as NftFamily, table, spec, (key, value) => list.push(value === undefined ? key : `${key} : ${value}`));
      elements[spec.name] = list.sort();
    }
  }
  const out = found ? {
    generation,
    chains: Object.fromEntries([...found.chains.values()].map((c) => [c.name, { base: c.base, rules: c.rules }])),
    sets: Object.fromEntries(found.sets),
    elements,
  } : { generation, absent: true };
  process.stdout.write(`${JSON.stringify(out)}\n`);
} finally {
  socket.close();
}
