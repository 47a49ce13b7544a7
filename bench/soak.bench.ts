// Soak: does the agent's memory hold under hours of churn? (`npm run bench soak`; needs root, for the namespaces,
// and the kube binaries of tools/kube/build.sh for the Kubernetes rows.) Each row runs the real agent in a node
// namespace of its own for 10 minutes of churn — one endpoint change every 0.5 s, a service added and one removed
// every 10 s — from a manifest file (rewritten by rename) or from the test apiserver, and samples every 10 s the RSS
// and descriptors of every kproxy process (relay processes included), the agent's V8 heap and its descendants.
// A row passes when, after a 2-minute warm-up, RSS stays within 1.2× of its warm-up value (the peak of the warm-up's
// last minute: see test/soak/verdict.ts) and descriptors and child processes do not grow.
//
//   npm run bench soak                                     every mode × source × 1k and 10k services
//   npm run bench soak -- --rows=iptables:kube:10000,userspace:manifests:1000 --minutes=4 --warmup-minutes=1
//   npm run bench soak -- --quick                          1k rows only, 4 minutes each
//   --factor=1.2 (RSS limit), --json=FILE (every sample of every row),
//   --edit=in-place (the manifest file rewritten in place instead of replaced by rename)
import { writeFileSync } from 'node:fs';
import { runSoak, SOAK_MODES, type SoakResult, type SoakSource } from '../test/soak/soak.ts';

const SOURCES: readonly SoakSource[] = ['manifests', 'kube'];
const SIZES = [1000, 10_000];

interface Row {
  readonly mode: string;
  readonly source: SoakSource;
  readonly services: number;
}

const flag = (name: string): string | undefined => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const quick = process.argv.includes('--quick') || process.env.KPROXY_BENCH_QUICK === '1';
const minutes = Number(flag('minutes') ?? (quick ? 4 : 10));
const warmupMinutes = Number(flag('warmup-minutes') ?? (quick ? 1 : 2));
const factor = Number(flag('factor') ?? 1.2);
const jsonFile = flag('json');
const edit = flag('edit') === 'in-place' ? 'in-place' : 'rename';

function plannedRows(): Row[] {
  const asked = flag('rows');
  if (asked !== undefined) {
    return asked.split(',').map((spec) => {
      const [mode = '', source = '', services = ''] = spec.split(':');
      if (SOAK_MODES[mode] === undefined || !SOURCES.includes(source as SoakSource) || !(Number(services) > 0)) {
        throw new Error(`bad row ${spec}: want MODE:SOURCE:SERVICES, modes ${Object.keys(SOAK_MODES).join('/')}, sources ${SOURCES.join('/')}`);
      }
      return { mode, source: source as SoakSource, services: Number(services) };
    });
  }
  return (quick ? SIZES.slice(0, 1) : SIZES).flatMap((services) =>
    Object.keys(SOAK_MODES).flatMap((mode) => SOURCES.map((source) => ({ mode, source, services }))));
}

const f0 = (n: number | undefined): string => (n === undefined || Number.isNaN(n) ? '–' : n.toFixed(0));

function tableLine(row: Row, result: SoakResult | Error): string {
  const name = `| ${row.mode} | ${row.source} | ${row.services.toLocaleString('en')}`;
  if (result instanceof Error) return `${name} | failed to run: ${result.message.split('\n')[0]} |`;
  const { verdict, samples, setupMs } = result;
  const last = samples.at(-1);
  const r = verdict.rssMiB;
  const h = verdict.heapUsedMiB;
  return `${name} | ${f0(setupMs / 1000)} s | ${f0(last?.changes)} / ${f0(last?.syncs)} | ${f0(r.start)} / ${f0(r.warmup)} / ${f0(r.end)} / ${f0(r.max)} | `
    + `${verdict.rssRatio.toFixed(2)}× | ${f0(h?.start)} / ${f0(h?.warmup)} / ${f0(h?.end)} / ${f0(h?.max)} | `
    + `${verdict.fds.start} / ${verdict.fds.warmup} / ${verdict.fds.end} / ${verdict.fds.max} | `
    + `${verdict.descendants.start} / ${verdict.descendants.warmup} / ${verdict.descendants.end} / ${verdict.descendants.max} | `
    + `${verdict.pass ? 'pass' : `FAIL: ${verdict.failures.join('; ')}`} |`;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the soak benchmark needs root (it creates network namespaces)');
  const rows = plannedRows();
  console.log(`soak: ${rows.length} rows, ${minutes} min of churn each (warm-up ${warmupMinutes} min), RSS limit ${factor}× the warm-up value; manifests edited by ${edit}`);
  const results: Array<{ row: Row; result: SoakResult | Error }> = [];
  for (const row of rows) {
    console.log(`\n### ${row.mode} / ${row.source} / ${row.services} services`);
    let result: SoakResult | Error;
    try {
      result = await runSoak({
        ...row, durationMs: minutes * 60_000, warmupMs: warmupMinutes * 60_000, rssFactor: factor, manifestEdit: edit,
        log: (line) => console.log(line),
      });
    } catch (error) {
      result = error instanceof Error ? error : new Error(String(error));
      console.log(`row failed: ${result.message}`);
    }
    results.push({ row, result });
    if (!(result instanceof Error)) for (const complaint of result.agentComplaints) console.log(`agent logged: ${complaint}`);
    console.log(tableLine(row, result));
    if (jsonFile) writeFileSync(jsonFile, JSON.stringify(results.map(({ row: r, result: x }) => ({ ...r, ...(x instanceof Error ? { error: x.message } : x) })), null, 1));
  }
  console.log(`\n${minutes} min of churn per row (1 endpoint change / 0.5 s, 1 service added + 1 removed / 10 s), sampled every 10 s; `
    + `warm-up ${warmupMinutes} min (warm-up value = peak of its last minute). RSS and fds: every kproxy process; heap: the agent's V8 heap used.`);
  console.log('\n| mode | source | services × 10 eps | to first sync | changes / syncs | RSS MiB start / warm-up / end / max | max after warm-up ÷ warm-up | heap used MiB start / warm-up / end / max | fds start / warm-up / end / max | children start / warm-up / end / max | verdict |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const { row, result } of results) console.log(tableLine(row, result));
  const failed = results.filter(({ result }) => result instanceof Error || !result.verdict.pass).length;
  if (failed > 0) {
    console.log(`\n${failed} of ${results.length} rows failed`);
    process.exitCode = 1;
  }
}

await main();
