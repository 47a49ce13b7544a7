// The start-up settings: kube-proxy's conntrack arithmetic (pure), the thin apply against files of the test's
// own, oom_score_adj, and which modes get them. The real kernel is test/kernel/startup.test.ts.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { conntrackMax, planConntrack, type ConntrackKnob } from '../../src/startup/conntrack-plan.ts';
import { applyConntrack } from '../../src/startup/conntrack-apply.ts';
import { applyOomScoreAdj } from '../../src/startup/oom.ts';
import { applyStartupSettings } from '../../src/startup/index.ts';
import { resolveConfig } from '../../src/config/index.ts';
import type { ConntrackSettings } from '../../src/model/settings.ts';
import { memoryLogger } from '../userspace/helpers.ts';

const DEFAULTS: ConntrackSettings = resolveConfig({ flags: {} }).config.conntrack;
const KERNEL_DEFAULTS: Partial<Record<ConntrackKnob, number>> = {
  nf_conntrack_max: 65536, hashsize: 16384, nf_conntrack_tcp_timeout_established: 432000, nf_conntrack_tcp_timeout_close_wait: 60,
  nf_conntrack_tcp_be_liberal: 0, nf_conntrack_udp_timeout: 30, nf_conntrack_udp_timeout_stream: 120,
};

describe('nf_conntrack_max as kube-proxy computes it', () => {
  const cases: Array<[string, Pick<ConntrackSettings, 'maxPerCore' | 'min'>, number, number]> = [
    ['per core × CPUs when above min', { maxPerCore: 32768, min: 131072 }, 8, 262144],
    ['min when per core × CPUs is below', { maxPerCore: 32768, min: 131072 }, 2, 131072],
    ['equal', { maxPerCore: 65536, min: 131072 }, 2, 131072],
    ['maxPerCore 0 leaves it alone whatever min says', { maxPerCore: 0, min: 999999 }, 64, 0],
    ['min 0', { maxPerCore: 1000, min: 0 }, 3, 3000],
  ];
  for (const [name, settings, cpus, want] of cases) test(name, () => assert.equal(conntrackMax(settings, cpus), want));
});

describe('planConntrack', () => {
  const knobs = (plan: ReturnType<typeof planConntrack>): Record<string, number> => Object.fromEntries(plan.changes.map((c) => [c.knob, c.value]));

  test('kube-proxy\'s defaults on a kernel with its own defaults (2 CPUs)', () => {
    const plan = planConntrack(DEFAULTS, { cpus: 2, current: KERNEL_DEFAULTS });
    assert.deepEqual(knobs(plan), {
      nf_conntrack_max: 131072, hashsize: 32768, nf_conntrack_tcp_timeout_established: 86400, nf_conntrack_tcp_timeout_close_wait: 3600,
    });
  });

  test('never lowers nf_conntrack_max nor the hash table an admin raised; the timeouts are set either way', () => {
    const plan = planConntrack(DEFAULTS, { cpus: 2, current: { ...KERNEL_DEFAULTS, nf_conntrack_max: 1_000_000, hashsize: 8192, nf_conntrack_tcp_timeout_established: 600 } });
    assert.deepEqual(knobs(plan), { nf_conntrack_tcp_timeout_established: 86400, nf_conntrack_tcp_timeout_close_wait: 3600 });
    assert.deepEqual(plan.kept.map((k) => [k.knob, k.current, k.value]), [['nf_conntrack_max', 1_000_000, 131072]]);
  });

  test('raises the hash table only when it is below max/4', () => {
    const plan = planConntrack(DEFAULTS, { cpus: 2, current: { ...KERNEL_DEFAULTS, hashsize: 65536 } });
    assert.equal(knobs(plan).nf_conntrack_max, 131072);
    assert.equal(knobs(plan).hashsize, undefined);
  });

  test('values already in place are not written', () => {
    const settled = { ...KERNEL_DEFAULTS, nf_conntrack_max: 131072, hashsize: 32768, nf_conntrack_tcp_timeout_established: 86400, nf_conntrack_tcp_timeout_close_wait: 3600 };
    assert.deepEqual(planConntrack(DEFAULTS, { cpus: 2, current: settled }).changes, []);
  });

  test('0 leaves every knob as it is; be_liberal and the UDP timeouts only when asked for', () => {
    const none: ConntrackSettings = { maxPerCore: 0, min: 131072, tcpEstablishedTimeoutMs: 0, tcpCloseWaitTimeoutMs: 0, tcpBeLiberal: false, udpTimeoutMs: 0, udpStreamTimeoutMs: 0 };
    assert.deepEqual(planConntrack(none, { cpus: 2, current: KERNEL_DEFAULTS }).changes, []);
    const udp = planConntrack({ ...none, tcpBeLiberal: true, udpTimeoutMs: 45_500, udpStreamTimeoutMs: 150_000 }, { cpus: 2, current: KERNEL_DEFAULTS });
    assert.deepEqual(knobs(udp), { nf_conntrack_tcp_be_liberal: 1, nf_conntrack_udp_timeout: 45, nf_conntrack_udp_timeout_stream: 150 });
  });

  test('unreadable knobs are written', () => {
    assert.deepEqual(knobs(planConntrack(DEFAULTS, { cpus: 4, current: {} })), {
      nf_conntrack_max: 131072, hashsize: 32768, nf_conntrack_tcp_timeout_established: 86400, nf_conntrack_tcp_timeout_close_wait: 3600,
    });
  });
});

