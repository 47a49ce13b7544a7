// A manifest file cut into documents, re-parsed only where a new version differs, and the object index that turns
// changed documents into the few upserts and removals a reload hands the store.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { commonPrefix, commonSuffix, documentStarts } from '../../controllers/manifests/documents.ts';
import { ObjectIndex } from '../../controllers/manifests/object-index.ts';
import { ManifestDocuments, parseManifest, type ManifestObject } from '../../controllers/manifests/parse.ts';
import { ManifestError } from '../../src/errors.ts';

const pieces = (text: string): string[] => {
  const bytes = Buffer.from(text);
  const starts = documentStarts(bytes, 0, bytes.length);
  return starts.map((start, i) => bytes.toString('utf8', start, starts[i + 1] ?? bytes.length));
};

describe('documentStarts', () => {
  const cases: Array<{ name: string; text: string; pieces: string[] }> = [
    { name: 'no marker: one document', text: 'a: 1\nb: 2\n', pieces: ['a: 1\nb: 2\n'] },
    { name: 'a leading marker stays with its document', text: '---\na: 1\n---\nb: 2\n', pieces: ['---\na: 1\n', '---\nb: 2\n'] },
    { name: 'text before the first marker is a document', text: 'a: 1\n--- \nb: 2\n', pieces: ['a: 1\n', '--- \nb: 2\n'] },
    { name: 'a marker with content on its line, then a tab, then at the end of the file', text: 'x\n--- |\n  y\n---\tz\n---', pieces: ['x\n', '--- |\n  y\n', '---\tz\n', '---'] },
    { name: 'not markers: ----, ---x, indented ---, --- inside a line', text: 'a: |\n  ---\nb: ----\n----\n---x: 1\nc: "a---b"\n', pieces: ['a: |\n  ---\nb: ----\n----\n---x: 1\nc: "a---b"\n'] },
    { name: 'CRLF line ends', text: 'a: 1\r\n---\r\nb: 2\r\n', pieces: ['a: 1\r\n', '---\r\nb: 2\r\n'] },
    { name: 'multi-byte characters', text: 'a: "é"\n---\nb: "日本"\n', pieces: ['a: "é"\n', '---\nb: "日本"\n'] },
  ];
  for (const c of cases) test(c.name, () => assert.deepEqual(pieces(c.text), c.pieces));

  test('within a range: starts at `from`, stops before `to`', () => {
    const bytes = Buffer.from('a\n---\nb\n---\nc\n---\nd\n');
    assert.deepEqual(documentStarts(bytes, 2, 12), [2, 8]);
  });
});

describe('commonPrefix / commonSuffix', () => {
  const big = 'x'.repeat(70_000);
  const cases: Array<[string, string, string, number, number]> = [
    ['equal', big, big, 70_000, 0],
    ['one byte changed deep inside', `${big}a${big}`, `${big}b${big}`, 70_000, 70_000],
    ['an insertion', `${big}${big}`, `${big}yy${big}`, 70_000, 70_000],
    ['a deletion at the end', `${big}abc`, big, 70_000, 0],
    ['nothing in common', 'abc', 'xyz', 0, 0],
    ['the suffix never overlaps the prefix', 'aaaa', 'aaaaa', 4, 0],
  ];
  for (const [name, a, b, prefix, suffix] of cases) {
    test(name, () => {
      const [x, y] = [Buffer.from(a), Buffer.from(b)];
      const p = commonPrefix(x, y);
      assert.equal(p, prefix);
      assert.equal(commonSuffix(x, y, Math.min(x.length, y.length) - p), suffix);
    });
  }
});

const svc = (name: string, ip: string): string => `apiVersion: v1\nkind: Service\nmetadata:\n  name: ${name}\nspec:\n  clusterIP: ${ip}\n`;
const ipOf = (entry: ManifestObject | undefined): unknown => (entry?.object as { spec: { clusterIP: string } } | undefined)?.spec.clusterIP;

