// The folders' import rules, checked on the source text: a mode imports only src/model, src/util, the kit and its
// own folder (never another mode, a source in controllers/, or the rest of src/); the kit imports only src/model
// and src/util (never a mode); a source never imports a mode, the kit or src/events. Static and dynamic imports count.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function tsFiles(folder: string): string[] {
  return readdirSync(join(ROOT, folder), { recursive: true, encoding: 'utf8' })
    .filter((name) => name.endsWith('.ts'))
    .map((name) => join(folder, name));
}

/** Project-relative targets of the relative imports of a file (`from '…'`, `import('…')`, `import '…'`). */
function importsOf(file: string, text: string = readFileSync(join(ROOT, file), 'utf8')): string[] {
  const specifiers = [...text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)['"]([^'"]+)['"]/gm)].map((m) => m[1] ?? '');
  return specifiers.filter((s) => s.startsWith('.')).map((s) => relative(ROOT, resolve(ROOT, dirname(file), s)).split(sep).join('/'));
}

/** The first rule a file's imports break, or undefined. */
function violation(file: string, target: string): string | undefined {
  const [top, second] = file.split('/');
  const allowed = ['src/model/', 'src/util/', 'kit/'];
  if (top === 'kit') {
    if (target.startsWith('kit/') || target.startsWith('src/model/') || target.startsWith('src/util/')) return undefined;
    return `kit may import only src/model, src/util and kit/`;
  }
  if (top === 'modes') {
    if (target.startsWith(`modes/${second}/`) || allowed.some((prefix) => target.startsWith(prefix))) return undefined;
    if (target.startsWith('modes/')) return 'a mode never imports another mode';
    if (target.startsWith('controllers/')) return 'a mode never imports a source';
    return 'a mode may import only src/model, src/util, kit/ and its own folder';
  }
  if (top === 'controllers') {
    if (target.startsWith('modes/') || target.startsWith('kit/')) return 'a source never imports a mode or the kit';
    if (target.startsWith('src/events/')) return 'a source never imports the events module (its seam types are in src/model)';
  }
  return undefined;
}

describe('layering', () => {
  const files = [...tsFiles('kit'), ...tsFiles('modes'), ...tsFiles('controllers')];

  test('modes and the kit import only what they may', () => {
    const broken = files.flatMap((file) => importsOf(file).flatMap((target) => {
      const why = violation(file, target);
      return why ? [`${file} imports ${target}: ${why}`] : [];
    }));
    assert.deepEqual(broken, []);
  });

  test('the check sees each kind of import it forbids', () => {
    const text = [
      "import { x } from '../iptables/compile.ts';",
      "const y = await import('../../controllers/kube/source.ts');",
      "import '../../src/sync/loop.ts';",
    ].join('\n');
    const targets = importsOf('modes/userspace/example.ts', text);
    assert.deepEqual(targets.map((t) => violation('modes/userspace/example.ts', t)), [
      'a mode never imports another mode', 'a mode never imports a source', 'a mode may import only src/model, src/util, kit/ and its own folder',
    ]);
    assert.equal(violation('kit/example.ts', 'modes/iptables/names.ts'), 'kit may import only src/model, src/util and kit/');
    assert.equal(violation('modes/iptables/apply.ts', 'kit/exec.ts'), undefined);
    assert.equal(violation('controllers/kube/source.ts', 'src/events/node-events.ts'), 'a source never imports the events module (its seam types are in src/model)');
  });
});
