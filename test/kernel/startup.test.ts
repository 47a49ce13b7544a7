// The start-up settings on a real kernel, inside a network namespace of the test's own: `kproxy --init-only`
// (iptables mode, so the conntrack settings apply) sets the per-namespace conntrack sysctls there, warns once
// about the machine-wide knobs it may not raise from a namespace (nf_conntrack_max and the hash table: the
// kernel makes them read-only outside the host's namespace), exits 0, and the root namespace is left exactly as
// it was. What the arithmetic would set on a host is table-tested in test/unit/startup.test.ts.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { addNamespace, deleteNamespace, nsRun, uniquePrefix } from '../harness/netns.ts';
import { KPROXY_BIN, KPROXY_NODE_FLAGS } from '../harness/kproxy.ts';
import { kernelSuite, requireKernelTools } from './preflight.ts';

const NETFILTER = '/proc/sys/net/netfilter';
const HASHSIZE = '/sys/module/nf_conntrack/parameters/hashsize';
const PER_NAMESPACE = ['nf_conntrack_tcp_timeout_established', 'nf_conntrack_tcp_timeout_close_wait', 'nf_conntrack_tcp_be_liberal', 'nf_conntrack_udp_timeout', 'nf_conntrack_udp_timeout_stream'];
const MACHINE_WIDE = ['nf_conntrack_max', 'nf_conntrack_buckets'];

/** Every conntrack knob the root namespace has, as text (the test's own process lives there). */
function rootKnobs(): Record<string, string> {
  const read = (path: string): string => readFileSync(path, 'utf8').trim();
  return {
    ...Object.fromEntries([...PER_NAMESPACE, ...MACHINE_WIDE].map((knob) => [knob, read(`${NETFILTER}/${knob}`)])),
    hashsize: read(HASHSIZE),
  };
}

describe('start-up settings on a real kernel (in a namespace)', kernelSuite, () => {
  let ns = '';
  let before_: Record<string, string> = {};

  before(async () => {
    requireKernelTools(['conntrack']);
    ns = `${uniquePrefix()}-startup`;
    await addNamespace(ns);
    // Make sure conntrack's module is loaded (its knobs exist) before reading the root's values.
    await nsRun(ns, 'conntrack', ['-L'], { allowFailure: true });
    before_ = rootKnobs();
  });
  after(async () => {
    if (ns !== '') await deleteNamespace(ns);
  });

  const inNs = async (knob: string): Promise<string> => (await nsRun(ns, 'cat', [`${NETFILTER}/${knob}`])).stdout.trim();

  test('the kernel refuses machine-wide conntrack writes from a namespace (what the rest relies on)', async () => {
    // Writing the value the knob already has changes nothing even where it is accepted.
    const hashsize = await nsRun(ns, 'sh', ['-c', `cat ${HASHSIZE} > ${HASHSIZE}`], { allowFailure: true });
    assert.notEqual(hashsize.code, 0, 'this kernel lets a namespace write the hash table size; the test will not raise it');
    const max = await nsRun(ns, 'sh', ['-c', `cat ${NETFILTER}/nf_conntrack_max > ${NETFILTER}/nf_conntrack_max`], { allowFailure: true });
    assert.notEqual(max.code, 0, 'nf_conntrack_max is writable from a namespace on this kernel');
  });

  test('--init-only sets the per-namespace knobs, warns once about the machine-wide ones, exits 0, root untouched', async () => {
    // 600000 per core is far above the host's table, so kproxy wants to raise nf_conntrack_max and the hash table.
    const result = await nsRun(ns, process.execPath, [...KPROXY_NODE_FLAGS, KPROXY_BIN, '--init-only', '--proxy-mode=iptables',
      '--conntrack-max-per-core=600000', '--conntrack-tcp-timeout-established=2h', '--conntrack-tcp-timeout-close-wait=30m',
      '--conntrack-tcp-be-liberal', '--conntrack-udp-timeout=45s', '--conntrack-udp-timeout-stream=150s', '--log-format=json'],
    { allowFailure: true, timeoutMs: 20_000 });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(await Promise.all(PER_NAMESPACE.map(inNs)), ['7200', '1800', '1', '45', '150']);
    const lines = result.stderr.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { level: number; msg: string });
    const warnings = lines.filter((l) => l.level === 40);
    assert.equal(warnings.length, 1, result.stderr);
    assert.match(warnings[0]?.msg ?? '', /^Could not set conntrack nf_conntrack_max=\d+ \(now \d+: EACCES, machine-wide: set it on the host\), hashsize=\d+ \(now \d+: \w+, machine-wide: set it on the host\); the kernel's values stay$/);
    assert.ok(lines.some((l) => /^Set conntrack nf_conntrack_tcp_timeout_established=7200, /.test(l.msg)), result.stderr);
    assert.deepEqual(rootKnobs(), before_, 'the root namespace is unchanged');
  });

  test('kube-proxy\'s defaults: the established and close-wait timeouts set; a host table already as large is left alone', async () => {
    // kube-proxy's default nf_conntrack_max for this machine; a host with a smaller table gets the one warning.
    const wanted = Math.max(32768 * cpus().length, 131072);
    const warns = wanted > Number(before_.nf_conntrack_max);
    // A fresh namespace starts from the kernel's defaults again.
    const fresh = `${uniquePrefix()}-defaults`;
    await addNamespace(fresh);
    try {
      const result = await nsRun(fresh, process.execPath, [...KPROXY_NODE_FLAGS, KPROXY_BIN, '--init-only', '--proxy-mode=iptables', '--log-format=json'],
        { allowFailure: true, timeoutMs: 20_000 });
      assert.equal(result.code, 0, result.stderr);
      assert.equal((result.stderr.match(/"level":40/g) ?? []).length, warns ? 1 : 0, result.stderr);
      const read = async (knob: string): Promise<string> => (await nsRun(fresh, 'cat', [`${NETFILTER}/${knob}`])).stdout.trim();
      assert.deepEqual([await read('nf_conntrack_tcp_timeout_established'), await read('nf_conntrack_tcp_timeout_close_wait')], ['86400', '3600']);
      assert.deepEqual(rootKnobs(), before_, 'the root namespace is unchanged');
    } finally {
      await deleteNamespace(fresh);
    }
  });

  test('userspace mode leaves conntrack alone', async () => {
    const fresh = `${uniquePrefix()}-userspace`;
    await addNamespace(fresh);
    try {
      const established = async (): Promise<string> => (await nsRun(fresh, 'cat', [`${NETFILTER}/nf_conntrack_tcp_timeout_established`])).stdout.trim();
      const was = await established();
      const result = await nsRun(fresh, process.execPath, [...KPROXY_NODE_FLAGS, KPROXY_BIN, '--init-only', '--proxy-mode=userspace',
        '--conntrack-tcp-timeout-established=1h'], { allowFailure: true, timeoutMs: 20_000 });
      assert.equal(result.code, 0, result.stderr);
      assert.equal(await established(), was);
    } finally {
      await deleteNamespace(fresh);
    }
  });
});
