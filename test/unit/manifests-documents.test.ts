// The manifest file cut into documents, the per-document parse cache, and the object delta a reload hands over.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { splitDocuments } from '../../controllers/manifests/documents.ts';
import { diffObjects, indexObjects } from '../../controllers/manifests/delta.ts';
import { parseManifest, parseManifestDocuments, type ManifestObject } from '../../controllers/manifests/parse.ts';
import { ManifestError } from '../../src/errors.ts';

describe('splitDocuments', () => {
  const cases: Array<{ name: string; text: string; texts: string[]; lines: number[] }> = [
    { name: 'no marker: one document', text: 'a: 1\nb: 2\n', texts: ['a: 1\nb: 2\n'], lines: [1] },
    { name: 'leading marker stays with its document', text: '---\na: 1\n---\nb: 2\n', texts: ['---\na: 1\n', '---\nb: 2\n'], lines: [1, 3] },
    { name: 'text before the first marker is a document', text: 'a: 1\n--- \nb: 2\n', texts: ['a: 1\n', '--- \nb: 2\n'], lines: [1, 2] },
    { name: 'marker with content on its line, then a tab and the end of the file', text: 'x\n--- |\n  y\n---\tz\n---', texts: ['x\n', '--- |\n  y\n', '---\tz\n', '---'], lines: [1, 2, 4, 5] },
    { name: 'not markers: ----, ---x, indented ---, --- inside a line', text: 'a: |\n  ---\nb: ----\n----\n---x: 1\nc: "a---b"\n', texts: ['a: |\n  ---\nb: ----\n----\n---x: 1\nc: "a---b"\n'], lines: [1] },
    { name: 'CRLF line ends', text: 'a: 1\r\n---\r\nb: 2\r\n', texts: ['a: 1\r\n', '---\r\nb: 2\r\n'], lines: [1, 2] },
    { name: 'directives keep the stream whole', text: '%YAML 1.2\n---\na: 1\n...\n%YAML 1.2\n---\nb: 2\n', texts: ['%YAML 1.2\n---\na: 1\n...\n%YAML 1.2\n---\nb: 2\n'], lines: [1] },
    { name: 'empty file', text: '', texts: [''], lines: [1] },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const documents = splitDocuments(c.text);
      assert.deepEqual(documents.map((d) => d.text), c.texts);
      assert.deepEqual(documents.map((d) => d.line), c.lines);
      assert.equal(documents.map((d) => d.text).join(''), c.text, 'the pieces make up the text');
    });
  }
});

const svc = (name: string, ip: string): string => `apiVersion: v1\nkind: Service\nmetadata:\n  name: ${name}\nspec:\n  clusterIP: ${ip}\n`;
const ips = (objects: readonly ManifestObject[]): unknown[] => objects.map((o) => (o.object as { spec: { clusterIP: string } }).spec.clusterIP);

