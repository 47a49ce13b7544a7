// What leaving out the per-endpoint comments does at 10k services (`npm run bench comments`; root): kproxy, like
// kube-proxy, writes the rules that exist once per endpoint without their `-m comment` above 1,000 endpoints. The
// same 10k × 10 synthetic cluster's full restore input is rendered with every comment and without the per-endpoint
// ones, and each is restored raw (`iptables-legacy-restore --noflush`) into a fresh network namespace, the two
// alternating over rounds: input size, restore time (wall and the tool's CPU), and the nat table as the kernel holds
// it (entries and bytes of the x_tables blob, by getsockopt: kit/iptables/xt-info.ts). Every figure also as terse /
// with comments. Hold the bench lock: flock /tmp/kproxy-bench.lock npm run bench comments
// Knobs: BENCH_COMMENTS_SERVICES=10000  BENCH_COMMENTS_ROUNDS=2  --quick: 2,000 services, 1 round.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderFullStream } from '../kit/iptables/render.ts';
import type { RulesetSource } from '../kit/iptables/ruleset.ts';
import { CT_STATE_INVALID_DROPPED } from '../kit/nfacct.ts';
import { compileSource } from '../modes/iptables/compile.ts';
import { defaultComputeOptions } from '../src/compute/options.ts';
import { ClusterStore } from '../src/store/cluster-store.ts';
import { syntheticCluster } from '../test/fixtures/synthetic.ts';

const quick = process.argv.includes('--quick') || process.env.KPROXY_BENCH_QUICK === '1';
const SERVICES = Number(process.env.BENCH_COMMENTS_SERVICES ?? (quick ? 2000 : 10_000));
const ROUNDS = Number(process.env.BENCH_COMMENTS_ROUNDS ?? (quick ? 1 : 2));
const XT_INFO = fileURLToPath(new URL('../kit/iptables/xt-info.ts', import.meta.url));

interface Measured {
  readonly wallS: number;
  readonly cpuS: number;
  readonly entries: number;
  readonly tableBytes: number;
}

function sourceOf(services: number): RulesetSource {
  const cluster = syntheticCluster({ services, endpointsPerService: 10, nodeName: 'node-0', seed: 42 });
  const store = new ClusterStore({ compute: { ...defaultComputeOptions('node-0'), clusterCIDRs: ['10.244.0.0/16'] } });
  store.replaceAll('Node', [cluster.node]);
  store.replaceAll('Service', cluster.services);
  store.replaceAll('EndpointSlice', cluster.slices);
  store.synced();
  return compileSource(store.snapshot(), 'IPv4');
}

function writeInput(file: string, source: RulesetSource): { bytes: number; lines: number } {
  const hooks = [...source.base.nat.hooks, ...source.base.filter.hooks];
  const text = [...renderFullStream(source, { insertHooks: hooks })].join('');
  writeFileSync(file, text);
  let lines = 0;
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) lines++;
  return { bytes: statSync(file).size, lines };
}

const sh = (args: readonly string[], input?: string): string => {
  const result = spawnSync(args[0] ?? '', args.slice(1), { input, encoding: 'utf8', maxBuffer: 1 << 20 });
  if (result.status !== 0) throw new Error(`${args.join(' ')}: ${result.stderr}`);
  return result.stdout;
};

