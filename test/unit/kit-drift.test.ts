// The canary machinery without a kernel: the drift watch's timing (kit/drift-watch.ts), the iptables canary probe
// against scripted tool answers (kit/iptables/canary.ts), and the nfacct listing (kit/nfacct.ts). The real kernel
// proves them in test/kernel/iptables-safeguards.test.ts.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DriftWatch, type DriftProbe } from '../../kit/drift-watch.ts';
import { canaryProbe } from '../../kit/iptables/canary.ts';
import { toolsFor } from '../../kit/iptables/variant.ts';
import type { TableSize } from '../../kit/iptables/xt-info.ts';
import type { CommandResult, CommandRunner } from '../../kit/exec.ts';
import { parseNfacctPackets } from '../../kit/nfacct.ts';
import { FakeClock } from '../../src/sync/fake-clock.ts';
import { silentLogger } from '../../src/log.ts';

/** A probe whose answer the test sets, counting its checks, notes before writes, and settles. */
function scriptedProbe(): DriftProbe & { gone: string | undefined; checks: number; befores: number; settles: number; hold?: Promise<void> } {
  const probe = {
    gone: undefined as string | undefined, checks: 0, befores: 0, settles: 0, hold: undefined as Promise<void> | undefined,
    async check() {
      probe.checks++;
      await probe.hold;
      return probe.gone;
    },
    async beforeWrite() {
      probe.befores++;
    },
    async settle() {
      probe.settles++;
    },
  };
  return probe;
}

describe('DriftWatch', () => {
  test('checks every interval once armed; on drift asks once, then waits to be armed again', async () => {
    const clock = new FakeClock(0);
    const probe = scriptedProbe();
    const asked: string[] = [];
    const watch = new DriftWatch({ probe, intervalMs: 1000, onDrift: (why) => asked.push(why), log: silentLogger(), clock });
    await clock.advance(5000);
    assert.equal(probe.checks, 0, 'nothing before the first full sync armed it');
    watch.arm();
    await clock.advance(3000);
    assert.equal(probe.checks, 3);
    probe.gone = 'nat table: chain KPROXY-CANARY is gone';
    await clock.advance(5000);
    assert.deepEqual(asked, ['nat table: chain KPROXY-CANARY is gone']);
    assert.equal(probe.checks, 4, 'no check until the full sync that repairs it');
    probe.gone = undefined;
    watch.arm();
    await clock.advance(2000);
    assert.equal(probe.checks, 6);
    await watch.stop();
    await clock.advance(5000);
    assert.equal(probe.checks, 6, 'stopped');
  });

  test('no check while the mode writes; a check in progress is waited for; the probe settles after', async () => {
    const clock = new FakeClock(0);
    const probe = scriptedProbe();
    const asked: string[] = [];
    const watch = new DriftWatch({ probe, intervalMs: 1000, onDrift: (why) => asked.push(why), log: silentLogger(), clock });
    watch.arm();
    let release!: () => void;
    const writing = watch.writing(() => new Promise<void>((resolve) => { release = resolve; }));
    probe.gone = 'flushed (by our own write)';
    await clock.advance(5000);
    assert.equal(probe.checks, 0, 'no check during the write');
    release();
    await writing;
    assert.deepEqual([probe.befores, probe.settles], [1, 1]);
    probe.gone = undefined;
    // A check that is running when a write starts: the write waits for it, and its answer is dropped.
    let unblock!: () => void;
    probe.hold = new Promise<void>((resolve) => { unblock = resolve; });
    probe.gone = 'seen mid-write';
    await clock.advance(1000);
    assert.equal(probe.checks, 1);
    let wrote = false;
    const second = watch.writing(async () => { wrote = true; });
    await clock.advance(0);
    assert.equal(wrote, false, 'the write waits for the check in progress');
    unblock();
    await second;
    assert.equal(wrote, true);
    assert.deepEqual(asked, [], 'an answer given while a write began is not trusted');
    await watch.stop();
  });
});

interface Call { readonly cmd: string; readonly args: readonly string[] }

/** Answers `iptables -S CHAIN` per table from a script; records the calls. */
function tools(answers: Record<string, CommandResult>): { run: CommandRunner; calls: Call[] } {
  const calls: Call[] = [];
  const run: CommandRunner = async (cmd, args) => {
    calls.push({ cmd, args });
    const table = args[args.indexOf('-t') + 1] ?? '';
    return answers[`${cmd} ${table}`] ?? { code: 0, stdout: '-N KPROXY-CANARY\n-A KPROXY-CANARY -m comment --comment canary -j RETURN\n', stderr: '' };
  };
  return { run, calls };
}

