// Every KubeProxyConfiguration field of the schema (kube-proxy's v1alpha1, checked against the real kube-proxy in
// test/kube/flags.test.ts) either reaches what kproxy runs on — the ProxyConfig, the mode's settings — or, when
// set to anything but its default, gives one warning that names it and says why it has no effect.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { leaves, resolveConfig, type ProxyConfig } from '../../src/config/index.ts';

const KIND = { apiVersion: 'kubeproxy.config.k8s.io/v1alpha1', kind: 'KubeProxyConfiguration' };

interface Applied {
  /** Extra fields the value needs to matter (e.g. the mode). */
  readonly with?: Record<string, unknown>;
  readonly value: unknown;
  readonly read: (c: ProxyConfig) => unknown;
  readonly want: unknown;
}

const APPLIED: Readonly<Record<string, Applied>> = {
  'featureGates': { value: { PreferSameTrafficDistribution: false }, read: (c) => c.featureGates, want: { PreferSameTrafficDistribution: false } },
  'clientConnection.kubeconfig': { value: '/k', read: (c) => c.kubeconfig, want: '/k' },
  'clientConnection.acceptContentTypes': { value: 'application/json', read: (c) => c.clientConnection.acceptContentTypes, want: 'application/json' },
  'clientConnection.contentType': { value: 'application/json', read: (c) => c.clientConnection.contentType, want: 'application/json' },
  'clientConnection.qps': { value: 7, read: (c) => c.clientConnection.qps, want: 7 },
  'clientConnection.burst': { value: 20, read: (c) => c.clientConnection.burst, want: 20 },
  'logging.format': { value: 'text', read: (c) => c.log.format, want: 'text' },
  'logging.verbosity': { value: 3, read: (c) => c.log.verbosity, want: 3 },
  'hostnameOverride': { value: 'Node-X', read: (c) => c.hostnameOverride, want: 'node-x' },
  'bindAddress': { value: '10.0.0.9', read: (c) => c.bindAddress, want: '10.0.0.9' },
  'healthzBindAddress': { value: '127.0.0.1:1234', read: (c) => c.healthzBindAddress, want: '127.0.0.1:1234' },
  'metricsBindAddress': { value: '127.0.0.1:1235', read: (c) => c.metricsBindAddress, want: '127.0.0.1:1235' },
  'bindAddressHardFail': { value: true, read: (c) => c.bindAddressHardFail, want: true },
  'mode': { value: 'userspace', read: (c) => c.mode, want: 'userspace' },
  'iptables.masqueradeAll': { value: true, read: (c) => c.settings.masqueradeAll, want: true },
  'iptables.masqueradeBit': { value: 3, read: (c) => c.settings.masqueradeBit, want: 3 },
  'iptables.localhostNodePorts': { value: false, read: (c) => c.settings.localhostNodePorts, want: false },
  'iptables.syncPeriod': { value: '40s', read: (c) => c.settings.syncPeriodMs, want: 40_000 },
  'iptables.minSyncPeriod': { value: '2s', read: (c) => c.settings.minSyncPeriodMs, want: 2000 },
  'iptables.variant': { value: 'legacy', read: (c) => c.settings.iptablesVariant, want: 'legacy' },
  'takeOverFromKubeProxy': { value: true, read: (c) => c.settings.takeOverFromKubeProxy, want: true },
  'ipvs.syncPeriod': { with: { mode: 'ipvs' }, value: '40s', read: (c) => c.settings.syncPeriodMs, want: 40_000 },
  'ipvs.minSyncPeriod': { with: { mode: 'ipvs' }, value: '2s', read: (c) => c.settings.minSyncPeriodMs, want: 2000 },
  'ipvs.scheduler': { value: 'wrr', read: (c) => c.settings.ipvs.scheduler, want: 'wrr' },
  'ipvs.excludeCIDRs': { value: ['10.1.0.0/16'], read: (c) => c.settings.ipvs.excludeCIDRs, want: ['10.1.0.0/16'] },
  'ipvs.strictARP': { value: true, read: (c) => c.settings.ipvs.strictARP, want: true },
  'ipvs.tcpTimeout': { value: '1m', read: (c) => c.settings.ipvs.tcpTimeoutMs, want: 60_000 },
  'ipvs.tcpFinTimeout': { value: '2m', read: (c) => c.settings.ipvs.tcpFinTimeoutMs, want: 120_000 },
  'ipvs.udpTimeout': { value: '3m', read: (c) => c.settings.ipvs.udpTimeoutMs, want: 180_000 },
  'nftables.masqueradeAll': { with: { mode: 'nftables' }, value: true, read: (c) => c.settings.masqueradeAll, want: true },
  'nftables.masqueradeBit': { with: { mode: 'nftables' }, value: 4, read: (c) => c.settings.masqueradeBit, want: 4 },
  'nftables.syncPeriod': { with: { mode: 'nftables' }, value: '40s', read: (c) => c.settings.syncPeriodMs, want: 40_000 },
  'nftables.minSyncPeriod': { with: { mode: 'nftables' }, value: '2s', read: (c) => c.settings.minSyncPeriodMs, want: 2000 },
  'detectLocalMode': { value: 'NodeCIDR', read: (c) => c.detectLocalMode, want: 'NodeCIDR' },
  'clusterCIDR': { value: '10.244.0.0/16', read: (c) => c.clusterCIDRs, want: ['10.244.0.0/16'] },
  'nodePortAddresses': { value: ['192.168.0.0/16'], read: (c) => c.nodePortAddresses, want: ['192.168.0.0/16'] },
  'oomScoreAdj': { value: -10, read: (c) => c.oomScoreAdj, want: -10 },
  'conntrack.maxPerCore': { value: 1000, read: (c) => c.settings.conntrack.maxPerCore, want: 1000 },
  'conntrack.min': { value: 2000, read: (c) => c.settings.conntrack.min, want: 2000 },
  'conntrack.tcpEstablishedTimeout': { value: '1h', read: (c) => c.settings.conntrack.tcpEstablishedTimeoutMs, want: 3_600_000 },
  'conntrack.tcpCloseWaitTimeout': { value: '30m', read: (c) => c.settings.conntrack.tcpCloseWaitTimeoutMs, want: 1_800_000 },
  'conntrack.tcpBeLiberal': { value: true, read: (c) => c.settings.conntrack.tcpBeLiberal, want: true },
  'conntrack.udpTimeout': { value: '10s', read: (c) => c.settings.conntrack.udpTimeoutMs, want: 10_000 },
  'conntrack.udpStreamTimeout': { value: '20s', read: (c) => c.settings.conntrack.udpStreamTimeoutMs, want: 20_000 },
};

