import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { decideNextSync, backoffDelay, SyncLoop, type ScheduleInput, type ScheduleDecision } from '../../src/sync/index.ts';
import { FakeClock } from '../../src/sync/fake-clock.ts';
import { silentLogger } from '../../src/log.ts';
import type { DesiredState, FamilyPlan } from '../../src/model/types.ts';
import type { SyncRequest, SyncReport } from '../../src/model/mode.ts';
import type { SyncFailed, SyncSucceeded } from '../../src/model/observe.ts';

const base: ScheduleInput = {
  now: 10_000, ready: true, changePending: false, fullRequested: false, needFull: false, minSyncPeriodMs: 1000,
  resyncPeriodMs: 30_000, fullSyncPeriodMs: 30_000,
};
/** kube-proxy's iptables cadence: nothing runs when nothing changed, a full sync every hour. */
const hourly: Partial<ScheduleInput> = { resyncPeriodMs: 3_600_000, fullSyncPeriodMs: 3_600_000 };

describe('decideNextSync', () => {
  const cases: Array<{ name: string; input: Partial<ScheduleInput>; want: ScheduleDecision }> = [
    { name: 'not ready: nothing, even with a change', input: { ready: false, changePending: true }, want: { kind: 'idle' } },
    { name: 'first sync runs at once and is full', input: { changePending: true, needFull: true }, want: { kind: 'run', full: true } },
    { name: 'first sync without a change still runs (initial programming)', input: { needFull: true }, want: { kind: 'run', full: true } },
    { name: 'change long after last sync: run partial', input: { changePending: true, lastStartedAt: 5000, lastFullAt: 0 }, want: { kind: 'run', full: false } },
    { name: 'change within minSyncPeriod: wait for its end', input: { changePending: true, lastStartedAt: 9500 }, want: { kind: 'wait', at: 10_500 } },
    { name: 'change exactly at minSyncPeriod boundary runs', input: { changePending: true, lastStartedAt: 9000, lastFullAt: 0 }, want: { kind: 'run', full: false } },
    { name: 'no change: wait for periodic resync', input: { lastStartedAt: 9000 }, want: { kind: 'wait', at: 39_000 } },
    { name: 'periodic resync due: full', input: { lastStartedAt: -20_000, lastFullAt: -20_000 }, want: { kind: 'run', full: true } },
    { name: 'change when periodic also due: full', input: { changePending: true, lastStartedAt: -20_000, lastFullAt: -20_000 }, want: { kind: 'run', full: true } },
    { name: 'change once the full period passed, even with syncs since: full', input: { changePending: true, lastStartedAt: 8000, lastFullAt: -20_000 }, want: { kind: 'run', full: true } },
    { name: 'hourly: no change, nothing before the hour', input: { ...hourly, lastStartedAt: 9000, lastFullAt: 0 }, want: { kind: 'wait', at: 3_609_000 } },
    { name: 'hourly: a change runs partial', input: { ...hourly, changePending: true, lastStartedAt: 5000, lastFullAt: 0 }, want: { kind: 'run', full: false } },
    { name: 'hourly: the resync an hour after the last sync is full', input: { ...hourly, now: 3_700_000, lastStartedAt: 100_000, lastFullAt: 0 }, want: { kind: 'run', full: true } },
    { name: 'hourly: a change an hour after the last full sync is full', input: { ...hourly, now: 3_600_000, changePending: true, lastStartedAt: 3_500_000, lastFullAt: 0 }, want: { kind: 'run', full: true } },
    { name: 'full sync asked for: runs at once, full', input: { ...hourly, fullRequested: true, lastStartedAt: 5000, lastFullAt: 0 }, want: { kind: 'run', full: true } },
    { name: 'full sync asked for: never sooner than minSyncPeriod', input: { ...hourly, fullRequested: true, lastStartedAt: 9500, lastFullAt: 0 }, want: { kind: 'wait', at: 10_500 } },
    { name: 'failing: a full sync asked for waits for the retry', input: { fullRequested: true, lastStartedAt: 5000, retryAt: 12_000, needFull: true }, want: { kind: 'wait', at: 12_000 } },
    { name: 'failing: wait for retry even with a change', input: { changePending: true, lastStartedAt: 5000, retryAt: 12_000, needFull: true }, want: { kind: 'wait', at: 12_000 } },
    { name: 'failing: retry due runs full', input: { lastStartedAt: 5000, retryAt: 10_000, needFull: true }, want: { kind: 'run', full: true } },
    { name: 'retry never sooner than minSyncPeriod', input: { lastStartedAt: 9800, retryAt: 10_000, needFull: true }, want: { kind: 'wait', at: 10_800 } },
    { name: 'minSyncPeriod 0: change runs at once', input: { changePending: true, lastStartedAt: 9999, lastFullAt: 0, minSyncPeriodMs: 0 }, want: { kind: 'run', full: false } },
    { name: 'needFull carried to next change-driven sync', input: { changePending: true, lastStartedAt: 0, needFull: true }, want: { kind: 'run', full: true } },
  ];
  for (const c of cases) {
    test(c.name, () => assert.deepEqual(decideNextSync({ ...base, ...c.input }), c.want));
  }
});

