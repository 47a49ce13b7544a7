import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Balancer } from '../../modes/userspace/balancer.ts';
import { defaultConfig, parseConfig } from '../../modes/userspace/config.ts';
import { servedBy } from '../../modes/userspace/host.ts';
import { RateLimitedLog } from '../../modes/userspace/rate-log.ts';
import { mergeStats } from '../../modes/userspace/stats.ts';
import { compile } from '../../modes/userspace/table.ts';
import { desiredState } from '../userspace/helpers.ts';

const table = compile(desiredState([
  { name: 'rr', clusterIP: '10.96.0.1', port: 80, endpoints: [['10.0.0.1', 80], ['10.0.0.2', 80], ['10.0.0.3', 80]] },
  { name: 'sticky', clusterIP: '10.96.0.2', port: 80, affinitySeconds: 10, endpoints: [['10.0.0.1', 80], ['10.0.0.2', 80]] },
]));
const [rr, sticky] = table.listeners.map((l) => l.route);

describe('userspace balancer', () => {
  test('round robin rotates the start and keeps every endpoint as a fallback', () => {
    assert.ok(rr && sticky);
    const b = new Balancer({ now: () => 0 });
    const firsts = Array.from({ length: 6 }, () => b.order(rr, rr.internal, '1.1.1.1').map((e) => e.ip));
    assert.deepEqual(firsts.map((o) => o[0]), ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.1', '10.0.0.2', '10.0.0.3']);
    assert.deepEqual(firsts[1], ['10.0.0.2', '10.0.0.3', '10.0.0.1']);
  });

  test('each service keeps its own round robin: connections to two services in turn still rotate each', () => {
    const two = compile(desiredState([
      { name: 'a', clusterIP: '10.96.0.11', port: 80, endpoints: [['10.0.1.1', 80], ['10.0.1.2', 80], ['10.0.1.3', 80]] },
      { name: 'b', clusterIP: '10.96.0.12', port: 80, endpoints: [['10.0.2.1', 80], ['10.0.2.2', 80]] },
    ])).listeners.map((l) => l.route);
    const [a, b] = two;
    assert.ok(a && b);
    const balancer = new Balancer({ now: () => 0 });
    const picks: Record<string, string[]> = { a: [], b: [] };
    for (let i = 0; i < 6; i++) {
      picks.a?.push(balancer.order(a, a.internal, '1.1.1.1')[0]?.ip ?? '');
      picks.b?.push(balancer.order(b, b.internal, '1.1.1.1')[0]?.ip ?? '');
    }
    assert.deepEqual(picks, {
      a: ['10.0.1.1', '10.0.1.2', '10.0.1.3', '10.0.1.1', '10.0.1.2', '10.0.1.3'],
      b: ['10.0.2.1', '10.0.2.2', '10.0.2.1', '10.0.2.2', '10.0.2.1', '10.0.2.2'],
    });
  });

  test('ClientIP affinity sticks until the timeout, restarting on each use', () => {
    assert.ok(sticky);
    let now = 0;
    const b = new Balancer({ now: () => now });
    const pick = (client: string): string => {
      const [first] = b.order(sticky, sticky.internal, client);
      assert.ok(first);
      b.chosen(sticky, client, first);
      return first.ip;
    };
    const a = pick('1.1.1.1');
    for (let i = 0; i < 5; i++) {
      now += 9_000;
      assert.equal(pick('1.1.1.1'), a);
    }
    assert.notEqual(pick('2.2.2.2'), a, 'another client goes round robin');
    assert.equal(pick('3.3.3.3'), a, 'round robin wraps (two endpoints)');
    now += 10_001;
    assert.notEqual(b.order(sticky, sticky.internal, '1.1.1.1')[0]?.ip, a, 'expired: back to round robin');
  });

  test('ClientIP affinity pins a client at its first pick, before any connect succeeded', () => {
    assert.ok(sticky);
    const b = new Balancer({ now: () => 0 });
    const picks = Array.from({ length: 4 }, () => b.order(sticky, sticky.internal, '4.4.4.4')[0]?.ip);
    assert.equal(new Set(picks).size, 1, `simultaneous first connections of one client: ${picks.join(', ')}`);
  });

  test('an endpoint that left is not kept by affinity', () => {
    assert.ok(sticky);
    const b = new Balancer({ now: () => 0 });
    const [first] = b.order(sticky, sticky.internal, '1.1.1.1');
    assert.ok(first);
    b.chosen(sticky, '1.1.1.1', first);
    const rest = sticky.internal.filter((e) => e.id !== first.id);
    assert.deepEqual(b.order(sticky, rest, '1.1.1.1').map((e) => e.id), rest.map((e) => e.id));
  });
});

describe('userspace config, relay processes, logs, stats', () => {
  test('config: defaults, prefixed keys, bad values reported and ignored', () => {
    assert.deepEqual(parseConfig({}).config, defaultConfig);
    const { config, problems } = parseConfig({ 'userspace.workers': '0', interfaceName: 'bad name!', drainGraceMs: 500, connectTimeoutMs: -1 });
    assert.equal(config.workers, 0);
    assert.equal(config.drainGraceMs, 500);
    assert.equal(config.interfaceName, 'kproxy0');
    assert.equal(config.connectTimeoutMs, defaultConfig.connectTimeoutMs);
    assert.equal(problems.length, 2);
    assert.equal(parseConfig({ 'userspace.splice': 'false' }).config.splice, false);
    assert.equal(parseConfig({ splice: false }).config.splice, false);
    const bad = parseConfig({ splice: 'sometimes' });
    assert.equal(bad.config.splice, true);
    assert.deepEqual(bad.problems, ['userspace setting splice=sometimes ignored: expected true or false']);
    assert.equal(parseConfig({}).config.freebind, true);
    assert.equal(parseConfig({ 'userspace.freebind': 'false' }).config.freebind, false);
  });

  test('TCP listeners (affinity or not) are opened by every relay process, UDP ones by host 0 only', () => {
    const mixed = compile(desiredState([
      { name: 'sticky', clusterIP: '10.96.0.2', port: 80, affinitySeconds: 10, endpoints: [['10.0.0.1', 80]] },
      { name: 'dns', protocol: 'UDP', clusterIP: '10.96.0.3', port: 53, endpoints: [['10.0.0.1', 53]] },
    ]));
    for (const l of mixed.listeners) {
      const serving = [0, 1, 2].filter((i) => servedBy(l, i, 3));
      assert.deepEqual(serving, l.protocol === 'TCP' ? [0, 1, 2] : [0], l.key);
    }
    assert.equal(mixed.listeners.length, 2);
  });

  test('rate-limited log: a burst per key and window, then the suppressed count', () => {
    let now = 0;
    const lines: Record<string, unknown>[] = [];
    const log = new RateLimitedLog({ sink: (_l, obj) => lines.push(obj), burst: 2, windowMs: 1000, now: () => now });
    for (let i = 0; i < 10; i++) log.log('warn', 'a', { i }, 'refused');
    log.log('warn', 'b', { i: 99 }, 'refused');
    assert.equal(lines.length, 3);
    now = 1000;
    log.log('warn', 'a', { i: 10 }, 'refused');
    assert.deepEqual(lines[3], { i: 10, suppressedBefore: 8 });
  });

  test('stats of relay processes add up per service', () => {
    const s = { active: 1, relayed: 2, spliced: 7, refused: 3, failed: 4, bytesIn: 5, bytesOut: 6 };
    const merged = mergeStats([{ listeners: 2, active: 1, services: { a: s } }, { listeners: 2, active: 1, services: { a: s, b: s } }]);
    assert.deepEqual(merged.services.a, { active: 2, relayed: 4, spliced: 14, refused: 6, failed: 8, bytesIn: 10, bytesOut: 12 });
    assert.equal(merged.active, 2);
  });
});
