import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mode } from '../../modes/userspace/index.ts';
import type { Packet } from '../../src/model/trace.ts';
import { desiredState } from '../userspace/helpers.ts';

const state = desiredState(
  [
    { name: 'web', clusterIP: '10.96.0.10', port: 80, nodePort: 30080, externalIPs: ['203.0.113.7'],
      endpoints: [['10.244.1.2', 8080, true], ['10.244.2.2', 8080]] },
    { name: 'local', clusterIP: '10.96.0.11', port: 80, nodePort: 30081, externalPolicyLocal: true,
      endpoints: [['10.244.1.3', 8080, true], ['10.244.2.3', 8080]] },
    { name: 'remote-only', clusterIP: '10.96.0.12', port: 80, nodePort: 30082, externalPolicyLocal: true,
      endpoints: [['10.244.2.4', 8080]] },
    { name: 'empty', clusterIP: '10.96.0.13', port: 80, nodePort: 30083, endpoints: [] },
    { name: 'lb', clusterIP: '10.96.0.14', port: 443, loadBalancerIPs: ['198.51.100.9'], sourceRanges: ['203.0.113.0/24'],
      endpoints: [['10.244.2.5', 8443]] },
    { name: 'dns', protocol: 'UDP', clusterIP: '10.96.0.53', port: 53, endpoints: [['10.244.2.6', 53]] },
  ],
  { nodeIPs: ['192.168.100.2'], clusterCidrs: ['10.244.0.0/16'] },
);

const pkt = (p: Partial<Packet> & Pick<Packet, 'dst' | 'port'>): Packet => ({ src: '10.244.1.10', protocol: 'TCP', from: 'pod', ...p });
const reaches = (p: Packet): string[] | string => {
  const v = mode.trace(mode.compile(state), p);
  if (v.kind !== 'forward') return v.kind;
  assert.ok(v.reaches.every((r) => r.masquerade), 'a relay always shows the node as source');
  return v.reaches.map((r) => r.endpoint).sort();
};

describe('userspace trace', () => {
  test('ClusterIP from a pod and from the node reaches every endpoint, masqueraded', () => {
    assert.deepEqual(reaches(pkt({ dst: '10.96.0.10', port: 80 })), ['10.244.1.2:8080', '10.244.2.2:8080']);
    assert.deepEqual(reaches(pkt({ dst: '10.96.0.10', port: 80, from: 'node', src: '192.168.100.2' })), ['10.244.1.2:8080', '10.244.2.2:8080']);
  });

  test('traffic that is not for a listener is untouched', () => {
    assert.equal(reaches(pkt({ dst: '10.96.0.10', port: 81 })), 'untouched');
    assert.equal(reaches(pkt({ dst: '10.96.0.10', port: 80, protocol: 'UDP' })), 'untouched');
    assert.equal(reaches(pkt({ dst: '10.244.1.2', port: 8080 })), 'untouched');
    assert.equal(reaches(pkt({ dst: '127.0.0.1', port: 30080, from: 'node', src: '127.0.0.1' })), 'untouched');
  });

  test('NodePort and external IP from outside', () => {
    const ext = { src: '192.168.100.1', from: 'external' as const };
    assert.deepEqual(reaches(pkt({ ...ext, dst: '192.168.100.2', port: 30080 })), ['10.244.1.2:8080', '10.244.2.2:8080']);
    assert.deepEqual(reaches(pkt({ ...ext, dst: '203.0.113.7', port: 80 })), ['10.244.1.2:8080', '10.244.2.2:8080']);
  });

  test('externalTrafficPolicy Local: outside clients reach local endpoints, pods reach all; none local drops', () => {
    assert.deepEqual(reaches(pkt({ src: '192.168.100.1', from: 'external', dst: '192.168.100.2', port: 30081 })), ['10.244.1.3:8080']);
    assert.deepEqual(reaches(pkt({ dst: '192.168.100.2', port: 30081 })), ['10.244.1.3:8080', '10.244.2.3:8080']);
    assert.equal(reaches(pkt({ src: '192.168.100.1', from: 'external', dst: '192.168.100.2', port: 30082 })), 'drop');
    assert.deepEqual(reaches(pkt({ dst: '192.168.100.2', port: 30082 })), ['10.244.2.4:8080']);
  });

  test('no endpoints rejects on every frontend', () => {
    assert.equal(reaches(pkt({ dst: '10.96.0.13', port: 80 })), 'reject');
    assert.equal(reaches(pkt({ src: '192.168.100.1', from: 'external', dst: '192.168.100.2', port: 30083 })), 'reject');
  });

  test('loadBalancerSourceRanges: allowed sources reach, others are dropped', () => {
    assert.deepEqual(reaches(pkt({ src: '203.0.113.50', from: 'external', dst: '198.51.100.9', port: 443 })), ['10.244.2.5:8443']);
    assert.equal(reaches(pkt({ src: '192.0.2.1', from: 'external', dst: '198.51.100.9', port: 443 })), 'drop');
  });

  test('UDP service', () => {
    assert.deepEqual(reaches(pkt({ dst: '10.96.0.53', port: 53, protocol: 'UDP' })), ['10.244.2.6:53']);
  });
});
