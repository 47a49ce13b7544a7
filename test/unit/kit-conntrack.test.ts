import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { conntrackDeleteArgs, reconcileUdpEntries, staleUdpDeletions } from '../../kit/conntrack.ts';
import { desiredState, endpoint, servicePort } from '../harness/state.ts';
import { stateOf, testOptions } from '../fixtures/compute-helpers.ts';
import { endpoint as rawEndpoint, node, service, slice } from '../fixtures/objects.ts';

const dns = (endpoints: ReturnType<typeof endpoint>[], extra = {}) =>
  servicePort({ name: 'dns', clusterIP: '10.96.0.10', port: 53, protocol: 'UDP', clusterEndpoints: endpoints, ...extra });
const a = endpoint('10.244.1.2', 5353);
const b = endpoint('10.244.1.3', 5353);

describe('staleUdpDeletions', () => {
  test('an endpoint that goes away: delete flows answered by it, on every frontend', () => {
    const before = desiredState([dns([a, b], { nodePort: 30053, frontends: [
      { kind: 'ClusterIP', ip: '10.96.0.10', port: 53 }, { kind: 'NodePort', port: 30053 }, { kind: 'ExternalIP', ip: '198.18.0.1', port: 53 }] })]);
    const after = desiredState([dns([a], { nodePort: 30053, frontends: before.families.IPv4.services[0]!.frontends })]);
    assert.deepEqual(staleUdpDeletions(before, after), [
      { family: 'IPv4', port: 30053, kind: 'endpoint-gone', endpoint: '10.244.1.3' },
      { family: 'IPv4', destination: '10.96.0.10', port: 53, kind: 'endpoint-gone', endpoint: '10.244.1.3' },
      { family: 'IPv4', destination: '198.18.0.1', port: 53, kind: 'endpoint-gone', endpoint: '10.244.1.3' },
    ]);
  });

  test('first endpoint: delete only untranslated flows of the frontends', () => {
    const deletions = staleUdpDeletions(desiredState([dns([])]), desiredState([dns([a])]));
    assert.deepEqual(deletions, [{ family: 'IPv4', destination: '10.96.0.10', port: 53, kind: 'not-translated' }]);
    assert.deepEqual(conntrackDeleteArgs(deletions[0]!),
      ['-D', '-f', 'ipv4', '-p', 'udp', '--orig-dst', '10.96.0.10', '--orig-port-dst', '53', '--reply-src', '10.96.0.10', '--reply-port-src', '53']);
  });

  test('first sync after start counts services with endpoints as newly served', () => {
    assert.deepEqual(staleUdpDeletions(undefined, desiredState([dns([a])])).map((d) => d.kind), ['not-translated']);
  });

  test('a deleted service: every endpoint it had is stale', () => {
    const deletions = staleUdpDeletions(desiredState([dns([a, b])]), desiredState([]));
    assert.deepEqual(deletions.map((d) => d.endpoint), ['10.244.1.2', '10.244.1.3']);
    assert.deepEqual(conntrackDeleteArgs(deletions[0]!),
      ['-D', '-f', 'ipv4', '-p', 'udp', '--orig-dst', '10.96.0.10', '--orig-port-dst', '53', '--reply-src', '10.244.1.2']);
  });

  test('no change, TCP services and endpoint reorders give nothing', () => {
    assert.deepEqual(staleUdpDeletions(desiredState([dns([a, b])]), desiredState([dns([b, a])])), []);
    const tcp = (e: ReturnType<typeof endpoint>[]) => servicePort({ name: 'web', clusterIP: '10.96.0.11', port: 80, clusterEndpoints: e });
    assert.deepEqual(staleUdpDeletions(desiredState([tcp([a, b])]), desiredState([tcp([a])])), []);
  });

  test('a target port change makes the old endpoint address stale', () => {
    const moved = endpoint('10.244.1.2', 5454);
    assert.deepEqual(staleUdpDeletions(desiredState([dns([a])]), desiredState([dns([moved])])).map((d) => [d.kind, d.endpoint]),
      [['endpoint-gone', '10.244.1.2']]);
  });

  test('IPv6 services get ipv6 deletions', () => {
    const v6 = (e: ReturnType<typeof endpoint>[]) => servicePort({ name: 'dns6', clusterIP: 'fd00:96::a', port: 53, protocol: 'UDP', clusterEndpoints: e });
    const deletions = staleUdpDeletions(desiredState([v6([endpoint('fd00:244:1::2', 53)])]), desiredState([v6([])]));
    assert.deepEqual(conntrackDeleteArgs(deletions[0]!),
      ['-D', '-f', 'ipv6', '-p', 'udp', '--orig-dst', 'fd00:96::a', '--orig-port-dst', '53', '--reply-src', 'fd00:244:1::2']);
  });
});