describe('canaryProbe (iptables)', () => {
  const v4 = toolsFor('legacy', 'IPv4');
  const v6 = toolsFor('legacy', 'IPv6');
  const nft4 = toolsFor('nft', 'IPv4');
  const probeWith = (run: CommandRunner, families = [v4, v6], sizes?: Map<string, TableSize>) => canaryProbe({
    run, families: () => families, chain: 'KPROXY-CANARY', tables: ['nat', 'filter'],
    ...(sizes && { sizes: { read: (family, table) => sizes.get(`${family}/${table}`) } }),
  });

  const cases: ReadonlyArray<{ name: string; answers: Record<string, CommandResult>; families?: typeof v4[]; want: string | undefined }> = [
    { name: 'every canary in place', answers: {}, want: undefined },
    {
      name: 'a legacy chain deleted (a firewall reload)',
      answers: { 'ip6tables-legacy filter': { code: 1, stdout: '', stderr: 'ip6tables: No chain/target/match by that name.\n' } },
      want: 'ip6tables filter table: chain KPROXY-CANARY is gone',
    },
    {
      name: 'an nft chain deleted (iptables-nft 1.8.9 calls it incompatible)',
      answers: { 'iptables-nft nat': { code: 1, stdout: '', stderr: "iptables v1.8.9 (nf_tables): chain `KPROXY-CANARY' in table `nat' is incompatible, use 'nft' tool.\n" } },
      families: [nft4], want: 'iptables nat table: chain KPROXY-CANARY is gone',
    },
    { name: 'a chain flushed (iptables -t nat -F)', answers: { 'iptables-legacy nat': { code: 0, stdout: '-N KPROXY-CANARY\n', stderr: '' } }, want: 'iptables nat table: chain KPROXY-CANARY was flushed' },
    {
      name: 'the lock was busy: no verdict (next time)',
      answers: { 'iptables-legacy nat': { code: 4, stdout: '', stderr: 'Another app is currently holding the xtables lock. Stopped waiting after 5s.\n' } },
      want: undefined,
    },
    { name: 'a family that holds nothing is not checked', answers: { 'ip6tables-legacy nat': { code: 1, stdout: '', stderr: 'No chain/target/match by that name.' } }, families: [v4], want: undefined },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const { run } = tools(c.answers);
      assert.equal(await probeWith(run, c.families).check(), c.want);
    });
  }

  test('a legacy table is listed only when its size changed since its canary was seen, kproxy\'s own writes aside', async () => {
    const sizes = new Map<string, TableSize>([['IPv4/nat', { entries: 500_000, bytes: 90_000_000 }], ['IPv4/filter', { entries: 40, bytes: 9000 }]]);
    const { run, calls } = tools({});
    const probe = probeWith(run, [v4], sizes);
    const listed = (): string[] => calls.map((c) => c.args.join(' '));
    await probe.check();
    assert.equal(calls.length, 2, 'first check lists both tables');
    await probe.check();
    await probe.check();
    assert.equal(calls.length, 2, 'unchanged sizes: nothing listed');
    sizes.set('IPv4/filter', { entries: 39, bytes: 8800 });
    await probe.check();
    assert.deepEqual(listed().slice(2), ['-w 5 -t filter -S KPROXY-CANARY'], 'someone else changed filter');
    // kproxy's own write changes nat: its new size is the reference, nothing is listed for it.
    await probe.beforeWrite?.();
    sizes.set('IPv4/nat', { entries: 500_010, bytes: 90_001_000 });
    await probe.settle?.();
    await probe.check();
    assert.equal(calls.length, 3, 'a write of our own is not drift');
    // Someone else changed nat before kproxy wrote: its size after the write tells nothing, it is listed.
    sizes.set('IPv4/nat', { entries: 120_000, bytes: 20_000_000 });
    await probe.beforeWrite?.();
    sizes.set('IPv4/nat', { entries: 120_004, bytes: 20_000_400 });
    await probe.settle?.();
    await probe.check();
    assert.deepEqual(listed().slice(3), ['-w 5 -t nat -S KPROXY-CANARY']);
  });

  test('nft tables are listed at every check (no size shortcut)', async () => {
    const sizes = new Map<string, TableSize>([['IPv4/nat', { entries: 1, bytes: 1 }], ['IPv4/filter', { entries: 1, bytes: 1 }]]);
    const { run, calls } = tools({});
    const probe = probeWith(run, [nft4], sizes);
    await probe.check();
    await probe.check();
    assert.equal(calls.length, 4);
  });
});

describe('nfacct listing', () => {
  test('the packets of the named counter', () => {
    const text = '{ pkts = 00000000000000000000, bytes = 00000000000000000000 } = other;\n{ pkts = 00000000000000000012, bytes = 00000000000000000720 } = ct_state_invalid_dropped_pkts;\n';
    assert.equal(parseNfacctPackets(text, 'ct_state_invalid_dropped_pkts'), 12);
    assert.equal(parseNfacctPackets(text, 'other'), 0);
    assert.equal(parseNfacctPackets(text, 'missing'), undefined);
    assert.equal(parseNfacctPackets('nfacct v1.0.2: error: No such file or directory\n', 'other'), undefined);
  });
});