describe('ManifestDocuments', () => {
  const versions = (...texts: string[]): { documents: ManifestDocuments; objects: ManifestObject[][]; changes: Array<ReturnType<ManifestDocuments['update']>> } => {
    const documents = new ManifestDocuments();
    const objects: ManifestObject[][] = [];
    const changes: Array<ReturnType<ManifestDocuments['update']>> = [];
    for (const text of texts) {
      changes.push(documents.update(Buffer.from(text), 'f.yaml'));
      objects.push([...documents.objects()]);
    }
    return { documents, objects, changes };
  };
  const three = (b: string): string => `${svc('a', '10.96.0.1')}---\n${svc('b', b)}---\n${svc('c', '10.96.0.3')}`;

  test('a change inside one document parses that document only; the others keep their objects', () => {
    const { objects, changes } = versions(three('10.96.0.2'), three('10.96.0.22'));
    const [[a1, b1, c1], [a2, b2, c2]] = objects as [ManifestObject[], ManifestObject[]];
    assert.deepEqual([a2, b2, c2].map(ipOf), ['10.96.0.1', '10.96.0.22', '10.96.0.3']);
    assert.equal(a2, a1);
    assert.equal(c2, c1);
    assert.notEqual(b2, b1);
    assert.deepEqual(changes[1]?.removed.flatMap((d) => d.objects), [b1]);
    assert.deepEqual(changes[1]?.added.flatMap((d) => d.objects), [b2]);
  });

  test('the same bytes again change nothing', () => {
    assert.equal(versions(three('10.96.0.2'), three('10.96.0.2')).changes[1], undefined);
  });

  // Every version must parse to what a fresh parse of it gives, whatever the edit.
  const edits: Array<[string, string, string]> = [
    ['a document inserted in the middle', three('10.96.0.2'), `${svc('a', '10.96.0.1')}---\n${svc('n', '10.96.0.9')}---\n${svc('b', '10.96.0.2')}---\n${svc('c', '10.96.0.3')}`],
    ['a document removed', three('10.96.0.2'), `${svc('a', '10.96.0.1')}---\n${svc('c', '10.96.0.3')}`],
    ['a document appended', three('10.96.0.2'), `${three('10.96.0.2')}---\n${svc('d', '10.96.0.4')}`],
    ['a marker turned into content', three('10.96.0.2'), three('10.96.0.2').replace('---\napiVersion: v1\nkind: Service\nmetadata:\n  name: b', '# --\napiVersion: v1\nkind: Service\nmetadata:\n  name: b')],
    ['content turned into a marker', `${svc('a', '10.96.0.1')}# --\n${svc('b', '10.96.0.2')}`, `${svc('a', '10.96.0.1')}---\n${svc('b', '10.96.0.2')}`],
    ['the first bytes changed', three('10.96.0.2'), `# header\n${three('10.96.0.2')}`],
    ['everything replaced', three('10.96.0.2'), svc('z', '10.96.0.26')],
    ['a directive appears', three('10.96.0.2'), `%YAML 1.2\n---\n${three('10.96.0.2')}`],
    ['to and from an empty file', '', three('10.96.0.2')],
  ];
  for (const [name, before, after] of edits) {
    test(`edit: ${name}`, () => {
      const { objects } = versions(before, after, before);
      assert.deepEqual(objects[1]?.map(ipOf), parseManifest(after, 'f.yaml').objects.map(ipOf));
      assert.deepEqual(objects[2]?.map(ipOf), parseManifest(before, 'f.yaml').objects.map(ipOf));
    });
  }

  test('JSON goes through JSON.parse; YAML flow style that is not JSON still parses', () => {
    assert.deepEqual(parseManifest('{"kind": "Service", "metadata": {"name": "j"}, "spec": {"clusterIP": "10.96.0.9"}}', 'f.json').objects.map(ipOf), ['10.96.0.9']);
    assert.deepEqual(parseManifest('{kind: Service, metadata: {name: f}, spec: {clusterIP: 10.96.0.4}}\n', 'f.yaml').objects.map(ipOf), ['10.96.0.4']);
  });

  test('a syntax error in a later document names its line in the file; the last version stays', () => {
    const documents = new ManifestDocuments();
    documents.update(Buffer.from(three('10.96.0.2')), 'bad.yaml');
    const broken = `${three('10.96.0.2')}---\nkind: Service\nmetadata:\n  name: [c\n`;
    assert.throws(() => documents.update(Buffer.from(broken), 'bad.yaml'), (err: unknown) => {
      assert.ok(err instanceof ManifestError);
      const line = Number(/^bad\.yaml line (\d+):/.exec(err.message)?.[1]);
      assert.ok(line >= 21 && line <= 25, `line ${line} lies in the fourth document (lines 21-25)`);
      return true;
    });
    assert.deepEqual([...documents.objects()].map(ipOf), ['10.96.0.1', '10.96.0.2', '10.96.0.3']);
  });
});