describe('backoffDelay', () => {
  const opts = { initialMs: 1000, maxMs: 30_000, factor: 2 };
  const cases: Array<[number, number]> = [[1, 1000], [2, 2000], [3, 4000], [5, 16_000], [6, 30_000], [20, 30_000]];
  for (const [attempt, want] of cases) test(`attempt ${attempt} → ${want} ms`, () => assert.equal(backoffDelay(opts, attempt), want));
});

function family(family: 'IPv4' | 'IPv6'): FamilyPlan {
  return { family, services: [], nodePortAddresses: 'all', localDetector: { kind: 'None' }, nodeIPs: [] };
}
const emptyState: DesiredState = {
  node: { name: 'n1', shuttingDown: false },
  settings: { masqueradeAll: false, masqueradeBit: 14, conntrackTcpLiberal: false },
  families: { IPv4: family('IPv4'), IPv6: family('IPv6') },
};

interface Harness {
  clock: FakeClock;
  loop: SyncLoop;
  calls: Array<{ at: number; full: boolean }>;
  succeeded: SyncSucceeded[];
  failed: SyncFailed[];
  queued: number[];
  setReady(ready: boolean): void;
  failNext(n: number): void;
  /** Make the next sync take this long (in fake time). */
  slowNext(ms: number): void;
}

interface HarnessOptions {
  minSyncPeriodMs?: number;
  syncPeriodMs?: number;
  resyncPeriodMs?: number;
  fullSyncPeriodMs?: number;
  ready?: boolean;
}

function harness(opts: HarnessOptions = {}): Harness {
  const clock = new FakeClock(0);
  let ready = opts.ready ?? true;
  let failures = 0;
  let slowMs = 0;
  let concurrent = 0;
  const calls: Harness['calls'] = [];
  const succeeded: SyncSucceeded[] = [];
  const failed: SyncFailed[] = [];
  const queued: number[] = [];
  const proxier = {
    async sync(_state: DesiredState, request: SyncRequest): Promise<SyncReport> {
      concurrent++;
      assert.equal(concurrent, 1, 'two syncs at once');
      calls.push({ at: clock.now(), full: request.full });
      try {
        if (slowMs > 0) {
          const ms = slowMs;
          slowMs = 0;
          await new Promise<void>((resolve) => clock.setTimer(resolve, ms));
        }
        if (failures > 0) {
          failures--;
          throw new Error('iptables-restore: exit status 4');
        }
        return { full: request.full };
      } finally {
        concurrent--;
      }
    },
  };
  const loop = new SyncLoop({
    clock, log: silentLogger(), proxier, snapshot: () => emptyState, isReady: () => ready,
    minSyncPeriodMs: opts.minSyncPeriodMs ?? 1000, syncPeriodMs: opts.syncPeriodMs ?? 30_000,
    ...(opts.resyncPeriodMs !== undefined && { resyncPeriodMs: opts.resyncPeriodMs }),
    ...(opts.fullSyncPeriodMs !== undefined && { fullSyncPeriodMs: opts.fullSyncPeriodMs }),
    observers: [{
      changeQueued: (at) => queued.push(at),
      syncSucceeded: (e) => succeeded.push(e),
      syncFailed: (e) => failed.push(e),
    }, { syncSucceeded: () => { throw new Error('a broken observer must not break the loop'); } }],
  });
  return {
    clock, loop, calls, succeeded, failed, queued,
    setReady: (r) => { ready = r; },
    failNext: (n) => { failures = n; },
    slowNext: (ms) => { slowMs = ms; },
  };
}

