// The takeover's removal of kube-proxy's leftovers (kit/takeover) on a real kernel, in a namespace of its own, for
// what test/kube/takeover.test.ts cannot make the built kube-proxy leave here: the leftovers of its ipvs mode (this
// kernel has no IPVS: its iptables chains with their ipset matches, its ipsets, kube-ipvs0 — a bridge stands in
// for the dummy interface), its mangle canary, its iptables chains in the nft variant and in IPv6, and a kube-proxy
// nftables table. Everything that is not kube-proxy's — kubelet's chains, a chain of the node's own named KUBE-…, an
// admin's ipset, another nftables table, other interfaces — must be there afterwards, untouched.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { runCommand, type CommandRunner } from '../../kit/exec.ts';
import { takeOverFromKubeProxy } from '../../kit/takeover/index.ts';
import { silentLogger } from '../../src/log.ts';
import { desiredState } from '../harness/state.ts';
import '../harness/xtables-lock.ts';
import { kernelSuite, requireKernelTools } from './preflight.ts';

const NS = `kpto${process.pid}`;
const inNs = (cmd: string, args: readonly string[], input?: string): string =>
  execFileSync('ip', ['netns', 'exec', NS, cmd, ...args], { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
const run: CommandRunner = (cmd, args, input, options) => runCommand('ip', ['netns', 'exec', NS, cmd, ...args], input, options);

/** kube-proxy's ipvs mode (its chains, jumps, ipset matches) and kubelet's chains, as iptables-restore input. */
function ipvsModeLeftovers(v6: boolean): string {
  const set = v6 ? 'KUBE-6-CLUSTER-IP' : 'KUBE-CLUSTER-IP';
  return [
    '*nat',
    ':KUBE-SERVICES - [0:0]', ':KUBE-POSTROUTING - [0:0]', ':KUBE-NODE-PORT - [0:0]', ':KUBE-LOAD-BALANCER - [0:0]',
    ':KUBE-MARK-MASQ - [0:0]', ':KUBE-NODE-LOCAL - [0:0]',
    '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
    '-A OUTPUT -j KUBE-NODE-LOCAL',
    `-A KUBE-SERVICES -m set --match-set ${set} dst,dst -j ACCEPT`,
    '-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT',
    '-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000',
    'COMMIT',
    '*filter',
    ':KUBE-FORWARD - [0:0]', ':KUBE-NODE-PORT - [0:0]', ':KUBE-PROXY-FIREWALL - [0:0]', ':KUBE-SOURCE-RANGES-FIREWALL - [0:0]',
    ':KUBE-IPVS-FILTER - [0:0]', ':KUBE-IPVS-OUT-FILTER - [0:0]', ':KUBE-FIREWALL - [0:0]', ':KUBE-KUBELET-CANARY - [0:0]',
    '-A INPUT -j KUBE-FIREWALL',
    '-A INPUT -m comment --comment "kubernetes ipvs access filter" -j KUBE-IPVS-FILTER',
    '-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD',
    '-A OUTPUT -m comment --comment "kubernetes ipvs access filter" -j KUBE-IPVS-OUT-FILTER',
    '-A KUBE-FIREWALL -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP',
    'COMMIT',
    '*mangle',
    ':KUBE-PROXY-CANARY - [0:0]', ':KUBE-KUBELET-CANARY - [0:0]',
    'COMMIT',
    '',
  ].join('\n');
}

describe('taking over: kube-proxy\'s leftovers go, nothing else', kernelSuite, () => {
  before(() => {
    requireKernelTools(['iptables-legacy-restore', 'iptables-nft-restore', 'ip6tables-legacy-restore', 'ipset', 'nft']);
    execFileSync('ip', ['netns', 'add', NS]);
    for (const [set, family] of [['KUBE-CLUSTER-IP', 'inet'], ['KUBE-6-CLUSTER-IP', 'inet6'], ['KUBE-IPVS-IPS', 'inet'], ['ADMIN-BLOCKLIST', 'inet']] as const) {
      inNs('ipset', ['create', set, set.includes('CLUSTER') ? 'hash:ip,port' : 'hash:ip', 'family', family]);
    }
    inNs('iptables-legacy-restore', ['--noflush', '-w'], ipvsModeLeftovers(false));
    inNs('ip6tables-legacy-restore', ['--noflush', '-w'], ipvsModeLeftovers(true));
    // kube-proxy's iptables mode through the nft variant: a service chain and the jump to it.
    inNs('iptables-nft-restore', ['--noflush', '-w'], '*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-ABCDEFGHIJKLMNOP - [0:0]\n'
      + '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES\n-A KUBE-SERVICES -d 10.96.0.1/32 -j KUBE-SVC-ABCDEFGHIJKLMNOP\nCOMMIT\n');
    inNs('nft', ['add table ip kube-proxy']);
    inNs('nft', ['add chain ip kube-proxy services']);
    inNs('nft', ['add table inet admin-firewall']);
    // kube-ipvs0 (a bridge stands in for the dummy interface this kernel lacks), with service addresses; another link.
    inNs('ip', ['link', 'add', 'kube-ipvs0', 'type', 'bridge']);
    inNs('ip', ['addr', 'add', '10.96.0.1/32', 'dev', 'kube-ipvs0']);
    inNs('ip', ['link', 'add', 'br-admin', 'type', 'bridge']);
  });

  after(() => {
    try { execFileSync('ip', ['netns', 'del', NS], { stdio: 'ignore' }); } catch { /* already gone */ }
  });

  test('removes each of them, reports each, and leaves the rest', async () => {
    const report = await takeOverFromKubeProxy({ run, log: silentLogger(), state: desiredState([]) });
    assert.deepEqual(report.failed, []);
    const removed = report.removed.join('\n');
    for (const what of ['iptables-legacy: 11 chains and 6 jumps', 'ip6tables-legacy: 11 chains and 6 jumps', 'iptables-nft: 2 chains and 1 jumps', 'mangle chain KUBE-PROXY-CANARY',
      'nftables table ip kube-proxy', 'interface kube-ipvs0', 'ipsets KUBE-CLUSTER-IP, KUBE-6-CLUSTER-IP, KUBE-IPVS-IPS']) {
      assert.ok(removed.includes(what), `${what} in:\n${removed}`);
    }
    for (const tool of ['iptables-legacy-save', 'ip6tables-legacy-save']) {
      const saved = inNs(tool, []);
      const kube = saved.split('\n').filter((l) => /^:KUBE-/.test(l)).map((l) => l.split(' ')[0]).sort();
      assert.deepEqual(kube, [':KUBE-FIREWALL', ':KUBE-KUBELET-CANARY', ':KUBE-KUBELET-CANARY', ':KUBE-NODE-LOCAL'], `${tool}: kubelet's and the node's own chains stay`);
      assert.match(saved, /^-A INPUT -j KUBE-FIREWALL$/m);
      assert.match(saved, /^-A OUTPUT -j KUBE-NODE-LOCAL$/m);
      assert.doesNotMatch(saved, /kubernetes (service portals|postrouting|forwarding|ipvs)/);
    }
    assert.doesNotMatch(inNs('iptables-nft-save', []), /KUBE-/);
    assert.deepEqual(inNs('ipset', ['list', '-n']).trim().split('\n'), ['ADMIN-BLOCKLIST']);
    const tables = inNs('nft', ['list', 'tables']).trim().split('\n');
    assert.ok(tables.includes('table inet admin-firewall') && !tables.some((t) => t.endsWith(' kube-proxy')), tables.join(', '));
    assert.match(inNs('ip', ['-o', 'link', 'show']), /br-admin/);
    assert.doesNotMatch(inNs('ip', ['-o', 'link', 'show']), /kube-ipvs0/);
    // Nothing left: a second takeover finds nothing to do.
    assert.deepEqual(await takeOverFromKubeProxy({ run, log: silentLogger(), state: desiredState([]) }), { removed: [], failed: [] });
  });
});
