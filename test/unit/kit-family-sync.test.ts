// The kit's per-family sync driver with writers that record what they are asked, and the errors a mode's failure
// becomes across the seam (codes, the family, exit statuses).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FamilySync, type CompiledFamilies, type FamilyWriter } from '../../kit/family-sync.ts';
import type { CommandRunner } from '../../kit/exec.ts';
import { ModeError } from '../../kit/errors.ts';
import type { FamilySource } from '../../kit/plan-diff.ts';
import { cleanupIptables, createIptablesProxy } from '../../modes/iptables/apply.ts';
import { asKproxyError, ApplyError, ToolMissingError } from '../../src/errors.ts';
import { silentLogger } from '../../src/log.ts';
import type { ModeMetrics } from '../../src/model/metrics.ts';
import type { IPFamily } from '../../src/model/types.ts';
import { defaultModeSettings } from '../../src/config/index.ts';
import { bindMode } from '../../src/modes.ts';
import { desiredState, endpoint, servicePort } from '../harness/state.ts';

type Source = FamilySource<string>;
const sourceOf = (family: IPFamily, contextKey = 'ctx'): Source => ({ family, contextKey, services: [], compileService: () => '' });
const compiled = (context = 'ctx'): CompiledFamilies<Source> => ({
  state: desiredState([servicePort({ name: 'web', clusterIP: '10.96.0.1', port: 80, clusterEndpoints: [endpoint('10.244.1.2', 80)] })]),
  families: { IPv4: sourceOf('IPv4', context), IPv6: sourceOf('IPv6', context) },
});

/** Writers that log "<family> full|partial" and fail when told to. */
function recordingWriters(calls: string[], failing: Set<string>): Map<IPFamily, FamilyWriter<Source>> {
  const writer = (family: IPFamily): FamilyWriter<Source> => ({
    async full() {
      calls.push(`${family} full`);
      if (failing.has(`${family} full`)) throw new Error(`${family} restore refused\nsecond line`);
      return 10;
    },
    async partial() {
      calls.push(`${family} partial`);
      if (failing.has(`${family} partial`)) throw new Error(`${family} partial refused`);
      return 1;
    },
  });
  return new Map([['IPv4', writer('IPv4')], ['IPv6', writer('IPv6')]]);
}

const quietRun: CommandRunner = async () => ({ code: 0, stdout: '', stderr: '' });

function recordingMetrics(): { metrics: ModeMetrics; failures: string[] } {
  const failures: string[] = [];
  return {
    failures,
    metrics: {
      restoreFailed: (family, partial) => { failures.push(`${family} ${partial ? 'partial' : 'full'}`); },
      rulesCounted: () => undefined, conntrackReconciled: () => undefined, cleanupFailed: () => undefined,
    },
  };
}

describe('FamilySync', () => {
  test('full first, partial after, full again when the family context changes', async () => {
    const calls: string[] = [];
    const driver = new FamilySync({ families: recordingWriters(calls, new Set()), run: quietRun, log: silentLogger() });
    const first = await driver.sync(compiled(), { full: false });
    await driver.sync(compiled(), { full: false });
    await driver.sync(compiled('other'), { full: false });
    assert.deepEqual(calls, ['IPv4 full', 'IPv6 full', 'IPv4 partial', 'IPv6 partial', 'IPv4 full', 'IPv6 full']);
    assert.equal(first.full, true);
    assert.deepEqual(first.stats?.['linesWritten'], 20);
  });

  test('a failing family: a coded error naming it, counted for it alone, and a full sync of every family next', async () => {
    const calls: string[] = [];
    const failing = new Set(['IPv6 partial']);
    const { metrics, failures } = recordingMetrics();
    const driver = new FamilySync({ families: recordingWriters(calls, failing), run: quietRun, log: silentLogger(), metrics });
    await driver.sync(compiled(), { full: true });
    await assert.rejects(driver.sync(compiled(), { full: false }), (err: unknown) =>
      err instanceof ModeError && err.code === 'KP_ERR_APPLY_FAILED' && err.family === 'IPv6' && err.message === 'IPv6: IPv6 partial refused');
    assert.deepEqual(failures, ['IPv6 partial']);
    failing.clear();
    calls.length = 0;
    await driver.sync(compiled(), { full: false });
    assert.deepEqual(calls, ['IPv4 full', 'IPv6 full'], 'after a failure the kernel may hold anything: everything is rewritten');
  });
});

describe('errors across the mode seam', () => {
  test('a sync failure becomes an ApplyError with the family; a mode error keeps its code', () => {
    const fromFamily = asKproxyError(new ModeError('KP_ERR_APPLY_FAILED', 'IPv6: refused', { family: 'IPv6' }));
    assert.ok(fromFamily instanceof ApplyError);
    assert.equal(fromFamily.family, 'IPv6');
    assert.equal(fromFamily.oneLine(), 'IPv6: refused (KP_ERR_APPLY_FAILED)');
    const missing = asKproxyError(new ModeError('KP_ERR_TOOL_MISSING', 'iptables-legacy is not usable'));
    assert.ok(missing instanceof ToolMissingError);
    assert.equal(missing.exitCode, 1);
    assert.equal(asKproxyError(new Error('a bug')), undefined);
  });

  test('iptables without its tools: KP_ERR_TOOL_MISSING, through the registry too', async () => {
    const noTools: CommandRunner = async (cmd) => ({ code: 127, stdout: '', stderr: `${cmd}: not found` });
    const options = { log: silentLogger(), settings: { ...defaultModeSettings(), iptablesVariant: 'legacy' as const }, config: {}, run: noTools };
    await assert.rejects(createIptablesProxy(options), (err: unknown) =>
      err instanceof ModeError && err.code === 'KP_ERR_TOOL_MISSING' && /iptables-legacy is not usable/.test(err.message));
  });

  test('a proxier failure that carries no code is an ApplyError at the registry', async () => {
    const loaded = bindMode<null>({
      name: 'iptables', compile: () => null, render: () => '', trace: () => ({ kind: 'untouched' }),
      create: async () => ({ sync: async () => { throw new Error('kernel said no\ndetails'); }, stop: async () => undefined }),
      cleanup: async () => undefined,
    });
    const running = await loaded.create({} as never);
    await assert.rejects(running.sync(desiredState([]), { full: true }), (err: unknown) =>
      err instanceof ApplyError && err.message === 'iptables: kernel said no');
  });

  test('a cleanup that cannot restore says so with the apply code', async () => {
    const listing = '*nat\n:KPROXY-SERVICES - [0:0]\n-A PREROUTING -j KPROXY-SERVICES\nCOMMIT\n';
    const run: CommandRunner = async (cmd) => (cmd.endsWith('-save')
      ? { code: 0, stdout: listing, stderr: '' }
      : { code: 1, stdout: '', stderr: 'iptables-restore: line 2 failed' });
    await assert.rejects(cleanupIptables({ log: silentLogger(), settings: defaultModeSettings(), config: {}, run }), (err: unknown) =>
      err instanceof ModeError && err.code === 'KP_ERR_APPLY_FAILED' && /^iptables cleanup incomplete: /.test(err.message));
  });
});