/** A raw restore of `file` into a fresh namespace: its times and the nat table the kernel then holds. */
function restoreInto(file: string, ns: string): Measured {
  sh(['ip', 'netns', 'add', ns]);
  try {
    sh(['ip', 'netns', 'exec', ns, 'nfacct', 'add', CT_STATE_INVALID_DROPPED]);
    const started = performance.now();
    // GNU time prints the tool's user and system CPU on stderr.
    const result = spawnSync('ip', ['netns', 'exec', ns, '/usr/bin/time', '-f', '%U %S', 'sh', '-c', `iptables-legacy-restore --noflush -w < ${file}`], { encoding: 'utf8' });
    const wallS = (performance.now() - started) / 1000;
    if (result.status !== 0) throw new Error(`restore: ${result.stderr}`);
    const [user = 0, system = 0] = (result.stderr.trim().split('\n').at(-1) ?? '').split(' ').map(Number);
    const script = `const { openTableSizeReader } = await import(${JSON.stringify(XT_INFO)}); const { reader } = await openTableSizeReader();`
      + ` process.stdout.write(JSON.stringify(reader?.read('IPv4', 'nat') ?? null));`;
    const size = JSON.parse(sh(['ip', 'netns', 'exec', ns, process.execPath, '--input-type=module', '-e', script])) as { entries: number; bytes: number } | null;
    return { wallS, cpuS: user + system, entries: size?.entries ?? NaN, tableBytes: size?.bytes ?? NaN };
  } finally {
    spawnSync('ip', ['netns', 'del', ns]);
  }
}

const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
};

function main(): void {
  if (process.getuid?.() !== 0) {
    console.log('comments.bench: needs root (network namespaces)');
    return;
  }
  const load = sh(['cat', '/proc/loadavg']).trim();
  console.log(`comments benchmark: ${SERVICES} services × 10 endpoints, ${ROUNDS} round(s), load average at start ${load}`);
  const dir = mkdtempSync(join(tmpdir(), 'kproxy-comments-bench-'));
  try {
    const terse = sourceOf(SERVICES);
    if (!terse.omitEndpointComments) throw new Error('the synthetic cluster is not large enough to leave out comments');
    const inputs = {
      'with comments': { file: join(dir, 'with.txt'), source: { ...terse, omitEndpointComments: false } },
      'terse (kproxy above 1,000 endpoints)': { file: join(dir, 'terse.txt'), source: terse },
    };
    const sizes = Object.fromEntries(Object.entries(inputs).map(([name, { file, source }]) => [name, writeInput(file, source)]));
    const results: Record<string, Measured[]> = Object.fromEntries(Object.keys(inputs).map((name) => [name, []]));
    for (let round = 0; round < ROUNDS; round++) {
      const names = round % 2 === 0 ? Object.keys(inputs) : Object.keys(inputs).reverse();
      for (const name of names) {
        const entry = inputs[name as keyof typeof inputs];
        const measured = restoreInto(entry.file, `kpbc${process.pid}r${round}`);
        results[name]?.push(measured);
        console.log(`round ${round + 1}: ${name}: restore ${measured.wallS.toFixed(1)} s (tool CPU ${measured.cpuS.toFixed(1)} s), nat ${measured.entries} entries, ${(measured.tableBytes / 1048576).toFixed(1)} MiB`);
      }
    }
    const [withName, terseName] = Object.keys(inputs) as [string, string];
    const row = (label: string, value: (name: string) => number, digits: number, unit: string): string => {
      const a = value(withName);
      const b = value(terseName);
      return `| ${label} | ${a.toFixed(digits)}${unit} | ${b.toFixed(digits)}${unit} | **${(b / a).toFixed(2)}** |`;
    };
    const of = (name: string, key: keyof Measured): number => median((results[name] ?? []).map((m) => m[key]));
    console.log(['', '| figure (medians) | with comments | terse | terse / with |', '|---|---|---|---|',
      row('restore input', (n) => (sizes[n]?.bytes ?? NaN) / 1048576, 1, ' MiB'),
      row('restore input lines', (n) => sizes[n]?.lines ?? NaN, 0, ''),
      row('iptables-legacy-restore, wall', (n) => of(n, 'wallS'), 1, ' s'),
      row('iptables-legacy-restore, its CPU', (n) => of(n, 'cpuS'), 1, ' s'),
      row('nat table in the kernel (x_tables blob)', (n) => of(n, 'tableBytes') / 1048576, 1, ' MiB'),
      row('nat table entries', (n) => of(n, 'entries'), 0, ''),
    ].join('\n'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main();