describe('conntrack listing', () => {
  const listing = [
    'udp      17 29 src=10.244.1.200 dst=10.96.0.20 sport=40000 dport=53 src=10.244.1.2 dst=10.244.1.200 sport=8080 dport=40000 mark=0 use=1',
    'udp      17 25 src=192.168.100.1 dst=192.168.100.2 sport=40001 dport=30053 [UNREPLIED] src=192.168.100.2 dst=192.168.100.1 sport=30053 dport=40001 mark=0 use=1',
    'conntrack v1.4.7 (conntrack-tools): 2 flow entries have been shown.',
  ].join('\n');

  test('parses both directions', async () => {
    const { parseConntrackList } = await import('../../kit/conntrack.ts');
    assert.deepEqual(parseConntrackList(listing), [
      { origDst: '10.96.0.20', origDport: 53, replySrc: '10.244.1.2', replySport: 8080 },
      { origDst: '192.168.100.2', origDport: 30053, replySrc: '192.168.100.2', replySport: 30053 },
    ]);
  });

  test('keeps only deletions that match a listed entry', async () => {
    const { parseConntrackList, deletionsWithEntries } = await import('../../kit/conntrack.ts');
    const entries = parseConntrackList(listing);
    const gone = { family: 'IPv4', destination: '10.96.0.20', port: 53, kind: 'endpoint-gone', endpoint: '10.244.1.2' } as const;
    const otherEndpoint = { ...gone, endpoint: '10.244.1.3' } as const;
    const untranslatedVip = { family: 'IPv4', destination: '10.96.0.20', port: 53, kind: 'not-translated' } as const;
    const untranslatedNodePort = { family: 'IPv4', port: 30053, kind: 'not-translated' } as const;
    assert.deepEqual(deletionsWithEntries([gone, otherEndpoint, untranslatedVip, untranslatedNodePort], entries), [gone, untranslatedNodePort]);
  });
});