describe('applyConntrack (files of the test\'s own)', () => {
  function fakeKernel(values: Partial<Record<ConntrackKnob, number>>): { dir: string; paths: { netfilter: string; hashsize: string }; read: (knob: ConntrackKnob) => string } {
    const dir = mkdtempSync(join(tmpdir(), 'kproxy-conntrack-'));
    const netfilter = join(dir, 'netfilter');
    mkdirSync(netfilter);
    const paths = { netfilter, hashsize: join(dir, 'hashsize') };
    const file = (knob: ConntrackKnob): string => (knob === 'hashsize' ? paths.hashsize : join(netfilter, knob));
    for (const [knob, value] of Object.entries(values)) writeFileSync(file(knob as ConntrackKnob), `${value}\n`);
    return { dir, paths, read: (knob) => readFileSync(file(knob), 'utf8').trim() };
  }

  test('writes the plan and logs one info line', () => {
    const kernel = fakeKernel(KERNEL_DEFAULTS);
    try {
      const log = memoryLogger();
      const result = applyConntrack(DEFAULTS, { log, paths: kernel.paths, cpus: 2 });
      assert.equal(kernel.read('nf_conntrack_max'), '131072');
      assert.equal(kernel.read('hashsize'), '32768');
      assert.equal(kernel.read('nf_conntrack_tcp_timeout_established'), '86400');
      assert.equal(kernel.read('nf_conntrack_udp_timeout'), '30');
      assert.equal(result.failed.length, 0);
      assert.equal(log.lines.filter((l) => l.level === 'info').length, 1);
    } finally {
      rmSync(kernel.dir, { recursive: true, force: true });
    }
  });

  test('a knob the kernel refuses is one warning for all, and the others are still set', () => {
    const kernel = fakeKernel(KERNEL_DEFAULTS);
    try {
      // Writes that fail for root too: the knob is a folder.
      for (const path of [kernel.paths.hashsize, join(kernel.paths.netfilter, 'nf_conntrack_max')]) {
        rmSync(path);
        mkdirSync(path);
      }
      const log = memoryLogger();
      const result = applyConntrack(DEFAULTS, { log, paths: kernel.paths, cpus: 2 });
      assert.deepEqual(result.failed.map((f) => f.knob), ['nf_conntrack_max', 'hashsize']);
      assert.equal(kernel.read('nf_conntrack_tcp_timeout_established'), '86400');
      const warnings = log.lines.filter((l) => l.level === 'warn');
      assert.equal(warnings.length, 1);
      assert.match(warnings[0]?.msg ?? '', /^Could not set conntrack nf_conntrack_max=131072 \(now unreadable: EISDIR, machine-wide: set it on the host\), hashsize=32768 .*; the kernel's values stay$/);
    } finally {
      rmSync(kernel.dir, { recursive: true, force: true });
    }
  });

  test('no conntrack module: one warning naming what could not be set', () => {
    const kernel = fakeKernel({});
    rmSync(kernel.paths.netfilter, { recursive: true });
    try {
      const log = memoryLogger();
      const result = applyConntrack(DEFAULTS, { log, paths: kernel.paths, cpus: 2 });
      assert.deepEqual(result.failed.map((f) => f.knob), ['nf_conntrack_max', 'nf_conntrack_tcp_timeout_established', 'nf_conntrack_tcp_timeout_close_wait']);
      assert.match(log.lines.find((l) => l.level === 'warn')?.msg ?? '', /now unreadable: ENOENT/);
    } finally {
      rmSync(kernel.dir, { recursive: true, force: true });
    }
  });
});

describe('oom_score_adj and which modes get the conntrack settings', () => {
  test('oomScoreAdj is written to the process\'s file; a failure is a debug line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kproxy-oom-'));
    try {
      const path = join(dir, 'oom_score_adj');
      writeFileSync(path, '0\n');
      assert.equal(applyOomScoreAdj(-999, memoryLogger(), path), true);
      assert.equal(readFileSync(path, 'utf8'), '-999');
      const log = memoryLogger();
      assert.equal(applyOomScoreAdj(-999, log, join(dir, 'missing', 'oom_score_adj')), false);
      assert.deepEqual(log.lines.map((l) => l.level), ['debug']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('conntrack only for a mode that uses it (a mode without the flag touches no sysctl)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kproxy-startup-'));
    try {
      const netfilter = join(dir, 'netfilter');
      mkdirSync(netfilter);
      writeFileSync(join(netfilter, 'nf_conntrack_tcp_timeout_established'), '432000');
      writeFileSync(join(dir, 'oom'), '0');
      const { config } = resolveConfig({ flags: { 'oom-score-adj': '-42' } });
      const paths = { conntrackPaths: { netfilter, hashsize: join(dir, 'hashsize') }, oomScoreAdjPath: join(dir, 'oom') };
      const userspace = applyStartupSettings(config, { name: 'userspace' }, { log: memoryLogger(), ...paths });
      assert.equal(userspace.conntrack, undefined);
      assert.equal(readFileSync(join(netfilter, 'nf_conntrack_tcp_timeout_established'), 'utf8'), '432000');
      assert.equal(readFileSync(join(dir, 'oom'), 'utf8'), '-42');
      const iptables = applyStartupSettings(config, { name: 'iptables', usesConntrack: true }, { log: memoryLogger(), ...paths });
      assert.ok(iptables.conntrack);
      assert.equal(readFileSync(join(netfilter, 'nf_conntrack_tcp_timeout_established'), 'utf8'), '86400');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
