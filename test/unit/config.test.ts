import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig, resolveConfig, parseDuration, formatDuration, type FlagValues } from '../../src/config/index.ts';
import { ConfigError, ConfigUnreadableError } from '../../src/errors.ts';

const fixtures = fileURLToPath(new URL('../cli/fixtures/', import.meta.url));

describe('parseDuration (Go syntax)', () => {
  const cases: Array<[string, number | undefined]> = [
    ['1s', 1000], ['30s', 30_000], ['1m0s', 60_000], ['1h0m0s', 3_600_000], ['1h30m', 5_400_000], ['500ms', 500],
    ['1.5s', 1500], ['0s', 0], ['0', 0], ['2h45m10s', 9_910_000], ['100us', 0.1],
    ['30', undefined], ['', undefined], ['-1s', undefined], ['1d', undefined], ['s', undefined], ['1s ', 1000], ['1 s', undefined],
  ];
  for (const [text, want] of cases) test(JSON.stringify(text), () => assert.equal(parseDuration(text), want));
  test('formatDuration round-trips', () => {
    for (const ms of [0, 500, 1000, 1500, 60_000, 90_000, 3_600_000, 5_400_000]) assert.equal(parseDuration(formatDuration(ms)), ms);
    assert.equal(formatDuration(90_000), '1m30s');
  });
});

describe('defaults', () => {
  test('no flags, no file: kube-proxy defaults', () => {
    const { config, warnings } = resolveConfig({ flags: {}, file: {} });
    assert.deepEqual(warnings, []);
    assert.equal(config.mode, 'iptables');
    assert.equal(config.syncPeriodMs, 30_000);
    assert.equal(config.minSyncPeriodMs, 1000);
    assert.equal(config.masqueradeBit, 14);
    assert.equal(config.masqueradeAll, false);
    assert.equal(config.healthzBindAddress, '0.0.0.0:10256');
    assert.equal(config.metricsBindAddress, '127.0.0.1:10249');
    assert.deepEqual(config.clusterCIDRs, []);
    assert.deepEqual(config.nodePortAddresses, []);
    assert.deepEqual(config.log, { format: 'json', verbosity: 0 });
    assert.equal(config.cleanup, false);
  });
});

