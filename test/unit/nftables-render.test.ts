import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ruleBody, ruleComment, ruleDigest, ruleText, transactionText } from '../../modes/nftables/render.ts';
import type { Chain, Rule, SetSpec } from '../../modes/nftables/ruleset.ts';
import { emptyTransaction, isEmptyTransaction, transactionSize, type Transaction } from '../../modes/nftables/transaction.ts';

const DADDR = { kind: 'addr', dir: 'daddr' } as const;
const SADDR = { kind: 'addr', dir: 'saddr' } as const;
const FRONTEND = [DADDR, { kind: 'l4proto' }, { kind: 'dport' }] as const;

const endpoints3: SetSpec = { name: 'endpoints-3', key: [...FRONTEND, { kind: 'numgen', mod: 3 }], data: [DADDR, { kind: 'port-value', protocol: 'tcp' }] };
const pick: Chain = {
  name: 'endpoints-3-tcp',
  rules: [{ matches: [], statements: [{ kind: 'dnat-map', protocol: 'tcp', key: [...FRONTEND, { kind: 'numgen', mod: 3 }], map: 'endpoints-3' }] }],
};

describe('rules', () => {
  test('each match and statement in nft syntax, for both families', () => {
    const rule: Rule = {
      matches: [
        { kind: 'cmp', left: DADDR, negate: true, value: { kind: 'cidr', value: '127.0.0.0/8' } },
        { kind: 'fib-local', dir: 'daddr' },
        { kind: 'lookup', key: [SADDR], set: 'cluster-cidrs', negate: true },
        { kind: 'cmp', left: { kind: 'numgen', mod: 4 }, value: { kind: 'number', value: 0 } },
        { kind: 'mark-clear', mask: 0x4000 },
        { kind: 'ct-dnat' },
      ],
      statements: [
        { kind: 'mark-or', value: 0x4000 },
        { kind: 'update', set: 'affinity-X', key: [SADDR, { kind: 'numgen', mod: 1, offset: 77 }], timeoutSeconds: 10800 },
        { kind: 'dnat', protocol: 'udp', ip: '10.1.0.1', port: 53 },
      ],
    };
    assert.equal(ruleBody(rule, 'ip'),
      'ip daddr != 127.0.0.0/8 fib daddr type local ip saddr != @cluster-cidrs numgen random mod 4 0 meta mark & 0x4000 == 0 '
      + 'ct status dnat meta mark set meta mark | 0x4000 update @affinity-X { ip saddr . numgen random mod 1 offset 77 timeout 10800s } '
      + 'meta l4proto udp dnat ip to 10.1.0.1:53');
    const v6: Rule = { matches: [], statements: [{ kind: 'dnat', protocol: 'tcp', ip: 'fd00::1', port: 80 }] };
    assert.equal(ruleBody(v6, 'ip6'), 'meta l4proto tcp dnat ip6 to [fd00::1]:80');
    assert.equal(ruleBody(pick.rules[0] as Rule, 'ip6'),
      'meta l4proto tcp dnat ip6 to ip6 daddr . meta l4proto . th dport . numgen random mod 3 map @endpoints-3');
  });

  test('the comment ends in the digest of the rule text, so an edited rule no longer matches its comment', () => {
    const rule: Rule = { matches: [], statements: [{ kind: 'verdict', verdict: { kind: 'goto', chain: 'x' } }], comment: 'say "hi"' };
    const digest = ruleDigest(ruleBody(rule, 'ip'));
    assert.match(digest, /^[0-9a-f]{8}$/);
    assert.equal(ruleComment(rule, 'ip'), `say 'hi' #${digest}`);
    assert.equal(ruleText(rule, 'ip'), `goto x comment "say 'hi' #${digest}"`);
    const other: Rule = { ...rule, statements: [{ kind: 'verdict', verdict: { kind: 'jump', chain: 'x' } }] };
    assert.notEqual(ruleComment(other, 'ip'), ruleComment(rule, 'ip'));
  });
});