describe('SyncLoop', () => {
  test('nothing is programmed before the source is ready; the first sync is full', async () => {
    const h = harness({ ready: false });
    h.loop.start();
    h.loop.requestSync();
    await h.clock.advance(60_000);
    assert.deepEqual(h.calls, []);
    h.setReady(true);
    h.loop.requestSync();
    await h.clock.advance(0);
    assert.deepEqual(h.calls, [{ at: 60_000, full: true }]);
    assert.equal(h.succeeded[0]?.queuedAt, 0, 'queuedAt is the oldest change');
    await h.loop.stop();
  });

  test('changes reported in one turn (a manifest reload: Services, then EndpointSlices) are one sync that sees them all', async () => {
    const clock = new FakeClock(0);
    let version = 0;
    const seen: number[] = [];
    const loop = new SyncLoop({
      clock, log: silentLogger(), isReady: () => true, minSyncPeriodMs: 0, syncPeriodMs: 30_000,
      snapshot: () => { seen.push(version); return emptyState; },
      proxier: { sync: async (_state: DesiredState, request: SyncRequest) => ({ full: request.full }) },
    });
    loop.start();
    await clock.advance(0);
    seen.length = 0;
    version = 1; // the Services of the reload
    loop.requestSync();
    version = 2; // its EndpointSlices, in the same turn
    loop.requestSync();
    await clock.advance(0);
    assert.deepEqual(seen, [2]);
    await loop.stop();
  });

  test('a burst of changes is coalesced and minSyncPeriod is honoured', async () => {
    const h = harness();
    h.loop.start();
    await h.clock.advance(0); // initial full sync at t=0
    for (let i = 0; i < 5; i++) {
      await h.clock.advance(100);
      h.loop.requestSync();
    }
    await h.clock.advance(2000);
    assert.deepEqual(h.calls, [{ at: 0, full: true }, { at: 1000, full: false }]);
    assert.equal(h.succeeded[1]?.queuedAt, 100);
    assert.deepEqual(h.queued, [100, 200, 300, 400, 500]);
    await h.loop.stop();
  });

  test('periodic full resync after syncPeriod without changes', async () => {
    const h = harness({ syncPeriodMs: 10_000 });
    h.loop.start();
    await h.clock.advance(25_000);
    assert.deepEqual(h.calls.map((c) => [c.at, c.full]), [[0, true], [10_000, true], [20_000, true]]);
    assert.equal(h.succeeded[1]?.queuedAt, undefined, 'a resync with no change has no queuedAt');
    await h.loop.stop();
  });

  test('kube-proxy\'s iptables cadence: changes sync partially, nothing runs while idle, a full sync every hour', async () => {
    const h = harness({ syncPeriodMs: 30_000, resyncPeriodMs: 3_600_000, fullSyncPeriodMs: 3_600_000 });
    h.loop.start();
    await h.clock.advance(10_000);
    h.loop.requestSync();
    await h.clock.advance(3_000_000);
    assert.deepEqual(h.calls.map((c) => [c.at, c.full]), [[0, true], [10_000, false]], 'no sync while idle');
    // Under constant changes the hour still brings a full sync (kube-proxy: time since the last full one).
    for (let at = 3_010_000; at <= 3_710_000; at += 100_000) {
      await h.clock.advance(at - h.clock.now());
      h.loop.requestSync();
      await h.clock.advance(0);
    }
    assert.deepEqual(h.calls.slice(2).map((c) => [c.at, c.full]), [
      [3_010_000, false], [3_110_000, false], [3_210_000, false], [3_310_000, false], [3_410_000, false], [3_510_000, false],
      [3_610_000, true], [3_710_000, false],
    ]);
    await h.loop.stop();
  });

  test('a full sync asked for (drift) runs at once, without counting as a change; asked during a sync, once more after it', async () => {
    const h = harness({ resyncPeriodMs: 3_600_000, fullSyncPeriodMs: 3_600_000 });
    h.loop.start();
    await h.clock.advance(5000);
    h.loop.requestFullSync('canary gone');
    await h.clock.advance(60_000);
    assert.deepEqual(h.calls.map((c) => [c.at, c.full]), [[0, true], [5000, true]]);
    assert.deepEqual(h.queued, []);
    assert.equal(h.succeeded[1]?.queuedAt, undefined);
    // Asked while a sync runs (it may have read the node before the drift): one more full sync, minSyncPeriod later.
    h.slowNext(100);
    h.loop.requestFullSync('flushed');
    h.loop.requestFullSync('flushed again');
    h.loop.requestFullSync('and again');
    await h.clock.advance(10_000);
    assert.deepEqual(h.calls.slice(2).map((c) => [c.at, c.full]), [[65_000, true], [66_000, true]]);
    await h.loop.stop();
  });

  test('failure: exponential backoff, full retry, queue time kept until applied', async () => {
    const h = harness({ minSyncPeriodMs: 0 });
    h.loop.start();
    await h.clock.advance(0);
    h.failNext(3);
    await h.clock.advance(50);
    h.loop.requestSync(); // t=50 fails; retries at +1s, +2s, +4s
    await h.clock.advance(0);
    h.loop.requestSync(); // a change during backoff waits for the retry
    await h.clock.advance(10_000);
    assert.deepEqual(h.calls.map((c) => [c.at, c.full]), [[0, true], [50, false], [1050, true], [3050, true], [7050, true]]);
    assert.deepEqual(h.failed.map((f) => [f.attempt, f.retryInMs]), [[1, 1000], [2, 2000], [3, 4000]]);
    const applied = h.succeeded.at(-1);
    assert.equal(applied?.full, true);
    assert.equal(applied?.queuedAt, 50);
    assert.equal(h.loop.status().consecutiveFailures, 0);
    // After recovery, changes are partial again.
    h.loop.requestSync();
    await h.clock.advance(0);
    assert.deepEqual(h.calls.at(-1), { at: 10_050, full: false });
    await h.loop.stop();
  });

  test('never two syncs at once: a change during a slow sync runs after it', async () => {
    const h = harness({ minSyncPeriodMs: 0 });
    h.slowNext(5000);
    h.loop.start();
    await h.clock.advance(1000);
    h.loop.requestSync();
    h.loop.requestSync();
    await h.clock.advance(1000);
    assert.equal(h.calls.length, 1);
    await h.clock.advance(4000);
    assert.deepEqual(h.calls.map((c) => c.at), [0, 5000]);
    assert.equal(h.succeeded[0]?.pendingSince, 1000, 'the slow sync tells that a change arrived while it ran');
    assert.equal(h.succeeded[1]?.queuedAt, 1000);
    assert.equal(h.succeeded[1]?.pendingSince, undefined);
    await h.loop.stop();
  });

  test('stop waits for the sync in progress and schedules nothing more', async () => {
    const h = harness({ syncPeriodMs: 1000 });
    h.slowNext(500);
    h.loop.start();
    let stopped = false;
    const stopping = h.loop.stop().then(() => { stopped = true; });
    await h.clock.advance(100);
    assert.equal(stopped, false);
    await h.clock.advance(500);
    await stopping;
    await h.clock.advance(10_000);
    assert.equal(h.calls.length, 1);
    assert.equal(h.clock.pendingTimers(), 0);
  });
});