describe('ObjectIndex', () => {
  const object = (kind: ManifestObject['kind'], name: string, namespace?: string): ManifestObject =>
    ({ kind, object: { metadata: { name, ...(namespace !== undefined && { namespace }) } } });

  /** An index over a list of objects that a test edits in place. */
  const indexOver = (all: ManifestObject[], nodeName?: string): { index: ObjectIndex; apply: (removed: ManifestObject[], added: ManifestObject[]) => ReturnType<ObjectIndex['apply']> } => {
    const index = new ObjectIndex(nodeName);
    return { index, apply: (removed, added) => index.apply(removed, added, () => all) };
  };

  test('upserts what came, removes what went; references are the store\'s (no namespace = "default")', () => {
    const [a, b, c] = [object('Service', 'a'), object('Service', 'b', 'x'), object('EndpointSlice', 'c', '')];
    const all = [a, b, c];
    const { apply } = indexOver(all);
    assert.deepEqual(apply([], [a, b, c]).upserts, [a, b, c]);
    const b2 = object('Service', 'b', 'x');
    all.splice(1, 2, b2);
    assert.deepEqual(apply([b, c], [b2]), { upserts: [b2], removals: [{ kind: 'EndpointSlice', namespace: 'default', name: 'c' }] });
    const a2 = object('Service', 'a', 'default'); // the same reference as a
    all.splice(0, 1, a2);
    assert.deepEqual(apply([a], [a2]), { upserts: [a2], removals: [] });
  });

  test('of duplicates the last wins; removing it brings the earlier one back; changing the earlier one changes nothing', () => {
    const [early, late] = [object('Service', 'd'), object('Service', 'd')];
    const all = [early, late];
    const { apply } = indexOver(all);
    assert.deepEqual(apply([], [early, late]).upserts, [late]);
    const early2 = object('Service', 'd');
    all.splice(0, 1, early2);
    assert.deepEqual(apply([early], [early2]), { upserts: [], removals: [] });
    all.splice(1, 1);
    assert.deepEqual(apply([late], []), { upserts: [early2], removals: [] });
    all.splice(0, 1);
    assert.deepEqual(apply([early2], []), { upserts: [], removals: [{ kind: 'Service', namespace: 'default', name: 'd' }] });
  });

  test('nameless objects are handed over when new and never removed', () => {
    const nameless: ManifestObject = { kind: 'Service', object: { metadata: {} } };
    const { apply } = indexOver([nameless, nameless]);
    assert.deepEqual(apply([], [nameless]).upserts, [nameless]);
    assert.deepEqual(apply([nameless], []), { upserts: [], removals: [] });
  });

  test('one Node: ours by name, else the first; a replaced Node is removed', () => {
    const [other, ours] = [object('Node', 'other', 'ignored'), object('Node', 'me')];
    const all = [other];
    const { index, apply } = indexOver(all, 'me');
    assert.deepEqual(apply([], [other]), { upserts: [other], removals: [] });
    all.push(ours);
    assert.deepEqual(apply([], [ours]), { upserts: [ours], removals: [{ kind: 'Node', namespace: undefined, name: 'other' }] });
    assert.equal(index.node(), ours);
    all.pop();
    assert.deepEqual(apply([ours], []), { upserts: [other], removals: [{ kind: 'Node', namespace: undefined, name: 'me' }] });
  });
});