describe('transactions', () => {
  test('declarations come before references, deletions of what is referenced come last', () => {
    const tx: Transaction = {
      ...emptyTransaction('ip', 'kproxy'),
      ensureTable: { comment: 'kproxy' },
      addSets: [endpoints3, { name: 'service-ips', key: FRONTEND, data: 'verdict' }],
      addChains: [pick, { name: 'nat-output', base: { type: 'nat', hook: 'output', priority: -100 }, rules: [] }],
      replaceChains: [{ name: 'services', rules: [{ matches: [], statements: [{ kind: 'vmap', key: FRONTEND, map: 'service-ips' }] }] }],
      deleteElements: new Map([['endpoints-2', ['10.96.0.1 . tcp . 80 . 0', '10.96.0.1 . tcp . 80 . 1']]]),
      addElements: new Map([['service-ips', ['10.96.0.1 . tcp . 80 : goto endpoints-3-tcp']]]),
      deleteChains: ['endpoints-2-tcp'],
      deleteSets: ['endpoints-2'],
    };
    const lines = transactionText(tx).trim().split('\n').map((l) => l.replace(/ comment ".*"$/, ''));
    assert.deepEqual(lines, [
      `add table ip kproxy { comment "kproxy"; }`,
      'add map ip kproxy endpoints-3 { typeof ip daddr . meta l4proto . th dport . numgen random mod 3 : ip daddr . tcp dport; }',
      'add map ip kproxy service-ips { typeof ip daddr . meta l4proto . th dport : verdict; }',
      'add chain ip kproxy endpoints-3-tcp',
      'add chain ip kproxy nat-output { type nat hook output priority -100; policy accept; }',
      'add rule ip kproxy endpoints-3-tcp meta l4proto tcp dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 3 map @endpoints-3',
      'flush chain ip kproxy services',
      'add rule ip kproxy services ip daddr . meta l4proto . th dport vmap @service-ips',
      'delete element ip kproxy endpoints-2 { 10.96.0.1 . tcp . 80 . 0, 10.96.0.1 . tcp . 80 . 1 }',
      'add element ip kproxy service-ips { 10.96.0.1 . tcp . 80 : goto endpoints-3-tcp }',
      'flush chain ip kproxy endpoints-2-tcp',
      'delete chain ip kproxy endpoints-2-tcp',
      'delete set ip kproxy endpoints-2',
    ]);
    assert.deepEqual(transactionSize(tx), { elements: 3, chains: 4, sets: 3 });
  });

  test('sets with flags and size; many elements are split over several commands', () => {
    const tx: Transaction = {
      ...emptyTransaction('ip6', 'kproxy'),
      addSets: [{ name: 'affinity-X', key: [SADDR, { kind: 'numgen', mod: 1 }], flags: ['dynamic', 'timeout'], size: 1000, dynamic: true }],
      addElements: new Map([['hairpin', Array.from({ length: 1201 }, (_, i) => `fd00::${i.toString(16)} . fd00::${i.toString(16)}`)]]),
    };
    const lines = transactionText(tx).trim().split('\n');
    assert.equal(lines[0], 'add set ip6 kproxy affinity-X { typeof ip6 saddr . numgen random mod 1; flags dynamic,timeout; size 1000; }');
    assert.equal(lines.length, 4, 'one declaration and three element commands of at most 500');
    assert.ok(lines[3]?.startsWith('add element ip6 kproxy hairpin { fd00::3e8 . fd00::3e8, '));
    assert.equal(lines[3]?.split(', ').length, 201);
  });

  test('an empty transaction is recognised', () => {
    assert.ok(isEmptyTransaction(emptyTransaction('ip', 'kproxy')));
    assert.ok(!isEmptyTransaction({ ...emptyTransaction('ip', 'kproxy'), deleteChains: ['x'] }));
    assert.ok(isEmptyTransaction({ ...emptyTransaction('ip', 'kproxy'), addElements: new Map([['s', []]]) }));
  });
});
