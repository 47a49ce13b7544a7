import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseMessages } from '../../modes/nftables/netlink/codec.ts';
import { encodeTransaction } from '../../modes/nftables/netlink/batch.ts';
import type { Chain, SetSpec } from '../../modes/nftables/ruleset.ts';
import { emptyTransaction, type Transaction } from '../../modes/nftables/transaction.ts';

const DADDR = { kind: 'addr', dir: 'daddr' } as const;
const FRONTEND = [DADDR, { kind: 'l4proto' }, { kind: 'dport' }] as const;
const serviceIps: SetSpec = { name: 'service-ips', key: FRONTEND, data: 'verdict' };
const chain = (name: string, rules: number): Chain => ({
  name,
  rules: Array.from({ length: rules }, (_, i) => ({ matches: [], statements: [{ kind: 'verdict', verdict: { kind: 'goto', chain: `target-${i}` } }] })),
});

describe('nfnetlink batches', () => {
  test('a refused message is named from its own bytes: the object, the rule number, the first element', () => {
    const tx: Transaction = {
      ...emptyTransaction('ip', 'kproxy'),
      ensureTable: { comment: 'kproxy' },
      addSets: [serviceIps],
      addChains: [chain('new', 3)],
      replaceChains: [chain('old', 2)],
      addElements: new Map([['service-ips', ['10.96.0.1 . tcp . 80 : goto new', '10.96.0.2 . udp . 53 : drop']]]),
      deleteElements: new Map([['service-ips', ['10.96.0.9 . tcp . 443']]]),
      deleteChains: ['stale'],
    };
    const batch = encodeTransaction(tx, new Map(), 100);
    const seqs = parseMessages(batch.bytes).filter((m) => m.attrs !== undefined && m.seq >= 101 && m.seq <= batch.lastSeq).map((m) => m.seq);
    assert.deepEqual(seqs.map((seq) => batch.describe(seq)), [
      'add table ip kproxy',
      'add set service-ips',
      'add chain new',
      'add rule 1 of chain new',
      'add rule 2 of chain new',
      'add rule 3 of chain new',
      'flush chain old',
      'add rule 1 of chain old',
      'add rule 2 of chain old',
      'delete 1 elements of service-ips (10.96.0.9 . tcp . 443, …)',
      'add 2 elements of service-ips (10.96.0.1 . tcp . 80, …)',
      'flush chain stale',
      'delete chain stale',
    ]);
    assert.equal(batch.describe(batch.lastSeq + 5), `message ${batch.lastSeq + 5}`);
  });

  test('every byte is written: memory that held something else leaks nothing into padding', () => {
    const tx: Transaction = {
      ...emptyTransaction('ip6', 'kproxy'),
      addSets: [serviceIps, { name: 'endpoints', key: [...FRONTEND, { kind: 'numgen', mod: 2 }], data: [DADDR, { kind: 'port-value', protocol: 'udp' }] }],
      addChains: [chain('c', 2)],
      addElements: new Map([['endpoints', ['fd00::1 . udp . 53 . 1 : fd00:1::2 . 5353']], ['service-ips', ['fd00::1 . udp . 53 : goto c']]]),
    };
    const encode = (fill: number): Buffer => {
      const allocUnsafe = Buffer.allocUnsafe;
      Buffer.allocUnsafe = (size: number) => allocUnsafe(size).fill(fill);
      try {
        return Buffer.from(encodeTransaction(tx, new Map(), 1).bytes);
      } finally {
        Buffer.allocUnsafe = allocUnsafe;
      }
    };
    assert.deepEqual(encode(0xa5), encode(0));
  });
});
