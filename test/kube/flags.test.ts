// kube-proxy itself is the oracle of its flags and config fields. The pinned kube-proxy (tools/kube) is asked:
//   - `--help`: every flag it lists must be accepted by kproxy, as --flag=value and --flag value (booleans bare
//     and with =), with the same value type;
//   - `--write-config-to`: given the same flags (or the same --config file), kproxy must write the same effective
//     KubeProxyConfiguration, so every flag and field is read with kube-proxy's meaning, precedence included;
//   - its written configuration lists every v1alpha1 field: kproxy's schema must know exactly those.
// Only kube-proxy's flag parsing and defaulting run (--write-config-to exits before touching anything): no root.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { kubeTestsDisabled, requireKubeBinaries } from './apiserver.ts';
import { kproxy, FIXTURES } from '../cli/helpers.ts';
import { parseCommandLine } from '../../src/cli/parse.ts';
import { flagNamed, leaves, loadConfig } from '../../src/config/index.ts';

const skip = kubeTestsDisabled ? 'KPROXY_NO_KUBE_TESTS=1' : false;

interface HelpFlag { readonly name: string; readonly type: string }

/** "      --iptables-sync-period duration   An interval…" → { name, type: 'duration' } ("" for booleans). */
function helpFlags(help: string): HelpFlag[] {
  return [...help.matchAll(/^\s+(?:-[a-z], )?--([a-z0-9-]+)(?: ([^\s]+))?\s{2,}/gm)].map((m) => ({ name: m[1] ?? '', type: m[2] ?? '' }));
}

/** kube-proxy's value type names (pflag's Type()) → kproxy's flag kinds. */
const KIND_OF_TYPE: Readonly<Record<string, string>> = {
  '': 'bool', 'string': 'string', 'int32': 'int32', 'float32': 'float32', 'duration': 'duration', 'strings': 'strings',
  'mapStringBool': 'mapStringBool', 'ip': 'ip', 'ipport': 'ipport', 'quantity': 'quantity', 'Level': 'level',
  'pattern=N,...': 'moduleSpec', 'version[=true]': 'version', 'ProxyMode': 'string', 'LocalMode': 'string',
};

/** A valid, non-default value for every non-boolean flag kube-proxy lists (its validation passes with all of them). */
const SAMPLES: Readonly<Record<string, string>> = {
  'bind-address': '10.1.2.3', 'boot-id-file': '/proc/sys/kernel/random/boot_id', 'cluster-cidr': '10.244.0.0/16',
  'config-sync-period': '10m0s', 'conntrack-max-per-core': '65536', 'conntrack-min': '262144',
  'conntrack-tcp-timeout-close-wait': '30m0s', 'conntrack-tcp-timeout-established': '12h0m0s', 'conntrack-udp-timeout': '30s',
  'conntrack-udp-timeout-stream': '2m0s', 'detect-local-mode': 'NodeCIDR', 'feature-gates': 'LoggingAlphaOptions=true',
  'healthz-bind-address': '127.0.0.1:10999', 'hostname-override': 'node-a', 'iptables-masquerade-bit': '9',
  'iptables-min-sync-period': '2s', 'iptables-sync-period': '45s', 'ipvs-exclude-cidrs': '10.10.0.0/16', 'ipvs-min-sync-period': '3s',
  'ipvs-scheduler': 'wrr', 'ipvs-sync-period': '50s', 'ipvs-tcp-timeout': '5m0s', 'ipvs-tcpfin-timeout': '1m0s', 'ipvs-udp-timeout': '20s',
  'kube-api-burst': '25', 'kube-api-content-type': 'application/json', 'kube-api-qps': '7.5',
  'kubeconfig': '/etc/kubernetes/proxy.kubeconfig', 'log-flush-frequency': '2s', 'log-json-info-buffer-size': '4Ki',
  'log-text-info-buffer-size': '8Ki', 'logging-format': 'text', 'machine-id-file': '/etc/machine-id', 'master': 'https://127.0.0.1:6443',
  'metrics-bind-address': '127.0.0.1:10998', 'nodeport-addresses': '192.168.10.0/24', 'oom-score-adj': '-500',
  'pod-bridge-interface': 'cbr0', 'pod-interface-name-prefix': 'veth', 'proxy-mode': 'iptables',
  'show-hidden-metrics-for-version': '1.33', 'v': '3', 'vmodule': 'proxier=4',
};
/** Booleans given as --flag=value: every one true except the one whose default is true. */
const BOOLEAN_VALUE: Readonly<Record<string, string>> = { 'iptables-localhost-nodeports': 'false' };
/** Flags that end the run or choose the file, so they are not part of the all-flags comparison. */
const NOT_COMPARED = new Set(['help', 'version', 'config', 'write-config-to']);

