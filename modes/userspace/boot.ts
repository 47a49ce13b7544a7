// Starting a relay process without Node's TypeScript stripper in it: the stripper (a WebAssembly build of a
// TypeScript parser) costs each process ~18 MiB that it never gives back. The control process, which has it
// loaded anyway, strips the relay's few modules once and hands them over; a load hook in the child serves them.
import { readFileSync } from 'node:fs';
import { stripTypeScriptTypes } from 'node:module';

/** Run with `node --input-type=module -e BOOT_CODE <entry url> <args…>`: asks for the sources, then imports. */
export const BOOT_CODE = `
import { registerHooks } from 'node:module';
const sources = await new Promise((resolve) => {
  process.once('message', resolve);
  process.send({ type: 'boot' });
});
registerHooks({
  load(url, context, next) {
    const source = sources[url];
    return source === undefined ? next(url, context) : { format: 'module', source, shortCircuit: true };
  },
});
await import(process.argv[1]);
`;

const RELATIVE_IMPORT = /(?:\bfrom\s*|\bimport\s*\(?\s*)['"](\.{1,2}\/[^'"]+\.ts)['"]/g;
let cache: Record<string, string> | undefined;

/** The API (unlike running .ts files) prints "experimental" once per process: not worth a line in the agent's log. */
function quietly<T>(run: () => T): T {
  const emit = process.emitWarning;
  process.emitWarning = () => undefined;
  try {
    return run();
  } finally {
    process.emitWarning = emit;
  }
}

/** The JavaScript of `entry` and every module it imports by a relative .ts path (type-only imports vanish). */
export function strippedModules(entry: URL): Record<string, string> {
  if (cache) return cache;
  const out: Record<string, string> = {};
  const visit = (url: URL): void => {
    if (out[url.href] !== undefined) return;
    const code = quietly(() => stripTypeScriptTypes(readFileSync(url, 'utf8'), { mode: 'strip' }));
    out[url.href] = code;
    for (const m of code.matchAll(RELATIVE_IMPORT)) if (m[1]) visit(new URL(m[1], url));
  };
  visit(entry);
  cache = out;
  return out;
}
