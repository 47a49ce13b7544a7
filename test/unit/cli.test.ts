import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCommandLine } from '../../src/cli/parse.ts';
import { parseDestination, packetOf } from '../../src/cli/trace.ts';
import { computeOptionsOf, resolveNodeName } from '../../src/cli/wiring.ts';
import { resolveConfig } from '../../src/config/index.ts';
import { formatVerdict } from '../../src/cli/format-state.ts';
import { UsageError, ModeUnavailableError, ModeInvalidError } from '../../src/errors.ts';
import { bindMode, loadMode, isModeAvailable } from '../../src/modes.ts';
import type { ModeModule } from '../../src/model/mode.ts';
import { desiredState } from '../harness/state.ts';
import { createLogger, formatTextLine, levelForVerbosity } from '../../src/log.ts';

describe('parseCommandLine (pflag\'s rules)', () => {
  test('kube-proxy flags → raw values by flag name; unset flags stay absent', async () => {
    const cmd = await parseCommandLine(['--proxy-mode=ipvs', '--v=3', '--masquerade-all', '--cluster-cidr', '10.244.0.0/16',
      '--nodeport-addresses=10.0.0.0/8,primary', '--iptables-sync-period=1m0s', '--iptables-min-sync-period', '2s', '--hostname-override=n1',
      '--healthz-bind-address=0.0.0.0:10256', '--metrics-bind-address', '127.0.0.1:10249', '--cleanup', '--manifests', 'x',
      '--log-format=text', '--service-proxy-name', 'mine', '--kubeconfig', '/k', '--master', 'https://m', '--config', '/c',
      '--iptables-masquerade-bit=15', '--bind-address=0.0.0.0']);
    assert.deepEqual(cmd, {
      kind: 'run',
      flags: {
        'proxy-mode': 'ipvs', 'v': '3', 'masquerade-all': true, 'cluster-cidr': '10.244.0.0/16', 'nodeport-addresses': ['10.0.0.0/8,primary'],
        'iptables-sync-period': '1m0s', 'iptables-min-sync-period': '2s', 'hostname-override': 'n1', 'healthz-bind-address': '0.0.0.0:10256',
        'metrics-bind-address': '127.0.0.1:10249', 'cleanup': true, 'manifests': 'x', 'log-format': 'text', 'service-proxy-name': 'mine',
        'kubeconfig': '/k', 'master': 'https://m', 'config': '/c', 'iptables-masquerade-bit': '15', 'bind-address': '0.0.0.0',
      },
    });
    assert.deepEqual(await parseCommandLine([]), { kind: 'run', flags: {} });
  });

  test('booleans take a value only after "=", -v in its three spellings, "_" reads as "-", lists append, the last single value wins', async () => {
    assert.deepEqual(await parseCommandLine(['-v', '2', '--masquerade-all=false']), { kind: 'run', flags: { 'v': '2', 'masquerade-all': 'false' } });
    assert.deepEqual(await parseCommandLine(['-v4']), { kind: 'run', flags: { v: '4' } });
    assert.deepEqual(await parseCommandLine(['-v=5', '--conntrack_max_per_core=0']), { kind: 'run', flags: { 'v': '5', 'conntrack-max-per-core': '0' } });
    assert.deepEqual(await parseCommandLine(['--nodeport-addresses', 'a', '--nodeport-addresses=b', '--kubeconfig=1', '--kubeconfig=2']),
      { kind: 'run', flags: { 'nodeport-addresses': ['a', 'b'], 'kubeconfig': '2' } });
    await assert.rejects(parseCommandLine(['--masquerade-all', 'true']), /unknown command "true"/);
    assert.deepEqual(await parseCommandLine(['plan', '--', '--x']).catch((e: Error) => e.message), 'unexpected argument "--x"; see kproxy --help');
  });

  test('plan and trace subcommands, their flags before or after the command', async () => {
    assert.deepEqual(await parseCommandLine(['plan', '--manifests', 'm', '--format', 'json']), { kind: 'plan', flags: { manifests: 'm' }, format: 'json' });
    assert.deepEqual(await parseCommandLine(['--format=json', 'plan']), { kind: 'plan', flags: {}, format: 'json' });
    assert.deepEqual(await parseCommandLine(['trace', '--manifests', 'm', '--proxy-mode', 'iptables', '--src', '10.0.0.1', '--dst', '10.96.0.1:80/UDP', '--from', 'node']), {
      kind: 'trace', flags: { 'manifests': 'm', 'proxy-mode': 'iptables' }, format: 'text', trace: { src: '10.0.0.1', dst: '10.96.0.1:80/UDP', from: 'node' },
    });
  });

  test('--help and --version are printed, not run', async () => {
    const help = await parseCommandLine(['--help']);
    assert.equal(help.kind, 'print');
    const helpText = help.kind === 'print' ? help.output : '';
    const kubeProxyPart = helpText.split('kube-proxy flags:')[1]?.split('kproxy flags:')[0] ?? '';
    const kproxyPart = helpText.split('kproxy flags:')[1] ?? '';
    for (const flag of ['--proxy-mode', '--iptables-sync-period', '--conntrack-max-per-core', '--feature-gates', '--help', '--version']) assert.match(kubeProxyPart, new RegExp(`${flag}\\b`));
    assert.match(kubeProxyPart, /^ {2}-v, --v level/m);
    assert.doesNotMatch(helpText, /--healthz-port/, 'deprecated flags stay hidden, as in kube-proxy');
    for (const flag of ['--iptables-variant', '--manifests', '--sync-period']) assert.match(kproxyPart, new RegExp(flag));
    assert.equal((await parseCommandLine(['-h'])).kind, 'print');
    assert.equal((await parseCommandLine(['plan', '--help'])).kind, 'print');
    const version = await parseCommandLine(['--version']);
    assert.match(version.kind === 'print' ? version.output : '', /^kproxy v\d+\.\d+\.\d+/);
    const raw = await parseCommandLine(['--version=raw']);
    assert.match(raw.kind === 'print' ? raw.output : '', /"gitVersion":"v\d/);
    const setVersion = await parseCommandLine(['--version=v1.99.0']);
    assert.equal(setVersion.kind, 'run', 'kube-proxy runs with --version=vX.Y.Z (it sets the reported version)');
    assert.match(setVersion.kind === 'run' ? resolveConfig({ flags: setVersion.flags }).warnings.join('\n') : '', /^--version has no effect in kproxy: kproxy reports its own version/);
  });

  const bad: Array<[string[], RegExp]> = [
    [['--bogus'], /^unknown flag --bogus; see kproxy --help$/],
    [['-x'], /^unknown shorthand flag "x"/],
    [['--kubeconfig'], /^flag needs an argument: --kubeconfig/],
    [['--format', 'json'], /^unknown flag --format;/],
    [['plan', '--src', '1.1.1.1'], /^unknown flag --src for kproxy plan/],
    [['plan', '--format', 'xml'], /invalid --format "xml"/],
    [['trace', '--dst', '10.0.0.1:80'], /needs --src/],
    [['trace', '--src', '10.0.0.1'], /needs --dst/],
    [['trace', '--src', '1.1.1.1', '--dst', '10.0.0.1:80', '--from', 'mars'], /invalid --from "mars"/],
    [['frobnicate'], /^unknown command "frobnicate"/],
    [['plan', 'extra'], /^unexpected argument "extra"/],
  ];
  for (const [args, message] of bad) {
    test(`usage error: ${args.join(' ')}`, async () => {
      await assert.rejects(parseCommandLine(args), (err: unknown) => err instanceof UsageError && message.test(err.message) && !err.message.includes('\n'));
    });
  }
});

describe('trace destination', () => {
  const ok: Array<[string, { ip: string; port: number; protocol: string }]> = [
    ['10.96.0.10:53', { ip: '10.96.0.10', port: 53, protocol: 'TCP' }],
    ['10.96.0.10:53/udp', { ip: '10.96.0.10', port: 53, protocol: 'UDP' }],
    ['[FD00::10]:443/SCTP', { ip: 'fd00::10', port: 443, protocol: 'SCTP' }],
  ];
  for (const [text, want] of ok) test(text, () => assert.deepEqual(parseDestination(text), want));
  for (const text of ['10.96.0.10', '10.96.0.10:0', '10.96.0.10:70000', 'fd00::10:53', '10.96.0.10:53/ICMP', 'host:80']) {
    test(`rejects ${text}`, () => assert.throws(() => parseDestination(text), UsageError));
  }
  test('packet defaults to TCP from a pod', () => {
    assert.deepEqual(packetOf({ src: '10.244.1.5', dst: '10.96.0.1:80' }), { src: '10.244.1.5', dst: '10.96.0.1', port: 80, protocol: 'TCP', from: 'pod' });
    assert.throws(() => packetOf({ src: 'nope', dst: '10.96.0.1:80' }), /invalid --src/);
  });
  test('verdict text', () => {
    const text = formatVerdict({ mode: 'iptables', protocol: 'TCP', src: '1.1.1.1', dst: '10.96.0.1:80', from: 'pod',
      verdict: { kind: 'forward', reaches: [{ endpoint: '10.244.1.1:8080', masquerade: true }, { endpoint: '10.244.2.1:8080', masquerade: false }] } });
    assert.equal(text, 'TCP 1.1.1.1 -> 10.96.0.1:80 from pod (iptables mode): forwarded to one of 2 endpoints\n' +
      '  10.244.1.1:8080  (source masqueraded to the node address)\n  10.244.2.1:8080\n');
    assert.match(formatVerdict({ mode: 'm', protocol: 'UDP', src: 'a', dst: 'b', from: 'node', verdict: { kind: 'reject' } }), /rejected/);
  });
});

describe('node name', () => {
  const cases: Array<[Parameters<typeof resolveNodeName>[0], string]> = [
    [{ hostnameOverride: 'n1', manifestNodeNames: ['m'], systemHostname: 'h' }, 'n1'],
    [{ manifestNodeNames: ['worker-1'], systemHostname: 'h' }, 'worker-1'],
    [{ manifestNodeNames: ['a', 'b'], systemHostname: 'Host-X ' }, 'host-x'],
    [{ systemHostname: 'HOST' }, 'host'],
    [{ systemHostname: 'host', env: { NODE_NAME: 'Node-7' } }, 'node-7'],
    [{ manifestNodeNames: ['worker-1'], systemHostname: 'host', env: { NODE_NAME: 'node-7' } }, 'worker-1'],
    [{ systemHostname: 'host', env: { NODE_NAME: ' ' } }, 'host'],
    [{ hostnameOverride: '', systemHostname: 'c', env: { NODE_NAME: 'B' } }, 'b'],
    [{ systemHostname: ' Host.Example ', env: {} }, 'host.example'],
  ];
  for (const [input, want] of cases) test(`${JSON.stringify(input)} → ${want}`, () => assert.equal(resolveNodeName(input), want));
});

describe('the options of the Kubernetes semantics, from the configuration', () => {
  test('--bind-address becomes the primary IP unless unspecified; PreferSameTrafficDistribution=false drops node hints', () => {
    const of = (flags: Record<string, string>): ReturnType<typeof computeOptionsOf> => computeOptionsOf(resolveConfig({ flags }).config, 'n');
    assert.equal(of({}).primaryIP, undefined);
    assert.equal(of({ 'bind-address': '::' }).primaryIP, undefined);
    assert.equal(of({ 'bind-address': '010.000.000.005' }).primaryIP, '10.0.0.5');
    assert.equal(of({}).nodeHints, undefined);
    assert.equal(of({ 'feature-gates': 'PreferSameTrafficDistribution=false' }).nodeHints, false);
  });
});

describe('mode registry', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kproxy-modes-'));
  test.after(() => rmSync(dir, { recursive: true, force: true }));
  test('absent mode: ModeUnavailableError with the one clear line', async () => {
    assert.equal(isModeAvailable('nftables', { modesDir: dir }), false);
    await assert.rejects(loadMode('nftables', { modesDir: dir }), (err: unknown) =>
      err instanceof ModeUnavailableError && err.message === 'proxy mode nftables is not available in this build' && err.exitCode === 2);
  });
  test('a module without a proper `mode` export is refused', async () => {
    mkdirSync(join(dir, 'ipvs'));
    writeFileSync(join(dir, 'ipvs', 'index.ts'), 'export const mode = { name: "iptables" };\n');
    await assert.rejects(loadMode('ipvs', { modesDir: dir }), ModeInvalidError);
  });
  test('a proper module loads', async () => {
    mkdirSync(join(dir, 'userspace'));
    writeFileSync(join(dir, 'userspace', 'index.ts'), 'export const mode = { name: "userspace", compile(s) { return [s]; }, create() {}, cleanup() {}, render(c) { return `r${c.length}`; }, trace() { return { kind: "untouched" }; } };\n');
    const mode = await loadMode('userspace', { modesDir: dir });
    assert.equal(mode.render({} as never), 'r1', 'render gets what compile returned');
  });
  test('the built-in modes are the default, loaded through their typed imports', async () => {
    assert.equal(isModeAvailable('iptables'), true);
    assert.equal(isModeAvailable('userspace'), true);
    for (const name of ['iptables', 'userspace'] as const) assert.equal((await loadMode(name)).name, name);
  });
  test('bindMode: render, trace and every sync go through the module\'s one compile', async () => {
    const compiled: string[] = [];
    const synced: unknown[] = [];
    const module: ModeModule<{ node: string }> = {
      name: 'iptables',
      compile: (state) => {
        compiled.push(state.node.name);
        return { node: state.node.name };
      },
      render: (c) => `rules for ${c.node}`,
      trace: (c) => (c.node === 'n1' ? { kind: 'drop' } : { kind: 'untouched' }),
      create: async () => ({ sync: async (c, request) => { synced.push(c); return { full: request.full }; }, stop: async () => undefined }),
      cleanup: async () => undefined,
    };
    const loaded = bindMode(module);
    const state = (name: string) => ({ ...desiredState([]), node: { name, shuttingDown: false } });
    assert.equal(loaded.render(state('n1')), 'rules for n1');
    assert.deepEqual(loaded.trace(state('n1'), { src: '10.0.0.1', dst: '10.0.0.2', port: 1, protocol: 'TCP', from: 'pod' }), { kind: 'drop' });
    const running = await loaded.create({} as never);
    await running.sync(state('n2'), { full: true });
    assert.deepEqual(compiled, ['n1', 'n1', 'n2']);
    assert.deepEqual(synced, [{ node: 'n2' }]);
    assert.equal(running.name, 'iptables');
    assert.equal(running.trafficStats, undefined, 'only a proxier with traffic counters gets them');
  });
});

