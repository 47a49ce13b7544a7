// What a takeover counts as kube-proxy's (kit/takeover/kube-proxy.ts), and its IPVS step against scripted tools (this
// kernel has no IPVS; the iptables, nftables, ipset and interface steps run on a real kernel in
// test/kernel/takeover.test.ts and, after the built kube-proxy, in test/kube/takeover.test.ts).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { CommandResult, CommandRunner } from '../../kit/exec.ts';
import { takeOverFromKubeProxy } from '../../kit/takeover/index.ts';
import {
  isKubeProxyChain, isKubeProxyIpvsService, KUBE_PROXY_IPSETS, kubeProxyNftFamilies, parseAddresses, parseIpvsServices,
} from '../../kit/takeover/kube-proxy.ts';
import { silentLogger } from '../../src/log.ts';
import { desiredState, servicePort } from '../harness/state.ts';

describe('kube-proxy\'s, by name', () => {
  const cases: ReadonlyArray<[string, boolean]> = [
    ['KUBE-SERVICES', true], ['KUBE-SVC-ABCDEFGHIJKLMNOP', true], ['KUBE-SEP-ABCDEFGHIJKLMNOP', true], ['KUBE-FW-ABCDEFGHIJKLMNOP', true],
    ['KUBE-PROXY-CANARY', true], ['KUBE-LOAD-BALANCER', true], ['KUBE-IPVS-OUT-FILTER', true], ['KUBE-MARK-MASQ', true],
    // kubelet's, and anything else
    ['KUBE-FIREWALL', false], ['KUBE-KUBELET-CANARY', false], ['KUBE-MARK-DROP', false], ['KUBE-IPTABLES-HINT', false],
    ['KUBE-NODE-LOCAL', false], ['KPROXY-SERVICES', false], ['CILIUM_INPUT', false],
  ];
  for (const [chain, kubeProxys] of cases) test(`${chain}: ${kubeProxys ? 'kube-proxy\'s' : 'not kube-proxy\'s'}`, () => assert.equal(isKubeProxyChain(chain), kubeProxys));

  test('ipsets: the ipvs mode\'s, and their IPv6 names (KUBE-6-, cut at 31 characters)', () => {
    for (const name of ['KUBE-CLUSTER-IP', 'KUBE-6-CLUSTER-IP', 'KUBE-6-LOAD-BALANCER-SOURCE-CID', 'KUBE-IPVS-IPS']) assert.ok(KUBE_PROXY_IPSETS.has(name), name);
    for (const name of ['KUBE-6-LOAD-BALANCER-SOURCE-CIDR', 'cali40all-ipam-pools', 'KUBE-OTHER']) assert.ok(!KUBE_PROXY_IPSETS.has(name), name);
  });

  test('nftables: the kube-proxy table of each family', () => {
    assert.deepEqual(kubeProxyNftFamilies('table ip filter\ntable ip kube-proxy\ntable ip6 kube-proxy\ntable inet kube-proxy-other\n'), ['ip', 'ip6']);
  });
});

