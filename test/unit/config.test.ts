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

const KIND = { apiVersion: 'kubeproxy.config.k8s.io/v1alpha1', kind: 'KubeProxyConfiguration' };

describe('defaults', () => {
  test('no flags, no file: kube-proxy defaults', () => {
    const { config, warnings } = resolveConfig({ flags: {} });
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
    assert.equal(config.initOnly, false);
    assert.equal(config.oomScoreAdj, -999);
    assert.deepEqual(config.conntrack, {
      maxPerCore: 32768, min: 131072, tcpEstablishedTimeoutMs: 86_400_000, tcpCloseWaitTimeoutMs: 3_600_000,
      tcpBeLiberal: false, udpTimeoutMs: 0, udpStreamTimeoutMs: 0,
    });
    assert.deepEqual(config.settings.conntrack, config.conntrack);
    assert.equal(config.settings.localhostNodePorts, true);
  });

  test('nftables mode serves NodePorts on the primary address by default, as kube-proxy', () => {
    assert.deepEqual(resolveConfig({ flags: { 'proxy-mode': 'nftables' } }).config.nodePortAddresses, ['primary']);
    assert.deepEqual(resolveConfig({ flags: {}, file: { ...KIND, mode: 'nftables' } }).config.nodePortAddresses, ['primary']);
  });

  test('an IPv6 bindAddress in the file moves the default servers to IPv6', () => {
    const { config } = resolveConfig({ flags: {}, file: { ...KIND, bindAddress: 'fd00::7' } });
    assert.equal(config.bindAddress, 'fd00::7');
    assert.equal(config.healthzBindAddress, '[::]:10256');
    assert.equal(config.metricsBindAddress, '[::1]:10249');
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
    assert.equal(config.oomScoreAdj, -999, 'oomScoreAdj: null is the default');
    assert.equal(config.conntrack.maxPerCore, 32768, 'maxPerCore: null is the default');
    assert.equal(config.conntrack.tcpEstablishedTimeoutMs, 86_400_000, 'tcpEstablishedTimeout: null is the default');
    assert.deepEqual(config.clientConnection, {}, 'kubeadm zero values mean client defaults');
    const written = resolveConfig({ flags: {}, file: { ...KIND, clientConnection: { contentType: 'application/vnd.kubernetes.protobuf', acceptContentTypes: '' } } });
    assert.deepEqual(written.config.clientConnection, {}, 'kube-proxy\'s default content type, as --write-config-to writes it, is no request');
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

  test('conntrack pointers: explicit 0 means "leave the kernel value", null means the default', () => {
    const { config } = resolveConfig({ flags: {}, file: { ...KIND, conntrack: { maxPerCore: 0, min: null, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: null, udpTimeout: '30s' } } });
    assert.equal(config.conntrack.maxPerCore, 0);
    assert.equal(config.conntrack.min, 131072);
    assert.equal(config.conntrack.tcpEstablishedTimeoutMs, 0);
    assert.equal(config.conntrack.tcpCloseWaitTimeoutMs, 3_600_000);
    assert.equal(config.conntrack.udpTimeoutMs, 30_000);
  });
});

describe('precedence: kube-proxy\'s', () => {
  test('without --config, the flags configure', () => {
    const { config, warnings } = resolveConfig({ flags: {
      'iptables-sync-period': '10s', 'masquerade-all': true, 'cluster-cidr': '10.0.0.0/8', 'v': '4', 'conntrack-max-per-core': '0',
      'oom-score-adj': '-500', 'conntrack-tcp-be-liberal': true, 'conntrack-udp-timeout': '15s', 'ipvs-scheduler': 'wrr',
    } });
    assert.deepEqual(warnings, []);
    assert.equal(config.syncPeriodMs, 10_000);
    assert.equal(config.masqueradeAll, true);
    assert.deepEqual(config.clusterCIDRs, ['10.0.0.0/8']);
    assert.equal(config.log.verbosity, 4);
    assert.equal(config.conntrack.maxPerCore, 0);
    assert.equal(config.oomScoreAdj, -500);
    assert.equal(config.settings.conntrack.tcpBeLiberal, true);
    assert.equal(config.settings.conntrack.udpTimeoutMs, 15_000);
    assert.equal(config.settings.ipvs.scheduler, 'wrr');
  });

  test('with --config the file wins and kube-proxy\'s config flags are ignored with one warning; logging flags and --hostname-override still apply', () => {
    const flags = {
      'config': join(fixtures, 'tuned-kube-proxy.conf'),
      'iptables-sync-period': '10s', 'masquerade-all': false, 'cluster-cidr': '10.0.0.0/8', 'v': '4', 'hostname-override': 'N2',
      'log-format': 'text',
    };
    const { config, warnings } = loadConfig(flags);
    assert.equal(config.syncPeriodMs, 60_000, 'from the file');
    assert.equal(config.masqueradeAll, true, 'from the file');
    assert.deepEqual(config.clusterCIDRs, ['10.244.0.0/16', 'fd00:10:244::/56'], 'from the file');
    assert.deepEqual(config.log, { format: 'text', verbosity: 4 }, 'logging flags override the file');
    assert.equal(config.hostnameOverride, 'n2', '--hostname-override overrides the file');
    assert.deepEqual(warnings, ['--masquerade-all, --iptables-sync-period, --cluster-cidr are ignored because --config is given (as kube-proxy does); set them in the config file']);
  });

  test('kproxy\'s --sync-period sets the selected mode\'s period over the file, in any mode', () => {
    const file = { ...KIND, mode: 'ipvs', ipvs: { syncPeriod: '20s' } };
    assert.equal(resolveConfig({ flags: { 'sync-period': '5s' }, file }).config.syncPeriodMs, 5000);
    assert.equal(resolveConfig({ flags: {}, file }).config.syncPeriodMs, 20_000);
  });

  test('the sync-period flags follow the mode, as kube-proxy\'s', () => {
    const both = { 'iptables-sync-period': '10s', 'ipvs-sync-period': '20s', 'iptables-min-sync-period': '2s', 'ipvs-min-sync-period': '3s' };
    const at = (mode: string): [number, number] => {
      const { config } = resolveConfig({ flags: { ...both, 'proxy-mode': mode } });
      return [config.syncPeriodMs, config.minSyncPeriodMs];
    };
    assert.deepEqual(at('iptables'), [10_000, 2000]);
    assert.deepEqual(at('nftables'), [10_000, 2000]);
    assert.deepEqual(at('userspace'), [10_000, 2000]);
    assert.deepEqual(at('ipvs'), [20_000, 3000]);
  });

  test('the mode picks its own block of the file', () => {
    const file = { ...KIND, mode: 'nftables',
      iptables: { syncPeriod: '10s', masqueradeBit: 3 }, nftables: { syncPeriod: '20s', minSyncPeriod: '5s', masqueradeAll: true } };
    const { config } = resolveConfig({ flags: {}, file });
    assert.equal(config.mode, 'nftables');
    assert.equal(config.syncPeriodMs, 20_000);
    assert.equal(config.minSyncPeriodMs, 5000);
    assert.equal(config.masqueradeAll, true);
    assert.equal(config.masqueradeBit, 14, 'nftables.masqueradeBit, not iptables\'');
    assert.equal(resolveConfig({ flags: {}, file: { ...KIND, mode: 'ipvs' } }).config.minSyncPeriodMs, 0, 'ipvs.minSyncPeriod has no default');
  });

  test('unknown fields: one warning naming them all', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kproxy-config-'));
    try {
      const path = join(dir, 'c.yaml');
      writeFileSync(path, 'apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nfoo: 1\niptables:\n  syncPeriod: 5s\n  bogus: true\nuserspace:\n  splice: false\n  spliceAfterBytes: 0\n');
      const { config, warnings } = loadConfig({ config: path });
      assert.equal(warnings.length, 1);
      assert.match(warnings[0] ?? '', /unknown fields ignored: foo, iptables\.bogus$/);
      assert.equal(config.syncPeriodMs, 5000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('settings without effect in kproxy: one warning each, only when not the default', () => {
  const cases: Array<{ name: string; flags?: FlagValues; file?: Record<string, unknown>; warning: RegExp }> = [
    { name: 'enableProfiling', file: { enableProfiling: true }, warning: /^enableProfiling \(--profiling\) true has no effect in kproxy: .*pprof/ },
    { name: '--profiling', flags: { profiling: true }, warning: /^--profiling true has no effect in kproxy/ },
    { name: 'configSyncPeriod', file: { configSyncPeriod: '5m' }, warning: /^configSyncPeriod \(--config-sync-period\) "5m0s" has no effect/ },
    { name: 'winkernel', file: { winkernel: { enableDSR: true } }, warning: /^winkernel\.enableDSR true has no effect in kproxy: it is for the Windows/ },
    { name: 'portRange', file: { portRange: '30000-31000' }, warning: /^portRange "30000-31000" has no effect/ },
    { name: 'vmodule flag', flags: { vmodule: ['x=2'] }, warning: /^--vmodule \[\{"filePattern":"x","verbosity":2\}\] has no effect/ },
    { name: 'log flush', flags: { 'log-flush-frequency': '1s' }, warning: /^--log-flush-frequency "1s" has no effect/ },
    { name: 'boot id', flags: { 'boot-id-file': '/x' }, warning: /^--boot-id-file has no effect in kproxy/ },
    { name: 'show hidden metrics', file: { showHiddenMetricsForVersion: '1.33' }, warning: /^showHiddenMetricsForVersion .* has no effect/ },
    { name: 'feature gates', file: { featureGates: { AllAlpha: false, PreferSameTrafficDistribution: false } }, warning: /^feature gates AllAlpha have no effect/ },
    { name: 'localhost nodeports asked for', flags: { 'iptables-localhost-nodeports': true }, warning: /^--iptables-localhost-nodeports true has no effect in kproxy: NodePorts are never served on 127/ },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const { warnings } = resolveConfig({ flags: c.flags ?? {}, ...(c.file && { file: { ...KIND, ...c.file } }) });
      assert.equal(warnings.length, 1, warnings.join('\n'));
      assert.match(warnings[0] ?? '', c.warning);
    });
  }
  test('defaults written out (as kubeadm does) warn about nothing', () => {
    const { warnings } = resolveConfig({ flags: {}, file: { ...KIND, enableProfiling: false, configSyncPeriod: '15m0s', winkernel: { enableDSR: false }, portRange: '' } });
    assert.deepEqual(warnings, []);
  });
});

describe('invalid values: ConfigError naming field and value', () => {
  const cases: Array<{ name: string; flags?: FlagValues; file?: Record<string, unknown>; field: string; line: RegExp }> = [
    { name: 'unknown mode flag', flags: { 'proxy-mode': 'bogus' }, field: '--proxy-mode', line: /^invalid --proxy-mode "bogus": must be one of iptables, ipvs, nftables, userspace/ },
    { name: 'windows mode in file', file: { mode: 'kernelspace' }, field: 'mode', line: /kernelspace is the Windows mode/ },
    { name: 'duration without unit', file: { iptables: { syncPeriod: '30' } }, field: 'iptables.syncPeriod', line: /invalid iptables\.syncPeriod "30": is not a duration/ },
    { name: 'number as duration', file: { iptables: { minSyncPeriod: 30 } }, field: 'iptables.minSyncPeriod', line: /invalid iptables\.minSyncPeriod 30/ },
    { name: 'bad duration in another block is still an error', file: { ipvs: { tcpTimeout: '5 minutes' } }, field: 'ipvs.tcpTimeout', line: /5 minutes/ },
    { name: 'conntrack durations are checked', file: { conntrack: { udpStreamTimeout: 30 } }, field: 'conntrack.udpStreamTimeout', line: /is not a duration/ },
    { name: 'configSyncPeriod is a duration', file: { configSyncPeriod: '15 min' }, field: 'configSyncPeriod', line: /is not a duration/ },
    { name: 'bad flag duration', flags: { 'iptables-min-sync-period': 'fast' }, field: '--iptables-min-sync-period', line: /--iptables-min-sync-period "fast"/ },
    { name: 'min longer than max', flags: { 'iptables-min-sync-period': '1m', 'iptables-sync-period': '30s' }, field: '--iptables-min-sync-period', line: /must not be longer than the sync period/ },
    { name: 'min longer than max in the file', file: { iptables: { minSyncPeriod: '1m' } }, field: 'iptables.minSyncPeriod', line: /must not be longer than the sync period/ },
    { name: 'config sync period 0 by flag', flags: { 'config-sync-period': '0s' }, field: '--config-sync-period', line: /must be greater than 0/ },
    { name: 'bad cluster CIDR', flags: { 'cluster-cidr': '10.0.0.0/33' }, field: '--cluster-cidr', line: /"10\.0\.0\.0\/33": is not a CIDR/ },
    { name: 'two CIDRs of one family', file: { clusterCIDR: '10.0.0.0/8,192.168.0.0/16' }, field: 'clusterCIDR', line: /at most one CIDR per IP family/ },
    { name: 'bad nodeport address', flags: { 'nodeport-addresses': ['10.0.0.1'] }, field: '--nodeport-addresses', line: /is not a CIDR/ },
    { name: 'primary mixed', file: { nodePortAddresses: ['primary', '10.0.0.0/8'] }, field: 'nodePortAddresses', line: /cannot be combined/ },
    { name: 'masqueradeBit too large', file: { iptables: { masqueradeBit: 32 } }, field: 'iptables.masqueradeBit', line: /invalid iptables\.masqueradeBit 32: must be an integer from 0 to 31/ },
    { name: 'masqueradeBit negative flag', flags: { 'iptables-masquerade-bit': '-1' }, field: '--iptables-masquerade-bit', line: /-1/ },
    { name: 'int flag not a number', flags: { 'conntrack-min': 'lots' }, field: '--conntrack-min', line: /is not a 32-bit integer/ },
    { name: 'int flag too large', flags: { 'kube-api-burst': '4294967296' }, field: '--kube-api-burst', line: /is not a 32-bit integer/ },
    { name: 'bool flag not a bool', flags: { 'masquerade-all': 'yes' }, field: '--masquerade-all', line: /must be true or false/ },
    { name: 'feature gate not a bool', flags: { 'feature-gates': ['A=maybe'] }, field: '--feature-gates', line: /not a bool/ },
    { name: 'healthz without port', flags: { 'healthz-bind-address': '0.0.0.0:' }, field: '--healthz-bind-address', line: /must be IP:port/ },
    { name: 'healthz hostname', file: { healthzBindAddress: 'localhost:10256' }, field: 'healthzBindAddress', line: /must be IP:port/ },
    { name: 'metrics port out of range', flags: { 'metrics-bind-address': '127.0.0.1:70000' }, field: '--metrics-bind-address', line: /port must be from 0 to 65535/ },
    { name: 'bad bind address', file: { bindAddress: '0.0.0.0:1' }, field: 'bindAddress', line: /is not an IP address/ },
    { name: 'bad bind address flag', flags: { 'bind-address': 'node-1' }, field: '--bind-address', line: /is not an IP address/ },
    { name: 'bad log format', flags: { 'log-format': 'xml' }, field: '--log-format', line: /must be json or text/ },
    { name: 'bad verbosity', file: { logging: { verbosity: 'loud' } }, field: 'logging.verbosity', line: /must be an integer/ },
    { name: 'bad masqueradeAll type', file: { iptables: { masqueradeAll: 'yes' } }, field: 'iptables.masqueradeAll', line: /must be true or false/ },
    { name: 'bad detectLocalMode', file: { detectLocalMode: 'Magic' }, field: 'detectLocalMode', line: /must be one of/ },
    { name: 'BridgeInterface without a bridge', flags: { 'detect-local-mode': 'BridgeInterface' }, field: 'detectLocal.bridgeInterface', line: /must be set with detectLocalMode BridgeInterface/ },
    { name: 'bad oomScoreAdj', file: { oomScoreAdj: 5000 }, field: 'oomScoreAdj', line: /-1000 to 1000/ },
    { name: 'bad oom flag', flags: { 'oom-score-adj': '-1001' }, field: '--oom-score-adj', line: /-1000 to 1000/ },
    { name: 'negative conntrack min', file: { conntrack: { min: -1 } }, field: 'conntrack.min', line: /from 0/ },
    { name: 'blank hostname override', flags: { 'hostname-override': '  ' }, field: '--hostname-override', line: /must not be blank/ },
    { name: 'unknown flag name', flags: { 'no-such-flag': 'x' }, field: '--no-such-flag', line: /is not a flag of kproxy/ },
    { name: 'a block that is not a mapping', file: { conntrack: 5 }, field: 'conntrack', line: /must be a mapping of fields/ },
  ];
  for (const c of cases) {
    test(c.name, () => {
      assert.throws(() => resolveConfig({ flags: c.flags ?? {}, ...(c.file && { file: { ...KIND, ...c.file } }) }), (err: unknown) => {
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
  test('a bad value of a flag that --config makes kube-proxy ignore is still an error', () => {
    assert.throws(() => resolveConfig({ flags: { 'iptables-sync-period': 'soon' }, file: KIND }), /--iptables-sync-period "soon"/);
  });
});

describe('valid edge values', () => {
  const ok: Array<{ name: string; flags?: FlagValues; file?: Record<string, unknown>; check: (c: ReturnType<typeof resolveConfig>['config']) => void }> = [
    { name: 'bare IP healthz gets the default port', flags: { 'healthz-bind-address': '127.0.0.1' }, check: (c) => assert.equal(c.healthzBindAddress, '127.0.0.1:10256') },
    { name: 'IPv6 healthz', flags: { 'healthz-bind-address': '[::1]:10256' }, check: (c) => assert.equal(c.healthzBindAddress, '[::1]:10256') },
    { name: 'port 0 disables metrics', flags: { 'metrics-bind-address': '0.0.0.0:0' }, check: (c) => assert.equal(c.metricsBindAddress, '') },
    { name: 'empty flag disables healthz', flags: { 'healthz-bind-address': '' }, check: (c) => assert.equal(c.healthzBindAddress, '') },
    { name: 'deprecated --healthz-port=0 disables the server', flags: { 'healthz-port': '0' }, check: (c) => assert.equal(c.healthzBindAddress, '') },
    { name: 'deprecated --metrics-port gives a bare address its port', flags: { 'metrics-bind-address': '127.0.0.1', 'metrics-port': '9999' }, check: (c) => assert.equal(c.metricsBindAddress, '127.0.0.1:9999') },
    { name: 'nodeport primary', flags: { 'nodeport-addresses': ['primary'] }, check: (c) => assert.deepEqual(c.nodePortAddresses, ['primary']) },
    { name: 'nodeport list normalised', flags: { 'nodeport-addresses': ['10.1.2.3/8,2001:DB8::/32'] }, check: (c) => assert.deepEqual(c.nodePortAddresses, ['10.0.0.0/8', '2001:db8::/32']) },
    { name: 'legacy address forms, as kube-proxy reads them', flags: { 'bind-address': '010.001.002.003', 'cluster-cidr': '10.244.000.000/016' }, check: (c) => { assert.equal(c.bindAddress, '10.1.2.3'); assert.deepEqual(c.clusterCIDRs, ['10.244.0.0/16']); } },
    { name: 'min-sync-period 0 by flag', flags: { 'iptables-min-sync-period': '0s' }, check: (c) => assert.equal(c.minSyncPeriodMs, 0) },
    { name: 'int flags in Go\'s bases', flags: { 'conntrack-min': '0x100', 'conntrack-max-per-core': '010' }, check: (c) => { assert.equal(c.conntrack.min, 256); assert.equal(c.conntrack.maxPerCore, 8); } },
    { name: 'Go bools', flags: { 'masquerade-all': 'T', 'conntrack-tcp-be-liberal': '1' }, check: (c) => { assert.equal(c.masqueradeAll, true); assert.equal(c.conntrack.tcpBeLiberal, true); } },
    { name: 'feature gates merge over occurrences', flags: { 'feature-gates': ['A=true,B=false', 'B=true'] }, check: (c) => assert.deepEqual(c.featureGates, { A: true, B: true }) },
    { name: '--logging-format sets the format; --log-format wins over it', flags: { 'logging-format': 'text' }, check: (c) => assert.equal(c.log.format, 'text') },
    { name: 'both format flags', flags: { 'logging-format': 'text', 'log-format': 'json' }, check: (c) => assert.equal(c.log.format, 'json') },
    { name: 'userspace uses the iptables block', flags: {}, file: { mode: 'userspace', iptables: { syncPeriod: '7s' } }, check: (c) => assert.equal(c.syncPeriodMs, 7000) },
    { name: 'logging.flushFrequency as nanoseconds (kubeadm writes 0)', file: { logging: { flushFrequency: 0 } }, check: (c) => assert.equal(c.log.format, 'json') },
  ];
  for (const c of ok) test(c.name, () => c.check(resolveConfig({ flags: c.flags ?? {}, ...(c.file && { file: { ...KIND, ...c.file } }) }).config));
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
    const file = { ...KIND, iptables: { variant: 'nft' } };
    assert.equal(resolveConfig({ flags: {}, file }).config.modeSettings['variant'], 'nft');
    assert.equal(resolveConfig({ flags: {}, file }).config.settings.iptablesVariant, 'nft');
    assert.equal(resolveConfig({ flags: { 'iptables-variant': 'legacy' }, file }).config.modeSettings['variant'], 'legacy');
    assert.equal(resolveConfig({ flags: { 'iptables-variant': 'auto' }, file }).config.modeSettings['variant'], undefined);
    assert.throws(() => resolveConfig({ flags: { 'iptables-variant': 'xtables' } }),
      (err: Error) => /--iptables-variant.*xtables.*legacy, nft or auto/.test(err.message));
  });

  test('the userspace block (splice and spliceAfterBytes included) reaches the userspace mode only, with no warning', () => {
    const file = { ...KIND, mode: 'userspace', userspace: { workers: 1, interfaceName: 'kp9', splice: false, spliceAfterBytes: 4096 } };
    const userspace = resolveConfig({ flags: {}, file });
    assert.equal(userspace.config.modeSettings['workers'], 1);
    assert.equal(userspace.config.modeSettings['interfaceName'], 'kp9');
    assert.equal(userspace.config.modeSettings['splice'], false);
    assert.equal(userspace.config.modeSettings['spliceAfterBytes'], 4096);
    assert.deepEqual(userspace.warnings, []);
    assert.equal(resolveConfig({ flags: {}, file: { ...file, mode: 'iptables' } }).config.modeSettings['workers'], undefined);
  });
});

describe('detectLocalMode', () => {
  test('ClusterCIDR and NodeCIDR are built; the interface modes warn and fall back to the cluster CIDRs', () => {
    for (const mode of ['ClusterCIDR', 'NodeCIDR'] as const) {
      const { config, warnings } = resolveConfig({ flags: {}, file: { ...KIND, detectLocalMode: mode } });
      assert.equal(config.detectLocalMode, mode);
      assert.deepEqual(warnings, []);
    }
    const { warnings } = resolveConfig({ flags: {}, file: { ...KIND, detectLocalMode: 'BridgeInterface', detectLocal: { bridgeInterface: 'cbr0' } } });
    assert.match(warnings.join('\n'), /detectLocalMode BridgeInterface is not supported yet/);
  });
});

describe('the effective configuration (--write-config-to, /configz)', () => {
  test('the selected mode\'s block holds the sync periods; the others are zero, as kube-proxy writes them', () => {
    const { config } = resolveConfig({ flags: { 'proxy-mode': 'nftables', 'iptables-sync-period': '10s' } });
    const e = config.effective as Record<string, Record<string, unknown>>;
    assert.equal(e.nftables?.syncPeriod, '10s');
    assert.equal(e.nftables?.minSyncPeriod, '1s');
    assert.equal(e.iptables?.syncPeriod, '0s');
    assert.equal(e.ipvs?.syncPeriod, '0s');
    assert.deepEqual(e.nodePortAddresses, ['primary']);
    assert.equal(config.effective.oomScoreAdj, -999);
  });
});