describe('parseManifestDocuments', () => {
  test('a reload reuses the objects of unchanged documents and parses the changed one', () => {
    const first = parseManifestDocuments(`${svc('a', '10.96.0.1')}---\n${svc('b', '10.96.0.2')}---\n${svc('c', '10.96.0.3')}`, 'f.yaml');
    const second = parseManifestDocuments(`${svc('a', '10.96.0.1')}---\n${svc('b', '10.96.0.22')}---\n${svc('c', '10.96.0.3')}`, 'f.yaml', first.cache);
    assert.deepEqual(ips(second.parsed.objects), ['10.96.0.1', '10.96.0.22', '10.96.0.3']);
    const [a1, b1, c1] = first.parsed.objects;
    const [a2, b2, c2] = second.parsed.objects;
    assert.equal(a2?.object, a1?.object);
    assert.equal(c2?.object, c1?.object);
    assert.notEqual(b2?.object, b1?.object);
    assert.equal(second.cache.size, 3, 'the cache holds this version only');
  });

  test('the same text parses to the same objects with or without a cache, and as one stream', () => {
    const text = `# header\n${svc('a', '10.96.0.1')}---\n---\n${svc('b', '10.96.0.2')}...\n---\n{"kind": "Service", "metadata": {"name": "j"}, "spec": {"clusterIP": "10.96.0.9"}}\n`;
    const plain = parseManifest(text, 'f.yaml');
    const cached = parseManifestDocuments(text, 'f.yaml', parseManifestDocuments(text, 'f.yaml').cache).parsed;
    assert.deepEqual(cached, plain);
    assert.deepEqual(ips(plain.objects), ['10.96.0.1', '10.96.0.2', '10.96.0.9']);
    assert.deepEqual(parseManifest(`%YAML 1.2\n---\n${text}`, 'f.yaml'), plain);
  });

  test('JSON that is not strict JSON (YAML flow style) still parses', () => {
    assert.deepEqual(ips(parseManifest('{kind: Service, metadata: {name: f}, spec: {clusterIP: 10.96.0.4}}\n', 'f.yaml').objects), ['10.96.0.4']);
  });

  test('a syntax error in a later document names its line in the file', () => {
    const text = `${svc('a', '10.96.0.1')}---\n${svc('b', '10.96.0.2')}---\nkind: Service\nmetadata:\n  name: [c\n`;
    assert.throws(() => parseManifest(text, 'bad.yaml'), (err: unknown) => {
      assert.ok(err instanceof ManifestError);
      const line = Number(/^bad\.yaml line (\d+):/.exec(err.message)?.[1]);
      assert.ok(line >= 16 && line <= 18, `line ${line} is within the third document (lines 15-18)`);
      return true;
    });
  });
});

describe('object delta', () => {
  const object = (kind: ManifestObject['kind'], name: string, namespace?: string): ManifestObject =>
    ({ kind, object: { metadata: { name, ...(namespace !== undefined && { namespace }) } } });

  test('keys are the store\'s references: an empty namespace is "default", Nodes have none', () => {
    const keys = [...indexObjects([object('Service', 'a'), object('Service', 'a', 'default'), object('Service', 'a', 'x'), object('Node', 'n', 'x'), object('EndpointSlice', 'a')]).keys()];
    assert.deepEqual(keys, ['Service default/a', 'Service x/a', 'Node n', 'EndpointSlice default/a']);
  });

  test('of several objects with one reference the last wins; nameless objects are kept apart', () => {
    const [first, last, nameless] = [object('Service', 'a'), object('Service', 'a'), { kind: 'Service', object: { metadata: {} } } as ManifestObject];
    const index = indexObjects([first, nameless, nameless, last]);
    assert.equal(index.get('Service default/a'), last);
    assert.equal(index.size, 3);
  });

  test('upserts what is new by identity, removes what is gone, leaves the rest', () => {
    const [a, b, c, n] = [object('Service', 'a'), object('Service', 'b', 'x'), object('Service', 'c'), object('Node', 'n')];
    const bChanged = object('Service', 'b', 'x');
    const d = object('EndpointSlice', 'd');
    const changes = diffObjects(indexObjects([a, b, c, n]), indexObjects([a, bChanged, d]));
    assert.deepEqual(changes.upserts, [bChanged, d]);
    assert.deepEqual(changes.removals, [
      { kind: 'Service', namespace: 'default', name: 'c' },
      { kind: 'Node', namespace: undefined, name: 'n' },
    ]);
    assert.deepEqual(diffObjects(indexObjects([a, b]), indexObjects([a, b])), { upserts: [], removals: [] });
  });

  test('a nameless object is handed over when it is new, never removed', () => {
    const nameless: ManifestObject = { kind: 'Service', object: { metadata: {} } };
    assert.deepEqual(diffObjects(new Map(), indexObjects([nameless])).upserts, [nameless]);
    assert.deepEqual(diffObjects(indexObjects([nameless]), new Map()).removals, []);
  });
});
