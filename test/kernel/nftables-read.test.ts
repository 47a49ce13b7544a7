// The netlink reader against the real kernel, in a throwaway namespace: what `nft -f` loads from the renderer's
// text comes back in the same canonical text (elements of every key layout, intervals, verdicts, rule comments,
// base chains), and edits by someone else show.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { ruleComment, tableTransaction, transactionText } from '../../modes/nftables/render.ts';
import type { Chain, Element, NftFamily, SetSpec } from '../../modes/nftables/ruleset.ts';
import { addNamespace, deleteNamespace, nsRun, uniquePrefix } from '../harness/index.ts';
import { kernelSuite, requireKernelTools } from './preflight.ts';

const READER = fileURLToPath(new URL('./scripts/nft-read.ts', import.meta.url));
const DADDR = { kind: 'addr', dir: 'daddr' } as const;
const SADDR = { kind: 'addr', dir: 'saddr' } as const;
const FRONTEND = [DADDR, { kind: 'l4proto' }, { kind: 'dport' }] as const;

interface ReadBack {
  absent?: boolean;
  generation: number;
  chains: Record<string, { base?: { type: string; hook: string; priority: number; policy: string }; rules: Array<{ comment?: string; expressions: string }> }>;
  sets: Record<string, { interval: boolean; timeout: boolean; keyLength: number; data?: string | number }>;
  elements: Record<string, string[]>;
}

function fixture(family: NftFamily): { sets: SetSpec[]; chains: Chain[]; elements: Map<string, Element[]> } {
  const v6 = family === 'ip6';
  const a = (v4: string, v6text: string): string => (v6 ? v6text : v4);
  const sets: SetSpec[] = [
    { name: 'service-ips', key: FRONTEND, data: 'verdict' },
    { name: 'service-nodeports', key: [{ kind: 'l4proto' }, { kind: 'dport' }], data: 'verdict' },
    { name: 'endpoints-2', key: [...FRONTEND, { kind: 'numgen', mod: 2 }], data: [DADDR, { kind: 'dport' }] },
    { name: 'cluster-cidrs', key: [SADDR], flags: ['interval'] },
    { name: 'firewall-allow', key: [...FRONTEND, SADDR], flags: ['interval'] },
    { name: 'hairpin', key: [SADDR, DADDR] },
    { name: 'affinity-X', key: [SADDR, { kind: 'numgen', mod: 1 }], flags: ['dynamic', 'timeout'], size: 4096, dynamic: true },
  ];
  const chains: Chain[] = [
    { name: 'nat-prerouting', base: { type: 'nat', hook: 'prerouting', priority: -100 }, rules: [{ matches: [], statements: [{ kind: 'verdict', verdict: { kind: 'jump', chain: 'services' } }], comment: 'kproxy' }] },
    { name: 'services', rules: [{ matches: [], statements: [{ kind: 'vmap', key: FRONTEND, map: 'service-ips' }] }] },
    { name: 'endpoints-2-tcp', rules: [{ matches: [], statements: [{ kind: 'dnat-map', protocol: 'tcp', key: [...FRONTEND, { kind: 'numgen', mod: 2 }], map: 'endpoints-2' }] }] },
    { name: 'no-endpoints', rules: [{ matches: [], statements: [{ kind: 'reject' }] }] },
  ];
  const cip = a('10.96.0.1', 'fd00:96::1');
  const elements = new Map<string, Element[]>([
    ['service-ips', [
      `${cip} . tcp . 80 : goto endpoints-2-tcp`,
      `${a('10.96.0.2', 'fd00:96::2')} . udp . 53 : goto no-endpoints`,
      `${a('10.96.0.3', 'fd00:96::3')} . sctp . 9000 : drop`,
    ]],
    ['service-nodeports', ['tcp . 30080 : goto endpoints-2-tcp']],
    ['endpoints-2', [
      `${cip} . tcp . 80 . 0 : ${a('10.244.1.2', 'fd00:244::2')} . 8080`,
      `${cip} . tcp . 80 . 1 : ${a('10.244.1.3', 'fd00:244::3')} . 8080`,
    ]],
    ['cluster-cidrs', v6 ? ['fd00:244::/32', 'fd01::1'] : ['10.244.0.0/16', '10.252.0.1', '255.255.255.0/24']],
    ['firewall-allow', [
      `${a('192.168.200.13', 'fd00:200::13')} . tcp . 80 . ${a('10.0.0.0/8', 'fd00:100::/64')}`,
      `${a('192.168.200.13', 'fd00:200::13')} . tcp . 80 . ${a('192.168.200.13', 'fd00:200::13')}`,
    ]],
    ['hairpin', [`${a('10.244.1.2', 'fd00:244::2')} . ${a('10.244.1.2', 'fd00:244::2')}`]],
  ]);
  return { sets, chains, elements };
}

