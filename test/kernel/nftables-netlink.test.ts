// kproxy writes its tables over netlink as nft would: the packet-flow cluster's tables written by nft from
// `kproxy plan`'s text and by the mode's netlink writer read back from the kernel identical, attribute by
// attribute (rules as expressions, sets with their typeof user data, every element), for both families.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { mode } from '../../modes/nftables/index.ts';
import { flowClusterState } from '../flows/table.ts';
import { addNamespace, deleteNamespace, nsRun, uniquePrefix } from '../harness/index.ts';
import { kernelSuite, requireKernelTools } from './preflight.ts';

const script = (name: string): string => fileURLToPath(new URL(`./scripts/${name}`, import.meta.url));

describe('nftables netlink writer against nft', kernelSuite, () => {
  let byNft = '';
  let byKproxy = '';
  before(async () => {
    requireKernelTools(['nft']);
    const prefix = uniquePrefix();
    byNft = `${prefix}-bynft`;
    byKproxy = `${prefix}-bykproxy`;
    await addNamespace(byNft);
    await addNamespace(byKproxy);
    await nsRun(byNft, 'nft', ['-f', '-'], { input: mode.render(mode.compile(flowClusterState())).replace(/^#.*\n/gm, '') });
    await nsRun(byKproxy, process.execPath, [script('nft-write.ts')]);
  });
  after(async () => {
    if (byNft) await deleteNamespace(byNft);
    if (byKproxy) await deleteNamespace(byKproxy);
  });

  for (const family of ['ip', 'ip6'] as const) {
    test(`${family}: the kernel holds the same table, byte for byte`, async () => {
      const dump = async (ns: string): Promise<Record<string, unknown>> =>
        JSON.parse((await nsRun(ns, process.execPath, [script('nft-dump.ts'), family, 'kproxy'])).stdout) as Record<string, unknown>;
      const [nft, kproxy] = [await dump(byNft), await dump(byKproxy)];
      assert.ok(Object.keys(nft.rules as object).length > 5, 'the table has rules');
      for (const part of ['table', 'chains', 'sets', 'rules', 'elements']) assert.deepEqual(kproxy[part], nft[part], part);
    });
  }
});
