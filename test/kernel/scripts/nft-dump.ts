// Dumps a table of one family as the kernel holds it, attribute by attribute (hex), as one JSON line: what kproxy's
// netlink writer wrote can then be compared byte for byte with what nft wrote. Run inside the namespace.
// Handles, set IDs and use counters are left out (they differ between two equal tables).
// usage: nft-dump.ts FAMILY TABLE
import { attrMap, attrString, NFPROTO, NFT_MSG, parseAttrs, stringAttr } from '../../../modes/nftables/netlink/codec.ts';
import { NetfilterSocket } from '../../../modes/nftables/netlink/socket.ts';

type Tree = Array<[number, Tree | string]>;
const [family = 'ip', table = 'kproxy'] = process.argv.slice(2) as ['ip' | 'ip6', string];

function nested(b: Buffer): boolean {
  if (b.length < 4) return false;
  let o = 0;
  while (o + 4 <= b.length) {
    const l = b.readUInt16LE(o);
    if (l < 4 || o + l > b.length) return false;
    o += (l + 3) & ~3;
  }
  return o === b.length;
}
const tree = (b: Buffer, depth = 0): Tree => parseAttrs(b).map((a) => [a.type, depth < 6 && nested(a.data) ? tree(a.data, depth + 1) : a.data.toString('hex')]);
const plain = (b: Buffer, skip: readonly number[]): Tree => parseAttrs(b).filter((a) => !skip.includes(a.type)).map((a) => [a.type, a.data.toString('hex')]);

const socket = await NetfilterSocket.open();
const proto = NFPROTO[family];
const out: { table: Tree; chains: Record<string, Tree>; rules: Record<string, unknown[]>; sets: Record<string, Tree>; elements: Record<string, string[]> } =
  { table: [], chains: {}, rules: {}, sets: {}, elements: {} };
try {
  await socket.query(NFT_MSG.getTable, proto, [stringAttr(1, table)], false, (m) => { out.table = plain(m.attrs ?? Buffer.alloc(0), [3, 4, 7]); });
  await socket.query(NFT_MSG.getChain, proto, [stringAttr(1, table)], true, (m) => {
    const a = attrMap(m.attrs ?? Buffer.alloc(0));
    if (attrString(a.get(1)) !== table) return;
    out.chains[attrString(a.get(3)) ?? ''] = parseAttrs(m.attrs ?? Buffer.alloc(0)).filter((x) => ![2, 6, 8, 9].includes(x.type))
      .map((x) => [x.type, x.type === 4 ? tree(x.data) : x.data.toString('hex')]);
  });
  await socket.query(NFT_MSG.getRule, proto, [stringAttr(1, table)], true, (m) => {
    const a = attrMap(m.attrs ?? Buffer.alloc(0));
    const expressions = parseAttrs(a.get(4) ?? Buffer.alloc(0)).map((e) => {
      const ea = attrMap(e.data);
      return [attrString(ea.get(1)), tree(ea.get(2) ?? Buffer.alloc(0))];
    });
    (out.rules[attrString(a.get(2)) ?? ''] ??= []).push({ expressions, userdata: (a.get(7) ?? Buffer.alloc(0)).toString('hex') });
  });
  await socket.query(NFT_MSG.getSet, proto, [stringAttr(1, table)], true, (m) => {
    const a = attrMap(m.attrs ?? Buffer.alloc(0));
    out.sets[attrString(a.get(2)) ?? ''] = parseAttrs(m.attrs ?? Buffer.alloc(0)).filter((x) => ![10, 16].includes(x.type))
      .map((x) => [x.type, x.type === 9 ? tree(x.data) : x.data.toString('hex')]);
  });
  for (const name of Object.keys(out.sets)) {
    const list: string[] = [];
    await socket.query(NFT_MSG.getSetElem, proto, [stringAttr(1, table), stringAttr(2, name)], true, (m) => {
      const elements = attrMap(m.attrs ?? Buffer.alloc(0)).get(3);
      if (elements) for (const e of parseAttrs(elements)) list.push(JSON.stringify(tree(e.data)));
    });
    out.elements[name] = list.sort();
  }
} finally {
  socket.close();
}
process.stdout.write(`${JSON.stringify(out)}\n`);