describe('IPVS', () => {
  const listing = [
    '-A -t 10.96.0.1:443 -s rr', '-a -t 10.96.0.1:443 -r 192.168.1.10:6443 -m -w 1',
    '-A -u [fd00:96::a]:53 -s rr', '-A -t 192.168.1.5:30080 -s rr', '-A -t 192.168.1.5:8080 -s rr',
    '-A -t 172.16.0.9:30080 -s rr', '-A -f 100 -s rr', '-A --sctp-service 10.96.0.9:5000 -s rr',
  ].join('\n');

  test('the listing\'s virtual services', () => {
    assert.deepEqual(parseIpvsServices(listing).map((s) => [s.kind, s.address ?? s.key, s.port, s.protocol]), [
      ['-t', '10.96.0.1', 443, 'TCP'], ['-u', 'fd00:96::a', 53, 'UDP'], ['-t', '192.168.1.5', 30080, 'TCP'], ['-t', '192.168.1.5', 8080, 'TCP'],
      ['-t', '172.16.0.9', 30080, 'TCP'], ['-f', '100', undefined, undefined], ['--sctp-service', '10.96.0.9', 5000, 'SCTP'],
    ]);
    assert.deepEqual(parseAddresses('5: kube-ipvs0    inet 10.96.0.1/32 scope global kube-ipvs0\n5: kube-ipvs0    inet6 fd00:96:0::a/128 scope global\n'), ['10.96.0.1', 'fd00:96::a']);
  });

  test('kube-proxy\'s: on kube-ipvs0, or a NodePort on a node address; never a firewall mark or an admin\'s VIP', () => {
    const owned = { interfaceAddresses: ['10.96.0.1', 'fd00:96::a', '10.96.0.9'], nodeAddresses: ['192.168.1.5'], nodePorts: new Map([['TCP' as const, new Set([30080])]]) };
    assert.deepEqual(parseIpvsServices(listing).filter((s) => isKubeProxyIpvsService(s, owned)).map((s) => s.key),
      ['10.96.0.1:443', '[fd00:96::a]:53', '192.168.1.5:30080', '10.96.0.9:5000']);
  });

  test('the takeover deletes kube-proxy\'s services (but those the mode keeps), then kube-ipvs0', async () => {
    const calls: string[] = [];
    const answers: Record<string, CommandResult> = {
      'ip -o link show dev kube-ipvs0': { code: 0, stdout: '5: kube-ipvs0: <BROADCAST,NOARP> mtu 1500\n', stderr: '' },
      'ipvsadm -S -n': { code: 0, stdout: listing, stderr: '' },
      'ip -o addr show dev kube-ipvs0': { code: 0, stdout: '5: kube-ipvs0 inet 10.96.0.1/32 scope global kube-ipvs0\n5: kube-ipvs0 inet6 fd00:96::a/128 scope global\n', stderr: '' },
      'ip -o addr show': { code: 0, stdout: '2: eth0 inet 192.168.1.5/24 brd 192.168.1.255 scope global eth0\n', stderr: '' },
    };
    const run: CommandRunner = async (cmd, args) => {
      const line = [cmd, ...args].join(' ');
      calls.push(line);
      // Only IPVS is there: every other tool reports nothing to do.
      return answers[line] ?? (cmd === 'ipvsadm' || line === 'ip link del kube-ipvs0' ? { code: 0, stdout: '', stderr: '' } : { code: 127, stdout: '', stderr: `${cmd}: not found` });
    };
    const state = desiredState([servicePort({ name: 'web', clusterIP: '10.96.0.30', port: 80, nodePort: 30080 })]);
    const report = await takeOverFromKubeProxy({ run, log: silentLogger(), state, keepIpvs: (s) => s.key === '[fd00:96::a]:53' });
    assert.deepEqual(calls.filter((c) => c.startsWith('ipvsadm -D') || c.startsWith('ip link del')), [
      'ipvsadm -D -t 10.96.0.1:443', 'ipvsadm -D -t 192.168.1.5:30080', 'ip link del kube-ipvs0',
    ]);
    assert.deepEqual(report.removed, ['IPVS service TCP 10.96.0.1:443', 'IPVS service TCP 192.168.1.5:30080', 'interface kube-ipvs0']);
    assert.deepEqual(report.failed, []);
  });

  test('without kube-ipvs0 nothing of IPVS is looked at or touched', async () => {
    const calls: string[] = [];
    const run: CommandRunner = async (cmd, args) => {
      calls.push([cmd, ...args].join(' '));
      return { code: 1, stdout: '', stderr: 'Device "kube-ipvs0" does not exist.' };
    };
    await takeOverFromKubeProxy({ run, log: silentLogger(), state: desiredState([]) });
    assert.ok(!calls.some((c) => c.startsWith('ipvsadm')), calls.join('\n'));
  });
});
