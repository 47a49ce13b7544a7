// Runs node:test files inside ONE boot of the test VM and brings their results back to a host test, where each
// guest test becomes a subtest: a failure in the guest fails `npm test` with the guest's own message.
import type { TestContext } from 'node:test';
import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { GUEST_OUT, repoRoot, runInVm, type VmResult } from './vm.ts';
import type { GuestTestResult } from './reporter.ts';

export interface GuestSuiteOptions {
  /** Test files, relative to the checkout (not *.test.ts: npm test must not run them on the host). */
  readonly files: readonly string[];
  /** Bash lines run before the tests (e.g. modprobe). */
  readonly setup?: string;
  readonly env?: Readonly<Record<string, string>>;
  readonly timeoutMs: number;
  readonly memoryMiB?: number;
}

export interface GuestSuiteRun {
  readonly vm: VmResult;
  readonly results: readonly GuestTestResult[];
}

/** Stream the guest's console to stderr (KPROXY_VM_VERBOSE=1): a stuck boot is then visible while it happens. */
const verbose = process.env.KPROXY_VM_VERBOSE === '1';

export async function runGuestSuite(options: GuestSuiteOptions): Promise<GuestSuiteRun> {
  // One node --test per file, in the order given (node would sort them): a file may rely on running first.
  const runs = options.files.map((file, i) =>
    'node --test --test-concurrency=1 --test-reporter=spec --test-reporter-destination=stdout '
      + `--test-reporter=${join(repoRoot, 'test/vm/reporter.ts')} --test-reporter-destination=${GUEST_OUT}/results-${i}.jsonl `
      + `'${file}' || status=1`);
  const script = [options.setup ?? '', 'status=0', ...runs, 'exit $status'].join('\n');
  const vm = await runInVm({
    script,
    timeoutMs: options.timeoutMs,
    ...(options.env ? { env: options.env } : {}),
    ...(options.memoryMiB ? { memoryMiB: options.memoryMiB } : {}),
    ...(verbose ? { onLine: (line: string) => process.stderr.write(`vm| ${line}\n`) } : {}),
  });
  const results: GuestTestResult[] = [];
  options.files.forEach((_, i) => {
    const file = join(vm.outDir, `results-${i}.jsonl`);
    if (!existsSync(file)) return;
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      if (line !== '') results.push(JSON.parse(line) as GuestTestResult);
    }
  });
  return { vm, results };
}

function consoleTail(vm: VmResult, lines = 40): string {
  return vm.console.replaceAll('\r', '').split('\n').slice(-lines).join('\n');
}

/**
 * One host subtest per top-level guest test (named "<file>: <test>"), failing with the guest's errors, and a
 * last check that the guest ran to the end: a crash, a timeout or a skipped guest test fails the suite.
 */
export async function reportGuestSuite(t: TestContext, run: GuestSuiteRun, expectedFiles: readonly string[]): Promise<void> {
  const { vm, results } = run;
  t.diagnostic(`VM: boot ${vm.bootMs === undefined ? '?' : (vm.bootMs / 1000).toFixed(1)} s, whole run ${(vm.totalMs / 1000).toFixed(1)} s`);
  let nestedFailures: string[] = [];
  for (const result of results) {
    if (result.nesting > 0) {
      if (result.outcome === 'fail') nestedFailures.push(`${result.name}: ${result.error ?? ''}`);
      if (result.outcome === 'skip' || result.outcome === 'todo') nestedFailures.push(`${result.name}: skipped in the VM`);
      continue;
    }
    const failures = nestedFailures;
    nestedFailures = [];
    await t.test(`${basename(result.file ?? '?')}: ${result.name}`, () => {
      if (result.outcome === 'skip' || result.outcome === 'todo') throw new Error('skipped in the VM: every VM test must run');
      if (result.outcome === 'fail' || failures.length > 0) {
        throw new Error([result.error ?? '', ...failures].filter((text) => text !== '').join('\n---\n'));
      }
    });
  }
  await t.test('the VM ran every file to the end', () => {
    const seen = new Set(results.map((result) => basename(result.file ?? '')));
    const missing = expectedFiles.map((file) => basename(file)).filter((file) => !seen.has(file));
    const problem = vm.timedOut ? 'the VM timed out'
      : vm.exitCode === undefined ? 'the VM stopped before the tests finished'
      : missing.length > 0 ? `no results from ${missing.join(', ')}`
      : vm.exitCode !== 0 && !results.some((result) => result.outcome === 'fail')
        ? `the guest exited ${vm.exitCode} although no test failed` : undefined;
    if (problem !== undefined) throw new Error(`${problem}; console tail:\n${consoleTail(vm)}`);
  });
}