/** Read only with a detect-local mode kproxy does not build yet: the mode itself warns. */
const NOT_BUILT: Readonly<Record<string, { with: Record<string, unknown>; value: string; warning: RegExp }>> = {
  'detectLocal.bridgeInterface': { with: { detectLocalMode: 'BridgeInterface' }, value: 'cbr0', warning: /detectLocalMode BridgeInterface is not supported yet/ },
  'detectLocal.interfaceNamePrefix': { with: { detectLocalMode: 'InterfaceNamePrefix' }, value: 'veth', warning: /detectLocalMode InterfaceNamePrefix is not supported yet/ },
};

/** A non-default value of the right type for a field without effect. */
function nonDefault(type: string): unknown {
  switch (type) {
    case 'bool': return true;
    case 'duration': return '7m0s';
    case 'int': return 3;
    case 'list': return ['x'];
    case 'any': return '9s';
    default: return 'something';
  }
}

function fileWith(path: string, value: unknown, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const file: Record<string, unknown> = { ...KIND, ...extra };
  const keys = path.split('.');
  let node = file;
  keys.slice(0, -1).forEach((key) => { node = (node[key] ??= {}) as Record<string, unknown>; });
  node[keys.at(-1) ?? ''] = value;
  return file;
}

describe('every KubeProxyConfiguration field is applied or warns', () => {
  const fields = leaves().filter((l) => l.path !== 'apiVersion' && l.path !== 'kind' && !l.path.startsWith('userspace.'));

  test('each field is in exactly one of: applied, without effect, read only by a detect-local mode not built', () => {
    for (const { path, spec } of fields) {
      const kinds = [APPLIED[path] !== undefined, spec.noEffect !== undefined, NOT_BUILT[path] !== undefined].filter(Boolean).length;
      assert.equal(kinds, 1, `${path}: ${kinds} categories`);
    }
  });

  for (const { path, spec } of fields) {
    const applied = APPLIED[path];
    const notBuilt = NOT_BUILT[path];
    if (applied) {
      test(`${path} is applied`, () => {
        const { config, warnings } = resolveConfig({ flags: {}, file: fileWith(path, applied.value, applied.with) });
        assert.deepEqual(applied.read(config), applied.want);
        assert.ok(!warnings.some((w) => w.includes('no effect')), warnings.join('\n'));
      });
    } else if (notBuilt) {
      test(`${path} warns through its detect-local mode`, () => {
        const { warnings } = resolveConfig({ flags: {}, file: fileWith(path, notBuilt.value, notBuilt.with) });
        assert.match(warnings.join('\n'), notBuilt.warning);
      });
    } else {
      test(`${path} warns once that it has no effect, and why`, () => {
        const { warnings } = resolveConfig({ flags: {}, file: fileWith(path, nonDefault(spec.type)) });
        assert.equal(warnings.length, 1, warnings.join('\n'));
        assert.ok(warnings[0]?.startsWith(path), warnings[0]);
        assert.match(warnings[0] ?? '', new RegExp(`has no effect in kproxy: ${(spec.noEffect ?? '').slice(0, 20).replace(/[()/.]/g, '\\$&')}`));
      });
    }
  }
});