describe('reconcileUdpEntries (first sync after start, full syncs)', () => {
  const client = { origSrc: '10.244.1.200' };
  const entry = (origDst: string, origDport: number, replySrc: string, replySport: number) => ({ origDst, origDport, replySrc, replySport, ...client });
  const served = desiredState([
    dns([a], { nodePort: 30053, frontends: [
      { kind: 'ClusterIP', ip: '10.96.0.10', port: 53 }, { kind: 'NodePort', port: 30053 }, { kind: 'LoadBalancer', ip: '192.168.200.1', port: 53 }] }),
    servicePort({ name: 'web', clusterIP: '10.96.0.11', port: 80, clusterEndpoints: [b] }),
    dns([], { name: 'idle', clusterIP: '10.96.0.12' }),
  ]);
  const gone = (destination: string, port: number, endpoint: string, endpointPort: number) =>
    ({ family: 'IPv4', destination, port, kind: 'endpoint-gone', endpoint, endpointPort });
  const cases: { name: string; entries: ReturnType<typeof entry>[]; want: ReturnType<typeof gone>[] }[] = [
    { name: 'DNATed to a current endpoint: kept', entries: [entry('10.96.0.10', 53, '10.244.1.2', 5353)], want: [] },
    { name: 'ClusterIP DNATed to a removed endpoint', entries: [entry('10.96.0.10', 53, '10.244.1.3', 5353)], want: [gone('10.96.0.10', 53, '10.244.1.3', 5353)] },
    { name: 'current endpoint address, old target port', entries: [entry('10.96.0.10', 53, '10.244.1.2', 5454)], want: [gone('10.96.0.10', 53, '10.244.1.2', 5454)] },
    { name: 'LoadBalancer IP DNATed to a removed endpoint', entries: [entry('192.168.200.1', 53, '10.244.1.3', 5353)], want: [gone('192.168.200.1', 53, '10.244.1.3', 5353)] },
    { name: 'NodePort on any node address', entries: [entry('192.168.100.2', 30053, '10.244.1.3', 5353), entry('192.168.100.2', 30053, '10.244.1.2', 5353)],
      want: [gone('192.168.100.2', 30053, '10.244.1.3', 5353)] },
    { name: 'a service that lost all its endpoints', entries: [entry('10.96.0.12', 53, '10.244.1.2', 5353)], want: [gone('10.96.0.12', 53, '10.244.1.2', 5353)] },
    { name: 'untranslated entries are left to the incremental cleanup', entries: [entry('10.96.0.10', 53, '10.96.0.10', 53), entry('10.96.0.12', 53, '10.96.0.12', 53)], want: [] },
    { name: 'not a UDP service frontend: TCP service IP, other port, unknown address', entries: [
      entry('10.96.0.11', 80, '10.244.1.9', 80), entry('10.96.0.10', 54, '10.244.1.9', 54), entry('8.8.8.8', 53, '10.244.1.9', 53)], want: [] },
    { name: 'many clients of one stale target: one deletion', entries: [
      entry('10.96.0.10', 53, '10.244.1.3', 5353), { ...entry('10.96.0.10', 53, '10.244.1.3', 5353), origSrc: '10.244.1.201' }],
      want: [gone('10.96.0.10', 53, '10.244.1.3', 5353)] },
  ];
  for (const { name, entries, want } of cases) {
    test(name, () => assert.deepEqual(reconcileUdpEntries({ family: 'IPv4', entries, state: served }), want));
  }

  test('IPv6 addresses compare in canonical form; deletion arguments name the exact stale target', () => {
    const v6 = desiredState([servicePort({ name: 'dns6', clusterIP: 'fd00:96::a', port: 53, protocol: 'UDP', clusterEndpoints: [endpoint('fd00:244:1::2', 53)] })]);
    const entries = [entry('fd00:96:0::a', 53, 'fd00:244:1::2', 53), entry('fd00:96::a', 53, 'fd00:244:1:0::3', 53)];
    const deletions = reconcileUdpEntries({ family: 'IPv6', entries, state: v6 });
    assert.deepEqual(deletions.map(conntrackDeleteArgs), [
      ['-D', '-f', 'ipv6', '-p', 'udp', '--orig-dst', 'fd00:96::a', '--orig-port-dst', '53', '--reply-src', 'fd00:244:1::3', '--reply-port-src', '53'],
    ]);
    assert.deepEqual(reconcileUdpEntries({ family: 'IPv4', entries, state: v6 }), [], 'the other family has no services');
  });
});

describe('stale UDP entries follow the routes compute decided (through the real compute)', () => {
  // A UDP NodePort service, one endpoint on this node and two elsewhere; then the endpoint on node-c goes away.
  const udpNodePort = (internalTrafficPolicy: 'Cluster' | 'Local', endpoints: unknown[]) => stateOf({
    services: [service({ name: 'dns', spec: {
      type: 'NodePort', clusterIP: '10.96.0.10', internalTrafficPolicy,
      ports: [{ port: 53, protocol: 'UDP', targetPort: 5353, nodePort: 30053 }],
    } })],
    slices: [slice({ service: 'dns', ports: [{ port: 5353, protocol: 'UDP' }], endpoints })],
    node: node({ name: 'node-a' }),
  }, testOptions({ nodeName: 'node-a' }));
  const local = rawEndpoint({ ip: '10.244.1.2', node: 'node-a' });
  const remote = rawEndpoint({ ip: '10.244.2.2', node: 'node-b' });
  const leaving = rawEndpoint({ ip: '10.244.3.2', node: 'node-c' });

  for (const policy of ['Cluster', 'Local'] as const) {
    test(`internalTrafficPolicy ${policy}: a remote endpoint removed on a partial sync loses its pinned clients`, () => {
      const before = udpNodePort(policy, [local, remote, leaving]);
      const after = udpNodePort(policy, [local, remote]);
      const gone = staleUdpDeletions(before, after).filter((d) => d.kind === 'endpoint-gone');
      // Outside clients of the NodePort reach every endpoint whatever ITP says: their flows to node-c must go.
      assert.deepEqual(gone.map((d) => [d.destination ?? '*', d.port, d.endpoint]), [
        ['*', 30053, '10.244.3.2'], ['10.96.0.10', 53, '10.244.3.2'],
      ]);
    });
  }
});
