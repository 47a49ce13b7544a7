import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, renameSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManifestSource, parseManifest, readManifests, isManifestFileName } from '../../controllers/manifests/index.ts';
import { ManifestError } from '../../src/errors.ts';
import { createLogger } from '../../src/log.ts';
import type { ClusterEvents, ObjectKind } from '../../src/model/source.ts';

const svc = (name: string, ip = '10.96.0.1'): string =>
  `apiVersion: v1\nkind: Service\nmetadata:\n  name: ${name}\n  namespace: default\nspec:\n  clusterIP: ${ip}\n  ports:\n  - port: 80\n`;

describe('parseManifest', () => {
  test('multi-document YAML; other kinds ignored; empty documents skipped', () => {
    const text = `${svc('a')}---\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n  namespace: x\n---\n` +
      'apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: a-1\naddressType: IPv4\nendpoints: []\n';
    const parsed = parseManifest(text, 'f.yaml');
    assert.deepEqual(parsed.objects.map((o) => o.kind), ['Service', 'EndpointSlice']);
    assert.deepEqual(parsed.ignored, [{ kind: 'Deployment', name: 'x/d' }]);
  });

  test('kind: List and typed lists (ServiceList items carry no kind)', () => {
    const list = { apiVersion: 'v1', kind: 'List', items: [{ kind: 'Service', metadata: { name: 's' } }, { kind: 'Node', metadata: { name: 'n' } }, { kind: 'Pod', metadata: { name: 'p' } }] };
    const typed = { apiVersion: 'v1', kind: 'ServiceList', items: [{ metadata: { name: 't' } }] };
    assert.deepEqual(parseManifest(JSON.stringify(list), 'l.json').objects.map((o) => o.kind), ['Service', 'Node']);
    assert.deepEqual(parseManifest(JSON.stringify(typed), 't.json').objects.map((o) => o.kind), ['Service']);
  });

  test('a syntax error names the file and the line', () => {
    assert.throws(() => parseManifest(`${svc('a')}---\nkind: Service\nmetadata:\n  name: [b\n`, 'bad.yaml'), (err: unknown) => {
      assert.ok(err instanceof ManifestError);
      assert.equal(err.code, 'KP_ERR_MANIFEST_INVALID');
      assert.match(err.message, /^bad\.yaml line \d+: /);
      assert.doesNotMatch(err.message, /\n/);
      return true;
    });
  });

  test('file names considered in a folder', () => {
    assert.deepEqual(['a.yaml', 'b.yml', 'c.JSON', '.hidden.yaml', 'a.yaml.swp', 'a.yaml~', 'readme.md', '..data'].filter(isManifestFileName), ['a.yaml', 'b.yml', 'c.JSON']);
  });
});

interface Recorder extends ClusterEvents {
  /** What the store would hold now, by kind, in arrival order. */
  readonly current: Map<ObjectKind, readonly unknown[]>;
  /** Calls that changed something (replaceAll, upsert, remove). */
  deliveries: number;
  upserts: number;
  removes: number;
  syncedCalls: number;
}

const refName = (o: unknown): string => {
  const { namespace, name } = (o as { metadata: { namespace?: string; name: string } }).metadata;
  return `${namespace ?? ''}/${name}`;
};

function recorder(): Recorder {
  const r: Recorder = {
    current: new Map(), deliveries: 0, upserts: 0, removes: 0, syncedCalls: 0,
    upsert(kind, object) {
      r.current.set(kind, [...(r.current.get(kind) ?? []).filter((o) => refName(o) !== refName(object)), object]);
      r.upserts++;
      r.deliveries++;
    },
    remove(kind, namespace, name) {
      r.current.set(kind, (r.current.get(kind) ?? []).filter((o) => refName(o) !== `${kind === 'Node' ? '' : namespace ?? ''}/${name}`));
      r.removes++;
      r.deliveries++;
    },
    replaceAll(kind, objects) { r.current.set(kind, objects); if (kind === 'Service') r.deliveries++; },
    synced() { r.syncedCalls++; },
  };
  return r;
}
const names = (objects: readonly unknown[] | undefined): string[] =>
  (objects ?? []).map((o) => (o as { metadata: { name: string } }).metadata.name).sort();

function logCollector(): { lines: string[]; log: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  return { lines, log: createLogger({ format: 'json', verbosity: 0, write: (l) => lines.push(l) }) };
}

