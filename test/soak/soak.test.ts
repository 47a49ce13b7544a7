// The CI guard of issue #16: the real agent (iptables mode, in a namespace) at 1k services × 10 endpoints under two
// minutes of churn — one endpoint change per 0.5 s, a service added and one removed every 10 s — from a manifest file
// (rewritten by rename) and from the real test apiserver, side by side. Fails when RSS after the first minute grows
// past 1.3× the peak of the warm-up's last 30 s, when descriptors or child processes grow, when the agent stops
// syncing or logs an error. The full matrix (every mode, 1k and 10k, 10 minutes) is `npm run bench soak`.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { kubeTestsDisabled } from '../kube/apiserver.ts';
import { runSoak, type SoakSource } from './soak.ts';

const kernelSkip = process.env.KPROXY_NO_KERNEL_TESTS === '1' ? 'KPROXY_NO_KERNEL_TESTS=1' : false;
const skips: Record<SoakSource, string | false> = {
  manifests: kernelSkip,
  kube: kernelSkip || (kubeTestsDisabled ? 'KPROXY_NO_KUBE_TESTS=1' : false),
};

describe('soak guard: memory holds under churn at 1k services (iptables mode)', { concurrency: true }, () => {
  for (const source of ['manifests', 'kube'] as const) {
    test(`${source} source: 2 minutes, RSS ≤ 1.3× its warm-up value, no growing descriptors or children`, { skip: skips[source] }, async (t) => {
      const result = await runSoak({
        mode: 'iptables', source, services: 1000,
        durationMs: 120_000, warmupMs: 60_000, windowMs: 30_000, rssFactor: 1.3,
        log: (line) => t.diagnostic(line),
      });
      for (const complaint of result.agentComplaints) t.diagnostic(`agent logged: ${complaint}`);
      const { rssMiB, rssRatio } = result.verdict;
      t.diagnostic(`RSS MiB start ${rssMiB.start.toFixed(0)}, warm-up ${rssMiB.warmup.toFixed(0)}, end ${rssMiB.end.toFixed(0)}, max ${rssMiB.max.toFixed(0)}; max after warm-up ${rssRatio.toFixed(2)}×`);
      assert.ok(result.verdict.pass, result.verdict.failures.join('; '));
    });
  }
});