describe('logging', () => {
  test('-v maps to levels', () => {
    assert.deepEqual([0, 1, 2, 3, 4, 9].map(levelForVerbosity), ['info', 'info', 'debug', 'debug', 'trace', 'trace']);
  });
  test('json by default; debug hidden at -v 0 and shown at -v 2', () => {
    const lines: string[] = [];
    createLogger({ format: 'json', verbosity: 0, write: (l) => lines.push(l) }).debug({}, 'hidden');
    const log = createLogger({ format: 'json', verbosity: 2, write: (l) => lines.push(l) });
    log.debug({ a: 1 }, 'shown');
    log.child({ mode: 'iptables' }).info({}, 'Using iptables proxier');
    assert.equal(lines.length, 2);
    const first = JSON.parse(lines[0] ?? '') as Record<string, unknown>;
    assert.equal(first.msg, 'shown');
    assert.equal(first.level, 20);
    assert.equal((JSON.parse(lines[1] ?? '') as Record<string, unknown>).mode, 'iptables');
  });
  test('a JSON line carries each key once, with the most specific value', () => {
    const lines: string[] = [];
    const log = createLogger({ format: 'json', verbosity: 0, write: (l) => lines.push(l) });
    log.child({ mode: 'userspace', component: 'relay' }).child({ mode: 'userspace', component: 'host' }).info({ component: 'splice' }, 'once');
    const line = lines[0] ?? '';
    const keys = [...line.matchAll(/"([a-z]+)":/g)].map((m) => m[1]);
    assert.deepEqual(keys.filter((key, i) => keys.indexOf(key) !== i), [], line);
    assert.deepEqual(JSON.parse(line), { level: 30, time: (JSON.parse(line) as { time: number }).time, mode: 'userspace', component: 'splice', msg: 'once' });
    assert.ok(line.endsWith('}\n'));
  });
  test('text format: one readable line per record', () => {
    const lines: string[] = [];
    const log = createLogger({ format: 'text', verbosity: 0, write: (l) => lines.push(l) });
    log.warn({ file: '/etc/k proxy.yaml', count: 2 }, 'Manifest file does not parse');
    log.error({ err: new Error('boom\nsecond line') }, 'Sync failed');
    assert.equal(lines.length, 2);
    assert.match(lines[0] ?? '', /^\d{4}-\d\d-\d\dT[\d:.]+Z WARN  Manifest file does not parse file="\/etc\/k proxy\.yaml" count=2\n$/);
    assert.match(lines[1] ?? '', /ERROR Sync failed err="boom\\nsecond line"\n$/);
    assert.equal(lines.every((l) => l.split('\n').length === 2), true);
    assert.equal(formatTextLine('not json'), 'not json\n');
  });
});
