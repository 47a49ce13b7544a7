// `npm run bench`: runs every bench/*.bench.ts (or the ones named on the command line) one after another,
// each in its own Node process so that one benchmark's memory does not skew another's RSS figures.
import { readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
// Flags (e.g. --quick) are passed on to every benchmark; --quick is also exported for the ones that read the env.
const flags = process.argv.slice(2).filter((a) => a.startsWith('-'));
if (flags.includes('--quick')) process.env['KPROXY_BENCH_QUICK'] = '1';
const files = readdirSync(here)
  .filter((f) => f.endsWith('.bench.ts'))
  .filter((f) => wanted.length === 0 || wanted.some((w) => f.startsWith(w)))
  .sort();
let failed = 0;
for (const file of files) {
  console.log(`\n## ${file}`);
  const run = spawnSync(process.execPath, ['--expose-gc', join(here, file), ...flags], { stdio: 'inherit' });
  if (run.status !== 0) {
    failed++;
    console.log(`${file} failed (status ${run.status ?? run.signal})`);
  }
}
process.exit(failed === 0 ? 0 : 1);
