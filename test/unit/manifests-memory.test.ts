// Issue #16: every edit of a manifest file kept one more copy of the whole file alive. The YAML parser returns
// strings that are slices of the text it read; the store keeps such strings (endpoint addresses) in its records,
// so each record pinned the version of the file it was parsed from. Here the real source feeds the real store,
// one slice changes per edit (the file replaced by rename and rewritten in place, in turn), and the heap after a
// full GC must not grow with the number of edits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { ManifestSource } from '../../controllers/manifests/index.ts';
import { silentLogger } from '../../src/log.ts';
import { ClusterStore } from '../../src/store/cluster-store.ts';
import { testOptions } from '../fixtures/compute-helpers.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const SERVICES = 40;
const EDITS = 40;
/** A comment that makes each version of the file about 2 MB, so a pinned version shows. */
const PADDING = `# ${'-'.repeat(98)}\n`.repeat(20_000);

function fileText(edited: ReadonlySet<number>): string {
  const documents = [PADDING.trimEnd()];
  for (let i = 0; i < SERVICES; i++) {
    documents.push(`apiVersion: v1\nkind: Service\nmetadata:\n  name: svc-${i}\n  namespace: default\nspec:\n  clusterIP: 10.96.${100 + i}.100\n  ports:\n  - port: 80\n`);
    const count = edited.has(i) ? 11 : 10;
    // Addresses of 13+ characters: V8 makes such substrings slices of their parent string instead of copies.
    const endpoints = Array.from({ length: count }, (_, j) => `- addresses: [10.244.${100 + i}.${100 + j}]\n  conditions: {ready: true}\n`).join('');
    documents.push(`apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: svc-${i}-0\n  namespace: default\n  labels: {kubernetes.io/service-name: svc-${i}}\naddressType: IPv4\nports:\n- port: 80\nendpoints:\n${endpoints}`);
  }
  return `${documents.join('\n---\n')}\n`;
}

const heapAfterGc = (): number => {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
};

test('editing a manifest file does not keep old versions of it alive', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kproxy-manifest-memory-'));
  const file = join(dir, 'cluster.yaml');
  const edited = new Set<number>();
  const store = new ClusterStore({ compute: testOptions() });
  const source = new ManifestSource({ path: file, log: silentLogger(), watch: false });
  try {
    writeFileSync(file, fileText(edited));
    await source.start(store);
    assert.equal(store.counts().endpoints, SERVICES * 10);
    const before = heapAfterGc();
    for (let edit = 0; edit < EDITS; edit++) {
      edited.add(edit % SERVICES);
      if (edit % 2 === 0) {
        writeFileSync(`${file}.tmp`, fileText(edited));
        renameSync(`${file}.tmp`, file);
      } else {
        writeFileSync(file, fileText(edited));
      }
      source.reload();
    }
    assert.equal(store.counts().endpoints, SERVICES * 10 + Math.min(EDITS, SERVICES), 'every edit reached the store');
    const grownMiB = (heapAfterGc() - before) / 2 ** 20;
    const fileMiB = fileText(edited).length / 2 ** 20;
    t.diagnostic(`heap after GC grew ${grownMiB.toFixed(1)} MiB over ${EDITS} edits of a ${fileMiB.toFixed(1)} MiB file`);
    // Leaking, it grows by about one file per edit (≈ 80 MiB here); fixed, by the changed records only.
    assert.ok(grownMiB < 3 * fileMiB, `heap grew ${grownMiB.toFixed(1)} MiB over ${EDITS} edits of a ${fileMiB.toFixed(1)} MiB file`);
  } finally {
    await source.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
