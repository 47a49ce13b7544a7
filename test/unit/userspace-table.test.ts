import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { compile } from '../../modes/userspace/table.ts';
import { mode } from '../../modes/userspace/index.ts';
import { interfaceAddresses } from '../../modes/userspace/proxy.ts';
import { desiredState } from '../userspace/helpers.ts';
import type { ServiceSpec } from '../userspace/helpers.ts';

const web: ServiceSpec = {
  name: 'web', clusterIP: '10.96.0.10', port: 80, nodePort: 30080,
  endpoints: [['10.244.1.2', 8080, true], ['10.244.2.2', 8080]],
};

describe('userspace compile', () => {
  test('one listener per frontend; NodePorts on node addresses, never loopback by default', () => {
    const table = compile(desiredState([web]), { localAddresses: ['127.0.0.1', '192.168.1.5', '::1'] });
    assert.deepEqual(table.listeners.map((l) => l.key), ['TCP 10.96.0.10:80', 'TCP 192.168.1.5:30080']);
    const [cluster, nodePort] = table.listeners;
    assert.equal(cluster?.route.frontend, 'ClusterIP');
    assert.equal(nodePort?.route.frontend, 'NodePort');
    assert.deepEqual(cluster?.route.internal.map((e) => e.id), ['10.244.1.2:8080', '10.244.2.2:8080']);
  });

  test('an explicit address list may name loopback; CIDRs select local addresses', () => {
    const state = desiredState([web], { nodePortAddresses: ['127.0.0.1/32', '192.168.0.0/16'] });
    const keys = compile(state, { localAddresses: ['127.0.0.1', '192.168.1.5', '10.0.0.9'] }).listeners.map((l) => l.key);
    assert.deepEqual(keys, ['TCP 10.96.0.10:80', 'TCP 127.0.0.1:30080', 'TCP 192.168.1.5:30080']);
  });

  test('without local addresses, NodePorts use the Node object addresses (plan and trace stay pure)', () => {
    const keys = compile(desiredState([web], { nodeIPs: ['192.168.100.2'] })).listeners.map((l) => l.key);
    assert.deepEqual(keys, ['TCP 10.96.0.10:80', 'TCP 192.168.100.2:30080']);
  });

  test('externalTrafficPolicy Local: external clients of external frontends get local endpoints only', () => {
    const state = desiredState([{ ...web, externalPolicyLocal: true, externalIPs: ['203.0.113.7'] }], { nodeIPs: ['192.168.100.2'] });
    const table = compile(state);
    const byKey = new Map(table.listeners.map((l) => [l.key, l.route]));
    assert.deepEqual(byKey.get('TCP 203.0.113.7:80')?.external.map((e) => e.id), ['10.244.1.2:8080']);
    assert.deepEqual(byKey.get('TCP 203.0.113.7:80')?.internal.map((e) => e.id), ['10.244.1.2:8080', '10.244.2.2:8080']);
    assert.equal(byKey.get('TCP 10.96.0.10:80')?.external.length, 2);
  });

  test('SCTP is reported unsupported; a second service on the same listener is a conflict', () => {
    const state = desiredState([
      web,
      { name: 'sctp', protocol: 'SCTP', clusterIP: '10.96.0.11', port: 9, endpoints: [['10.244.1.3', 9]] },
      { name: 'zz-other', clusterIP: '10.96.0.12', port: 80, externalIPs: ['10.96.0.10'], endpoints: [] },
    ]);
    const table = compile(state);
    assert.deepEqual(table.unsupported, ['default/sctp:/SCTP']);
    assert.deepEqual(table.conflicts, [{ key: 'TCP 10.96.0.10:80', kept: 'default/web:', dropped: 'default/zz-other:' }]);
  });

  test('IPv6 listeners are keyed with brackets', () => {
    const table = compile(desiredState([{ name: 'v6', clusterIP: 'fd00::a', port: 53, protocol: 'UDP', endpoints: [['fd01::2', 5353]] }]));
    assert.deepEqual(table.listeners.map((l) => [l.key, l.route.internal[0]?.id]), [['UDP [fd00::a]:53', '[fd01::2]:5353']]);
  });

  test('interface addresses: service IPs that are not loopback, not local, and no NodePort address', () => {
    const state = desiredState([web, { name: 'demo', clusterIP: '127.0.10.1', port: 8080, endpoints: [] }], {
      nodeIPs: ['192.168.100.2'],
    });
    assert.deepEqual(interfaceAddresses(compile(state), new Set(['192.168.100.2'])), ['10.96.0.10']);
  });
});

describe('userspace render', () => {
  test('prints the listener table with endpoints, refusals and options', () => {
    const state = desiredState([
      { ...web, affinitySeconds: 30 },
      { name: 'empty', clusterIP: '10.96.0.20', port: 443, endpoints: [] },
    ], { nodeIPs: ['192.168.100.2'] });
    const text = mode.render(mode.compile(state));
    const lines = text.trimEnd().split('\n');
    assert.match(lines[0] ?? '', /^LISTENER\s+FRONTEND\s+SERVICE\s+ENDPOINTS/);
    assert.match(text, /TCP 10\.96\.0\.10:80\s+ClusterIP\s+default\/web:\s+10\.244\.1\.2:8080,10\.244\.2\.2:8080\s+\(same\)\s+affinity=ClientIP\/30s/);
    assert.match(text, /TCP 10\.96\.0\.20:443\s+ClusterIP\s+default\/empty:\s+- \(reject\)/);
    assert.match(text, /TCP 192\.168\.100\.2:30080\s+NodePort/);
    assert.match(text, /# 3 listeners/);
  });
});