async function until(check: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('ManifestSource', () => {
  test('a folder: delivers every kind, then synced once; at most one Node (ours)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kproxy-manifests-'));
    const { log, lines } = logCollector();
    try {
      writeFileSync(join(dir, 'a.yaml'), svc('a'));
      writeFileSync(join(dir, 'b.json'), JSON.stringify({ kind: 'List', items: [{ kind: 'Service', metadata: { name: 'b' } }] }));
      writeFileSync(join(dir, 'nodes.yaml'), 'kind: Node\nmetadata:\n  name: other\n---\nkind: Node\nmetadata:\n  name: me\n');
      writeFileSync(join(dir, 'notes.txt'), 'not a manifest');
      const source = new ManifestSource({ path: dir, log, nodeName: 'me', watch: false });
      const events = recorder();
      await source.start(events);
      assert.deepEqual(names(events.current.get('Service')), ['a', 'b']);
      assert.deepEqual(names(events.current.get('EndpointSlice')), []);
      assert.deepEqual(names(events.current.get('Node')), ['me']);
      assert.equal(events.syncedCalls, 1);
      assert.equal(lines.filter((l) => l.includes('several Nodes')).length, 1);
      await source.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a missing path fails start with KP_ERR_MANIFEST_UNREADABLE', async () => {
    const source = new ManifestSource({ path: join(tmpdir(), 'kproxy-does-not-exist-xyz'), log: logCollector().log, watch: false });
    await assert.rejects(source.start(recorder()), (err: unknown) => err instanceof ManifestError && err.code === 'KP_ERR_MANIFEST_UNREADABLE');
  });

  test('watched file: edits apply; a typo warns once naming file and line and keeps the last good content', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kproxy-manifests-'));
    const file = join(dir, 'cluster.yaml');
    const { log, lines } = logCollector();
    const source = new ManifestSource({ path: file, log, debounceMs: 20, pollIntervalMs: 0 });
    try {
      writeFileSync(file, svc('a'));
      const events = recorder();
      await source.start(events);
      assert.deepEqual(names(events.current.get('Service')), ['a']);

      writeFileSync(file, `${svc('a')}---\n${svc('b', '10.96.0.2')}`);
      await until(() => names(events.current.get('Service')).length === 2, 'the edit');

      const before = events.deliveries;
      writeFileSync(file, `${svc('a')}---\nkind: Service\nmetadata:\n  name: [oops\n`);
      await until(() => lines.some((l) => l.includes('does not parse')), 'the parse warning');
      const warning = JSON.parse(lines.find((l) => l.includes('does not parse')) ?? '{}') as { file?: string; error?: string; level?: number };
      assert.equal(warning.level, 40);
      assert.equal(warning.file, file);
      assert.match(warning.error ?? '', /cluster\.yaml line \d+:/);
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(events.deliveries, before, 'nothing re-delivered: the last good content stays');
      assert.deepEqual(names(events.current.get('Service')), ['a', 'b']);

      // Editors that save by writing a new file and renaming it over the old one.
      writeFileSync(join(dir, '.cluster.yaml.tmp'), svc('c', '10.96.0.3'));
      renameSync(join(dir, '.cluster.yaml.tmp'), file);
      await until(() => names(events.current.get('Service')).join() === 'c', 'the rename-replace');
      assert.equal(lines.filter((l) => l.includes('does not parse')).length, 1, 'the typo was reported once');
    } finally {
      await source.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a reload hands over only the objects that changed; unchanged objects keep their identity', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kproxy-manifests-'));
    const file = join(dir, 'cluster.yaml');
    const source = new ManifestSource({ path: file, log: logCollector().log, watch: false });
    try {
      writeFileSync(file, [svc('a'), svc('b', '10.96.0.2'), svc('c', '10.96.0.3')].join('---\n'));
      const events = recorder();
      await source.start(events);
      const [a, b] = events.current.get('Service') ?? [];
      writeFileSync(file, [svc('a'), svc('b', '10.96.0.22'), svc('d', '10.96.0.4')].join('---\n'));
      source.reload();
      assert.deepEqual([events.upserts, events.removes], [2, 1], 'b changed and d added; c removed');
      assert.deepEqual(names(events.current.get('Service')), ['a', 'b', 'd']);
      assert.equal(events.current.get('Service')?.[0], a, 'a was not handed over again');
      assert.notEqual(events.current.get('Service')?.find((o) => refName(o) === '/b'), b);
      source.reload();
      assert.deepEqual([events.upserts, events.removes], [2, 1], 'an unchanged file hands over nothing');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('polling fallback sees changes without fs.watch events; removing a file removes its objects', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kproxy-manifests-'));
    const { log } = logCollector();
    const source = new ManifestSource({ path: dir, log, debounceMs: 10_000, pollIntervalMs: 30 });
    try {
      writeFileSync(join(dir, 'a.yaml'), svc('a'));
      writeFileSync(join(dir, 'b.yaml'), svc('b'));
      const events = recorder();
      await source.start(events);
      assert.deepEqual(names(events.current.get('Service')), ['a', 'b']);
      unlinkSync(join(dir, 'b.yaml'));
      await until(() => names(events.current.get('Service')).join() === 'a', 'the removal');
      writeFileSync(join(dir, 'c.yml'), svc('c'));
      await until(() => names(events.current.get('Service')).join() === 'a,c', 'the new file');
    } finally {
      await source.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a file broken from the start is ignored with a warning; the others load', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kproxy-manifests-'));
    const { log, lines } = logCollector();
    try {
      writeFileSync(join(dir, 'good.yaml'), svc('good'));
      writeFileSync(join(dir, 'bad.yaml'), 'kind: Service\n  metadata: : :\n');
      const contents = readManifests({ path: dir, log });
      assert.deepEqual(names(contents.services), ['good']);
      assert.equal(lines.filter((l) => l.includes('bad.yaml')).length, 1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
