// judgeSoak: when a soak run's samples mean a memory budget held, and when they mean a leak.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { judgeSoak, type SoakSample } from '../soak/verdict.ts';

const CRITERIA = { warmupMs: 120_000, rssFactor: 1.2, windowMs: 60_000 };

/** Samples every 10 s for `minutes`; each field a function of the sample's time in seconds. */
function run(minutes: number, f: { rssMiB: (s: number) => number; fds?: (s: number) => number; children?: (s: number) => number; syncs?: (s: number) => number | undefined }): SoakSample[] {
  return Array.from({ length: minutes * 6 + 1 }, (_, i) => {
    const s = i * 10;
    return {
      atMs: s * 1000, rssKiB: f.rssMiB(s) * 1024, heapUsedBytes: 50 * 2 ** 20, heapTotalBytes: 60 * 2 ** 20,
      fds: f.fds?.(s) ?? 40, nodeProcesses: 1, descendants: f.children?.(s) ?? 0, syncs: f.syncs ? f.syncs(s) : s, changes: s * 2,
    };
  });
}

describe('judgeSoak', () => {
  const sawtooth = (s: number): number => 150 + ((s / 10) % 4) * 20; // 150..210, GC cycles

  const cases: Array<{ name: string; samples: SoakSample[]; pass: boolean; failure?: RegExp; errors?: number }> = [
    { name: 'a flat run passes', samples: run(10, { rssMiB: () => 200 }), pass: true },
    { name: 'a steady saw-tooth passes: the warm-up value is the peak of the cycle', samples: run(10, { rssMiB: sawtooth }), pass: true },
    { name: 'a leak fails', samples: run(10, { rssMiB: (s) => 150 + s * 0.2 }), pass: false, failure: /RSS grew to \d+ MiB .*1\.\d+× its warm-up value \d+ MiB \(allowed 1\.2×\)/ },
    { name: 'growth under the factor passes', samples: run(10, { rssMiB: (s) => (s <= 120 ? 200 : 230) }), pass: true },
    { name: 'descriptors that climb fail', samples: run(10, { rssMiB: () => 200, fds: (s) => 40 + Math.floor(s / 60) }), pass: false, failure: /open descriptors grew: never below 49 in the final 60 s, at most 42 at the warm-up/ },
    { name: 'descriptors that come and go pass', samples: run(10, { rssMiB: () => 200, fds: (s) => 40 + ((s / 10) % 3) }), pass: true },
    { name: 'a child process per minute fails', samples: run(10, { rssMiB: () => 200, children: (s) => Math.floor(s / 60) }), pass: false, failure: /child processes grew/ },
    { name: 'a tool in flight now and then passes', samples: run(10, { rssMiB: () => 200, children: (s) => ((s / 10) % 2) }), pass: true },
    { name: 'an agent that stopped syncing at the warm-up fails', samples: run(10, { rssMiB: () => 200, syncs: (s) => Math.min(s, 120) }), pass: false, failure: /no sync finished after the warm-up/ },
    { name: 'an agent syncing slowly (minutes per sync) passes', samples: run(10, { rssMiB: () => 200, syncs: (s) => Math.floor(s / 200) }), pass: true },
    { name: 'an agent whose /metrics stopped answering fails', samples: run(10, { rssMiB: () => 200, syncs: (s) => (s < 500 ? s : undefined) }), pass: false, failure: /no sync finished/ },
    { name: 'logged errors fail', samples: run(10, { rssMiB: () => 200 }), pass: false, failure: /the agent logged 2 errors/, errors: 2 },
    { name: 'a run no longer than its warm-up fails', samples: run(2, { rssMiB: () => 200 }), pass: false, failure: /too few samples/ },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const verdict = judgeSoak(c.samples, CRITERIA, c.errors ?? 0);
      assert.equal(verdict.pass, c.pass, verdict.failures.join('; '));
      if (c.failure) assert.ok(verdict.failures.some((f) => c.failure?.test(f)), verdict.failures.join('; '));
    });
  }

  test('summaries: start, the peak of the warm-up window, end, max', () => {
    const verdict = judgeSoak(run(10, { rssMiB: sawtooth }), CRITERIA);
    assert.deepEqual(verdict.rssMiB, { start: 150, warmup: 210, end: 150, max: 210 });
    assert.equal(verdict.rssRatio, 1);
    assert.deepEqual(verdict.heapUsedMiB, { start: 50, warmup: 50, end: 50, max: 50 });
  });
});