describe('kubeadm KubeProxyConfiguration', () => {
  test('loads exactly as kubeadm writes it, with no warning, giving the defaults', () => {
    const { config, warnings } = loadConfig({ config: join(fixtures, 'kubeadm-kube-proxy.conf') });
    assert.deepEqual(warnings, []);
    assert.equal(config.mode, 'iptables');
    assert.equal(config.kubeconfig, '/var/lib/kube-proxy/kubeconfig.conf');
    assert.equal(config.syncPeriodMs, 30_000);
    assert.equal(config.minSyncPeriodMs, 1000);
    assert.equal(config.masqueradeBit, 14);
    assert.equal(config.healthzBindAddress, '0.0.0.0:10256');
    assert.equal(config.metricsBindAddress, '127.0.0.1:10249');
    assert.equal(config.hostnameOverride, undefined);
    assert.deepEqual(config.nodePortAddresses, []);
    assert.equal(config.localhostNodePorts, true);
    assert.deepEqual(config.clientConnection, {}, 'kubeadm zero values mean client defaults');
  });

  test('the whole kubeadm ConfigMap is accepted too', () => {
    const { config, warnings } = loadConfig({ config: join(fixtures, 'kubeadm-kube-proxy-configmap.yaml') });
    assert.deepEqual(warnings, []);
    assert.equal(config.kubeconfig, '/var/lib/kube-proxy/kubeconfig.conf');
  });

  test('tuned values are read from the file', () => {
    const { config } = loadConfig({ config: join(fixtures, 'tuned-kube-proxy.conf') });
    assert.equal(config.masqueradeAll, true);
    assert.equal(config.masqueradeBit, 15);
    assert.equal(config.minSyncPeriodMs, 2000);
    assert.equal(config.syncPeriodMs, 60_000);
    assert.deepEqual(config.clusterCIDRs, ['10.244.0.0/16', 'fd00:10:244::/56']);
    assert.deepEqual(config.nodePortAddresses, ['192.168.10.0/24']);
    assert.equal(config.hostnameOverride, 'worker-1');
    assert.equal(config.localhostNodePorts, false);
    assert.equal(config.log.verbosity, 2);
    assert.equal(config.modeSettings.masqueradeBit, 15);
    assert.equal(config.modeSettings.localhostNodePorts, false);
    assert.equal(config.modeSettings.syncPeriod, undefined, 'raw duration strings are replaced by ms values');
    assert.deepEqual(config.clientConnection, { qps: 5, burst: 10 });
  });

  test('explicit flags override the file; unset flags do not', () => {
    const flags: FlagValues = {
      config: join(fixtures, 'tuned-kube-proxy.conf'),
      syncPeriod: '10s', masqueradeAll: false, clusterCidr: '10.0.0.0/8', v: 4, hostnameOverride: 'n2', logFormat: 'text',
    };
    const { config } = loadConfig(flags);
    assert.equal(config.syncPeriodMs, 10_000);
    assert.equal(config.minSyncPeriodMs, 2000, 'from the file');
    assert.equal(config.masqueradeAll, false);
    assert.equal(config.masqueradeBit, 15, 'from the file');
    assert.deepEqual(config.clusterCIDRs, ['10.0.0.0/8']);
    assert.deepEqual(config.log, { format: 'text', verbosity: 4 });
    assert.equal(config.hostnameOverride, 'n2');
  });

  test('the mode picks its own block', () => {
    const file = { apiVersion: 'kubeproxy.config.k8s.io/v1alpha1', kind: 'KubeProxyConfiguration', mode: 'nftables',
      iptables: { syncPeriod: '10s', masqueradeBit: 3 }, nftables: { syncPeriod: '20s', minSyncPeriod: '5s', masqueradeAll: true } };
    const { config } = resolveConfig({ flags: {}, file });
    assert.equal(config.mode, 'nftables');
    assert.equal(config.syncPeriodMs, 20_000);
    assert.equal(config.minSyncPeriodMs, 5000);
    assert.equal(config.masqueradeAll, true);
    assert.equal(config.masqueradeBit, 14);
  });

  test('unknown fields: one warning naming them all', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kproxy-config-'));
    try {
      const path = join(dir, 'c.yaml');
      writeFileSync(path, 'apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nfoo: 1\niptables:\n  syncPeriod: 5s\n  bogus: true\n');
      const { config, warnings } = loadConfig({ config: path });
      assert.equal(warnings.length, 1);
      assert.match(warnings[0] ?? '', /unknown fields ignored: foo, iptables\.bogus$/);
      assert.equal(config.syncPeriodMs, 5000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('invalid values: ConfigError naming field and value', () => {
  const cases: Array<{ name: string; flags?: FlagValues; file?: Record<string, unknown>; field: string; line: RegExp }> = [
    { name: 'unknown mode flag', flags: { proxyMode: 'bogus' }, field: '--proxy-mode', line: /^invalid --proxy-mode "bogus": must be one of iptables, ipvs, nftables, userspace/ },
    { name: 'windows mode in file', file: { mode: 'kernelspace' }, field: 'mode', line: /kernelspace is the Windows mode/ },
    { name: 'duration without unit', file: { iptables: { syncPeriod: '30' } }, field: 'iptables.syncPeriod', line: /invalid iptables\.syncPeriod "30": is not a duration/ },
    { name: 'number as duration', file: { iptables: { minSyncPeriod: 30 } }, field: 'iptables.minSyncPeriod', line: /invalid iptables\.minSyncPeriod 30/ },
    { name: 'bad duration in another block is still an error', file: { ipvs: { tcpTimeout: '5 minutes' } }, field: 'ipvs.tcpTimeout', line: /5 minutes/ },
    { name: 'every duration leaf of the schema is checked', file: { conntrack: { udpStreamTimeout: 30 } }, field: 'conntrack.udpStreamTimeout', line: /is not a duration/ },
    { name: 'configSyncPeriod is a duration', file: { configSyncPeriod: '15 min' }, field: 'configSyncPeriod', line: /is not a duration/ },
    { name: 'bad flag duration', flags: { minSyncPeriod: 'fast' }, field: '--min-sync-period', line: /--min-sync-period "fast"/ },
    { name: 'min longer than max', flags: { minSyncPeriod: '1m', syncPeriod: '30s' }, field: '--min-sync-period', line: /must not be longer than the sync period/ },
    { name: 'bad cluster CIDR', flags: { clusterCidr: '10.0.0.0/33' }, field: '--cluster-cidr', line: /"10\.0\.0\.0\/33": is not a CIDR/ },
    { name: 'two CIDRs of one family', file: { clusterCIDR: '10.0.0.0/8,192.168.0.0/16' }, field: 'clusterCIDR', line: /at most one CIDR per IP family/ },
    { name: 'bad nodeport address', flags: { nodeportAddresses: '10.0.0.1' }, field: '--nodeport-addresses', line: /must be CIDRs or the word "primary"/ },
    { name: 'primary mixed', file: { nodePortAddresses: ['primary', '10.0.0.0/8'] }, field: 'nodePortAddresses', line: /cannot be combined/ },
    { name: 'masqueradeBit too large', file: { iptables: { masqueradeBit: 32 } }, field: 'iptables.masqueradeBit', line: /invalid iptables\.masqueradeBit 32: must be an integer from 0 to 31/ },
    { name: 'masqueradeBit negative flag', flags: { iptablesMasqueradeBit: -1 }, field: '--iptables-masquerade-bit', line: /-1/ },
    { name: 'healthz without port', flags: { healthzBindAddress: '0.0.0.0:' }, field: '--healthz-bind-address', line: /must be IP:port/ },
    { name: 'healthz hostname', file: { healthzBindAddress: 'localhost:10256' }, field: 'healthzBindAddress', line: /must be IP:port/ },
    { name: 'metrics port out of range', flags: { metricsBindAddress: '127.0.0.1:70000' }, field: '--metrics-bind-address', line: /port must be from 0 to 65535/ },
    { name: 'bad bind address', file: { bindAddress: '0.0.0.0:1' }, field: 'bindAddress', line: /is not an IP address/ },
    { name: 'bad log format', flags: { logFormat: 'xml' }, field: '--log-format', line: /must be json or text/ },
    { name: 'bad verbosity', file: { logging: { verbosity: 'loud' } }, field: 'logging.verbosity', line: /non-negative integer/ },
    { name: 'bad masqueradeAll type', file: { iptables: { masqueradeAll: 'yes' } }, field: 'iptables.masqueradeAll', line: /must be true or false/ },
    { name: 'bad detectLocalMode', file: { detectLocalMode: 'Magic' }, field: 'detectLocalMode', line: /must be one of/ },
    { name: 'bad oomScoreAdj', file: { oomScoreAdj: 5000 }, field: 'oomScoreAdj', line: /-1000 to 1000/ },
  ];
  for (const c of cases) {
    test(c.name, () => {
      assert.throws(() => resolveConfig({ flags: c.flags ?? {}, file: c.file ?? {} }), (err: unknown) => {
        assert.ok(err instanceof ConfigError, `got ${String(err)}`);
        assert.equal(err.code, 'KP_ERR_CONFIG_INVALID');
        assert.equal(err.field, c.field);
        assert.equal(err.exitCode, 2);
        assert.match(err.message, c.line);
        assert.doesNotMatch(err.oneLine(), /\n/);
        return true;
      });
    });
  }
});

describe('valid edge values', () => {
  const ok: Array<{ name: string; flags?: FlagValues; file?: Record<string, unknown>; check: (c: ReturnType<typeof resolveConfig>['config']) => void }> = [
    { name: 'bare IP healthz gets the default port', flags: { healthzBindAddress: '127.0.0.1' }, check: (c) => assert.equal(c.healthzBindAddress, '127.0.0.1:10256') },
    { name: 'IPv6 healthz', flags: { healthzBindAddress: '[::1]:10256' }, check: (c) => assert.equal(c.healthzBindAddress, '[::1]:10256') },
    { name: 'port 0 disables metrics', flags: { metricsBindAddress: '0.0.0.0:0' }, check: (c) => assert.equal(c.metricsBindAddress, '') },
    { name: 'empty flag disables healthz', flags: { healthzBindAddress: '' }, check: (c) => assert.equal(c.healthzBindAddress, '') },
    { name: 'nodeport primary', flags: { nodeportAddresses: 'primary' }, check: (c) => assert.deepEqual(c.nodePortAddresses, ['primary']) },
    { name: 'nodeport list normalised', flags: { nodeportAddresses: ['10.1.2.3/8', '2001:DB8::/32'] }, check: (c) => assert.deepEqual(c.nodePortAddresses, ['10.0.0.0/8', '2001:db8::/32']) },
    { name: 'min-sync-period 0 by flag', flags: { minSyncPeriod: '0s' }, check: (c) => assert.equal(c.minSyncPeriodMs, 0) },
    { name: 'userspace uses iptables block', flags: { proxyMode: 'userspace' }, file: { iptables: { syncPeriod: '7s' } }, check: (c) => assert.equal(c.syncPeriodMs, 7000) },
  ];
  for (const c of ok) test(c.name, () => c.check(resolveConfig({ flags: c.flags ?? {}, file: c.file ?? {} }).config));
});

describe('unreadable config files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kproxy-config-'));
  const write = (name: string, text: string): string => { const p = join(dir, name); writeFileSync(p, text); return p; };
  test('missing file', () => assert.throws(() => loadConfig({ config: join(dir, 'nope.yaml') }), /cannot read config file .*nope\.yaml: ENOENT/));
  test('YAML syntax error names the line', () => {
    const path = write('broken.yaml', 'apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: [iptables\n');
    assert.throws(() => loadConfig({ config: path }), (err: unknown) => err instanceof ConfigUnreadableError && /broken\.yaml line \d+:/.test(err.message) && !err.message.includes('\n'));
  });
  test('wrong kind', () => assert.throws(() => loadConfig({ config: write('k.yaml', 'apiVersion: v1\nkind: Service\n') }), /is not a KubeProxyConfiguration \(found kind Service\)/));
  test('wrong apiVersion', () => assert.throws(() => loadConfig({ config: write('v.yaml', 'apiVersion: kubeproxy.config.k8s.io/v1alpha2\nkind: KubeProxyConfiguration\n') }), ConfigError));
  test('a kubeadm multi-document config: the KubeProxyConfiguration is picked', () => {
    const path = write('kubeadm.yaml', 'apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n---\napiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: ipvs\n');
    assert.equal(loadConfig({ config: path }).config.mode, 'ipvs');
  });
  test.after(() => rmSync(dir, { recursive: true, force: true }));
});

describe('kproxy extensions: iptables variant and the userspace block', () => {
  test('--iptables-variant overrides iptables.variant; auto leaves detection to the mode', () => {
    const file = { kind: 'KubeProxyConfiguration', iptables: { variant: 'nft' } };
    assert.equal(resolveConfig({ flags: {}, file }).config.modeSettings['variant'], 'nft');
    assert.equal(resolveConfig({ flags: { iptablesVariant: 'legacy' }, file }).config.modeSettings['variant'], 'legacy');
    assert.equal(resolveConfig({ flags: { iptablesVariant: 'auto' }, file }).config.modeSettings['variant'], undefined);
    assert.throws(() => resolveConfig({ flags: { iptablesVariant: 'xtables' }, file: {} }),
      (err: Error) => /--iptables-variant.*xtables.*legacy, nft or auto/.test(err.message));
  });

  test('the userspace block reaches the userspace mode only, with no unknown-field warning', () => {
    const file = { kind: 'KubeProxyConfiguration', userspace: { workers: 1, interfaceName: 'kp9' } };
    const userspace = resolveConfig({ flags: { proxyMode: 'userspace' }, file });
    assert.equal(userspace.config.modeSettings['workers'], 1);
    assert.equal(userspace.config.modeSettings['interfaceName'], 'kp9');
    assert.deepEqual(userspace.warnings, []);
    assert.equal(resolveConfig({ flags: { proxyMode: 'iptables' }, file }).config.modeSettings['workers'], undefined);
  });
});

describe('detectLocalMode', () => {
  test('ClusterCIDR and NodeCIDR are built; the interface modes warn and fall back to the cluster CIDRs', () => {
    for (const mode of ['ClusterCIDR', 'NodeCIDR'] as const) {
      const { config, warnings } = resolveConfig({ flags: {}, file: { kind: 'KubeProxyConfiguration', detectLocalMode: mode } });
      assert.equal(config.detectLocalMode, mode);
      assert.deepEqual(warnings, []);
    }
    const { warnings } = resolveConfig({ flags: {}, file: { kind: 'KubeProxyConfiguration', detectLocalMode: 'BridgeInterface' } });
    assert.match(warnings.join('\n'), /detectLocalMode BridgeInterface is not supported yet/);
  });
});