describe('kube-proxy\'s flags and config fields, with the built kube-proxy as the oracle', { skip }, () => {
  let kubeProxy = '';
  let listed: HelpFlag[] = [];
  let dir = '';

  before(() => {
    kubeProxy = requireKubeBinaries().kubeProxy;
    const help = spawnSync(kubeProxy, ['--help'], { encoding: 'utf8' });
    listed = helpFlags(`${help.stdout}${help.stderr}`);
    dir = mkdtempSync(join(tmpdir(), 'kproxy-flags-'));
  });
  after(() => { if (dir !== '') rmSync(dir, { recursive: true, force: true }); });

  /** The configuration `args` give: kube-proxy's and kproxy's --write-config-to, parsed. */
  function written(args: readonly string[], tag: string): { upstream: unknown; ours: unknown; oursStderr: string } {
    const upstreamPath = join(dir, `${tag}-kube-proxy.yaml`);
    const oursPath = join(dir, `${tag}-kproxy.yaml`);
    const upstream = spawnSync(kubeProxy, [...args, `--write-config-to=${upstreamPath}`], { encoding: 'utf8' });
    assert.equal(upstream.status, 0, `kube-proxy refused ${args.join(' ')}:\n${upstream.stderr.slice(-1500)}`);
    const ours = kproxy([...args, `--write-config-to=${oursPath}`]);
    assert.equal(ours.status, 0, `kproxy refused ${args.join(' ')}:\n${ours.stderr}`);
    return { upstream: parse(readFileSync(upstreamPath, 'utf8')), ours: parse(readFileSync(oursPath, 'utf8')), oursStderr: ours.stderr };
  }

  const sample = (flag: HelpFlag): string => {
    if (flag.name === 'config') return join(FIXTURES, 'kubeadm-kube-proxy.conf');
    if (flag.name === 'write-config-to') return join(dir, 'unused.yaml');
    if (flag.name === 'version') return 'true';
    if (flag.type === '') return BOOLEAN_VALUE[flag.name] ?? 'true';
    return SAMPLES[flag.name] ?? '';
  };

  test('kube-proxy --help lists the flags this project pins (sanity of the oracle)', () => {
    assert.ok(listed.length >= 55, `only ${listed.length} flags parsed from kube-proxy --help`);
    for (const name of ['iptables-sync-period', 'conntrack-max-per-core', 'oom-score-adj', 'write-config-to', 'v']) {
      assert.ok(listed.some((f) => f.name === name), `${name} missing from kube-proxy --help`);
    }
  });

  test('every listed flag is known to kproxy with the same value type, and has a sample value', () => {
    for (const flag of listed) {
      const spec = flagNamed(flag.name);
      assert.ok(spec, `kproxy does not know --${flag.name}`);
      assert.equal(spec.kind, KIND_OF_TYPE[flag.type], `--${flag.name}: kube-proxy reads a ${flag.type || 'bool'}`);
      if (flag.type !== '' && !NOT_COMPARED.has(flag.name)) assert.ok(SAMPLES[flag.name] !== undefined, `no sample value for --${flag.name}`);
    }
  });

  test('every listed flag is accepted as --flag=value and as --flag value (booleans: bare and --flag=value)', async () => {
    for (const flag of listed) {
      const value = sample(flag);
      const forms = flag.type === '' || flag.type === 'version[=true]'
        ? [[`--${flag.name}`], [`--${flag.name}=${value}`]]
        : [[`--${flag.name}=${value}`], [`--${flag.name}`, value]];
      for (const args of forms) {
        const command = await parseCommandLine(args);
        if (command.kind === 'print') continue; // --help, --version
        assert.doesNotThrow(() => loadConfig(command.flags), `kproxy ${args.join(' ')}`);
      }
    }
  });

  test('all flags at once: kproxy writes the configuration kube-proxy writes, in both spellings', () => {
    const compared = listed.filter((f) => !NOT_COMPARED.has(f.name));
    const joined = compared.flatMap((f) => [`--${f.name}=${sample(f)}`]);
    const spaced = compared.flatMap((f) => (f.type === '' ? (BOOLEAN_VALUE[f.name] === undefined ? [`--${f.name}`] : [`--${f.name}=${sample(f)}`]) : [`--${f.name}`, sample(f)]));
    for (const [tag, args] of [['joined', joined], ['spaced', spaced]] as const) {
      const { upstream, ours } = written(args, tag);
      assert.deepEqual(ours, upstream, `${tag}: kproxy's effective configuration differs from kube-proxy's`);
    }
  });

  test('the sync-period flags follow the mode as in kube-proxy (nftables, ipvs, userspace reads iptables\')', () => {
    const periods = ['--iptables-sync-period=11s', '--iptables-min-sync-period=3s', '--ipvs-sync-period=13s', '--ipvs-min-sync-period=4s', '--masquerade-all'];
    for (const mode of ['nftables', 'ipvs']) {
      const { upstream, ours } = written([`--proxy-mode=${mode}`, ...periods, '--logging-format=text'], mode);
      assert.deepEqual(ours, upstream, mode);
    }
  });

  test('defaults: the same configuration except the log format (kproxy logs JSON by default)', () => {
    const { upstream, ours } = written([], 'defaults');
    const logging = (ours as { logging: { format: string } }).logging;
    assert.equal(logging.format, 'json');
    logging.format = 'text';
    assert.deepEqual(ours, upstream);
  });

  test('with --config the file wins: kube-proxy\'s flags are ignored (kproxy warns), logging flags and --hostname-override apply', () => {
    const args = ['--config', join(FIXTURES, 'tuned-kube-proxy.conf'), '--iptables-sync-period=5s', '--masquerade-all=false',
      '--conntrack-min=1', '--cluster-cidr=10.9.0.0/16', '--v=5', '--hostname-override=other-node', '--logging-format=text'];
    const { upstream, ours, oursStderr } = written(args, 'with-config');
    assert.deepEqual(ours, upstream);
    assert.match(oursStderr, /--masquerade-all, --iptables-sync-period, --cluster-cidr, --conntrack-min are ignored because --config is given/);
  });

  test('a config file setting every field to a non-default value is read as kube-proxy reads it', () => {
    const path = join(dir, 'every-field.yaml');
    writeFileSync(path, EVERY_FIELD);
    const { upstream, ours } = written(['--config', path], 'every-field');
    assert.deepEqual(ours, upstream);
  });

  test('kproxy\'s schema holds exactly kube-proxy\'s v1alpha1 fields (plus its own blocks)', () => {
    const path = join(dir, 'default-fields.yaml');
    assert.equal(spawnSync(kubeProxy, [`--write-config-to=${path}`]).status, 0);
    const upstreamLeaves = new Set(leafPaths(parse(readFileSync(path, 'utf8'))));
    // Fields kube-proxy leaves out of its output when empty (omitempty), and kproxy's own.
    const omitted = ['featureGates', 'logging.vmodule', 'logging.options.json.splitStream', 'logging.options.text.splitStream', 'windowsRunAsService'];
    const ours = leaves().map((l) => l.path).filter((p) => !p.startsWith('userspace.') && p !== 'iptables.variant' && p !== 'takeOverFromKubeProxy');
    for (const path of upstreamLeaves) assert.ok(ours.includes(path), `kproxy's schema lacks ${path}`);
    for (const path of ours) assert.ok(upstreamLeaves.has(path) || omitted.includes(path), `${path} is not a kube-proxy field`);
  });
});