describe('nftables netlink reader on a real kernel', kernelSuite, () => {
  let ns = '';
  before(async () => {
    requireKernelTools(['nft']);
    ns = `${uniquePrefix()}-nftread`;
    await addNamespace(ns);
  });
  after(async () => { if (ns) await deleteNamespace(ns); });

  const read = async (family: NftFamily, sets: readonly SetSpec[]): Promise<ReadBack> => {
    const result = await nsRun(ns, process.execPath, [READER, family, 'kproxy', JSON.stringify(sets)]);
    return JSON.parse(result.stdout) as ReadBack;
  };

  for (const family of ['ip', 'ip6'] as const) {
    test(`${family}: what the renderer loads reads back as the same text`, async () => {
      const { sets, chains, elements } = fixture(family);
      const text = transactionText(tableTransaction({ family, name: 'kproxy', sets, chains, elements }, 'kproxy test'));
      await nsRun(ns, 'nft', ['-f', '-'], { input: text });
      const back = await read(family, sets.filter((s) => !s.dynamic));
      assert.equal(back.absent, undefined);
      for (const [name, list] of elements) assert.deepEqual(back.elements[name], [...list].sort(), name);
      for (const chain of chains) {
        assert.deepEqual(back.chains[chain.name]?.rules.map((r) => r.comment), chain.rules.map((r) => ruleComment(r, family)), chain.name);
      }
      assert.deepEqual(back.chains['nat-prerouting']?.base, { type: 'nat', hook: 'prerouting', priority: -100, policy: 'accept' });
      assert.equal(back.chains.services?.base, undefined);
      assert.deepEqual(back.sets['service-ips'], { name: 'service-ips', interval: false, timeout: false, keyLength: family === 'ip' ? 12 : 24, data: 'verdict' });
      assert.deepEqual(back.sets['endpoints-2'], { name: 'endpoints-2', interval: false, timeout: false, keyLength: family === 'ip' ? 16 : 28, data: family === 'ip' ? 8 : 20 });
      assert.equal(back.sets['affinity-X']?.timeout, true);

      // Someone else edits the table (a rule rewritten under kproxy's comment): the reader shows it.
      const cip = family === 'ip' ? '10.96.0.1' : 'fd00:96::1';
      await nsRun(ns, 'nft', ['-f', '-'], {
        input: `delete element ${family} kproxy endpoints-2 { ${cip} . tcp . 80 . 1 }\nflush chain ${family} kproxy services\n`
          + `add rule ${family} kproxy services counter ${family === 'ip' ? 'ip' : 'ip6'} daddr . meta l4proto . th dport vmap @service-ips comment "${ruleComment(chains[1]?.rules[0] ?? { matches: [], statements: [] }, family)}"\n`,
      });
      const edited = await read(family, sets.filter((s) => s.name === 'endpoints-2'));
      assert.ok(edited.generation > back.generation);
      assert.equal(edited.elements['endpoints-2']?.length, 1);
      const before = back.chains.services?.rules[0];
      const after = edited.chains.services?.rules[0];
      assert.equal(after?.comment, before?.comment, 'the comment was copied');
      assert.notEqual(after?.expressions, before?.expressions, 'a copied comment does not hide a changed rule');
    });
  }

  test('an absent table reads as absent', async () => {
    await nsRun(ns, 'nft', ['delete', 'table', 'ip', 'kproxy']);
    const back = await read('ip', []);
    assert.equal(back.absent, true);
  });
});