function leafPaths(value: unknown, prefix = ''): string[] {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return [prefix];
  return Object.entries(value).flatMap(([key, child]) => leafPaths(child, prefix === '' ? key : `${prefix}.${key}`));
}

/** Every v1alpha1 field set to something other than its default, valid for kube-proxy. */
const EVERY_FIELD = `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
bindAddress: 10.1.2.3
bindAddressHardFail: true
clientConnection:
  acceptContentTypes: application/json
  burst: 30
  contentType: application/json
  kubeconfig: /etc/kubernetes/proxy.kubeconfig
  qps: 12.5
clusterCIDR: 10.244.0.0/16,fd00:244::/56
configSyncPeriod: 20m0s
conntrack:
  maxPerCore: 0
  min: 0
  tcpBeLiberal: true
  tcpCloseWaitTimeout: 0s
  tcpEstablishedTimeout: 2h0m0s
  udpStreamTimeout: 3m0s
  udpTimeout: 45s
detectLocal:
  bridgeInterface: cbr0
  interfaceNamePrefix: veth
detectLocalMode: NodeCIDR
enableProfiling: true
featureGates:
  PreferSameTrafficDistribution: false
healthzBindAddress: 127.0.0.1:11256
hostnameOverride: node-b
iptables:
  localhostNodePorts: false
  masqueradeAll: true
  masqueradeBit: 5
  minSyncPeriod: 4s
  syncPeriod: 2m0s
ipvs:
  excludeCIDRs:
  - 10.20.0.0/16
  minSyncPeriod: 5s
  scheduler: sh
  strictARP: true
  syncPeriod: 3m0s
  tcpFinTimeout: 30s
  tcpTimeout: 10m0s
  udpTimeout: 40s
logging:
  flushFrequency: 3s
  format: text
  options:
    json:
      infoBufferSize: "0"
    text:
      infoBufferSize: "0"
  verbosity: 4
  vmodule:
  - filePattern: proxier
    verbosity: 6
metricsBindAddress: 127.0.0.1:11249
mode: iptables
nftables:
  masqueradeAll: true
  masqueradeBit: 6
  minSyncPeriod: 6s
  syncPeriod: 4m0s
nodePortAddresses:
- 192.168.10.0/24
oomScoreAdj: -100
portRange: 30000-31000
showHiddenMetricsForVersion: "1.33"
winkernel:
  enableDSR: true
  forwardHealthCheckVip: true
  networkName: net
  rootHnsEndpointName: root
  sourceVip: 10.1.2.4
`;
