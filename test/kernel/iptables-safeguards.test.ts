// kube-proxy's safeguards in the iptables mode, on a real kernel, as the real agent, for both iptables variants:
// - packets conntrack finds INVALID are dropped in forwarding and counted (kubernetes#74839), unless conntrack is
//   liberal with TCP;
// - the canary: when something else flushes kproxy's tables (an admin's `iptables -t nat -F`, `iptables -F`, a
//   firewall reload that flushes and deletes every chain), kproxy notices within its poll interval (syncPeriod) and
//   rewrites everything; traffic comes back. kproxy's own syncs never look like that.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCluster, NODE_IP, startKproxy, writeManifests, type Cluster, type KproxyProcess, type ServiceSpec } from '../harness/index.ts';
import { VARIANTS } from '../../kit/iptables/variant.ts';
import { eventually, kernelSuite, requireKernelTools } from './preflight.ts';

const TOOLS = ['iptables-legacy', 'iptables-nft', 'ip6tables-legacy', 'ip6tables-nft', 'nft', 'nfacct', 'conntrack'];
const PORT = 8080;
/** The poll interval of the canary (--iptables-sync-period). */
const SYNC_PERIOD_S = 2;
const METRICS = `http://${NODE_IP}:10249/metrics`;
const DRIFT_LOG = /Rules changed by something else/g;

/** A dual-stack service with both pods, and one without endpoints (kproxy REJECTs it in filter). */
const SERVICES = (cluster: Cluster): ServiceSpec[] => [
  { name: 'web', clusterIP: '10.96.0.10', clusterIP6: 'fd00:96::10', ports: [{ port: 80, targetPort: PORT }], endpoints: cluster.pods.map((pod) => ({ pod })) },
  { name: 'empty', clusterIP: '10.96.0.14', ports: [{ port: 80, targetPort: PORT }], endpoints: [] },
];

for (const variant of VARIANTS) {
  describe(`kube-proxy's safeguards in the iptables mode (${variant})`, kernelSuite, () => {
    let cluster: Cluster;
    let dir: string;
    let manifests: string;
    let proxy: KproxyProcess;
    const iptables = (family: 'iptables' | 'ip6tables', args: readonly string[]) => cluster.exec(cluster.nodeNs, `${family}-${variant}`, ['-w', '5', ...args], { allowFailure: true });
    const start = async (extra: readonly string[] = []): Promise<void> => {
      proxy = startKproxy(cluster, {
        mode: 'iptables', manifests, env: { KPROXY_IPTABLES_VARIANT: variant },
        args: ['--iptables-sync-period', `${SYNC_PERIOD_S}s`, '--min-sync-period', '0s', '--metrics-bind-address', `${NODE_IP}:10249`, ...extra],
      });
      await proxy.waitHealthy(15_000);
      // /healthz answers 200 while starting (as kube-proxy's): wait for the first sync in the kernel.
      await eventually(async () => (await iptables('iptables', ['-S'])).stdout.includes('-A KPROXY-CANARY'), 'first sync', 15_000);
    };
    const metric = async (name: string): Promise<number> => {
      const script = 'fetch(process.argv[1]).then(async (r) => process.stdout.write(await r.text()), () => process.exit(1))';
      const text = (await cluster.exec(cluster.nodeNs, process.execPath, ['-e', script, METRICS])).stdout;
      const value = new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1];
      assert.ok(value !== undefined, `${name} in /metrics`);
      return Number(value);
    };
    const drifts = (): number => proxy.output().match(DRIFT_LOG)?.length ?? 0;
    /** One connection to the web service from the client pod: the backend's name, or the error. */
    const webAnswers = async (): Promise<boolean> => {
      const summary = await cluster.tcp(cluster.client.ns, '10.96.0.10', 80, { count: 1, timeoutMs: 500 });
      return Object.keys(summary.errors).length === 0;
    };
    /** A connection to the service without endpoints is refused at once (kproxy's REJECT in filter). */
    const emptyRefused = async (): Promise<boolean> => {
      const summary = await cluster.tcp(cluster.client.ns, '10.96.0.14', 80, { count: 1, timeoutMs: 500 });
      return (summary.errors.ECONNREFUSED ?? 0) === 1;
    };

    before(async () => {
      requireKernelTools(TOOLS);
      cluster = await createCluster({ pods: 2, podPorts: [PORT] });
      dir = mkdtempSync(join(tmpdir(), 'kproxy-safeguards-'));
      manifests = join(dir, 'cluster.yaml');
      writeManifests(manifests, SERVICES(cluster), [{ name: 'node1', ip: NODE_IP }]);
      await start();
    });

    after(async () => {
      await proxy?.stop();
      await cluster?.destroy();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    test('packets conntrack finds INVALID are dropped in forwarding, counted in kube-proxy\'s nfacct counter and metric', async () => {
      const forward = (await iptables('iptables', ['-S', 'KPROXY-FORWARD'])).stdout.split('\n').filter((l) => l.startsWith('-A '));
      assert.match(forward[0] ?? '', /--ctstate INVALID -m nfacct --nfacct-name +ct_state_invalid_dropped_pkts -j DROP$/, 'the first forwarding rule');
      const before = await metric('kubeproxy_iptables_ct_state_invalid_dropped_packets_total');
      // The outside sends SYN+FIN (an invalid flag combination) to a pod through the node.
      await cluster.exec(cluster.extNs, 'nft', ['add table ip mangle-test']);
      await cluster.exec(cluster.extNs, 'nft', ['add chain ip mangle-test out { type filter hook output priority -150; }']);
      await cluster.exec(cluster.extNs, 'nft', [`add rule ip mangle-test out tcp dport ${PORT} tcp flags syn tcp flags set syn|fin`]);
      const invalid = await cluster.tcp(cluster.extNs, cluster.pods[0]!.ip, PORT, { count: 2, timeoutMs: 1500 });
      assert.equal(Object.values(invalid.errors).reduce((a, b) => a + b, 0), 2, 'no answer to an invalid packet');
      const counted = await cluster.exec(cluster.nodeNs, 'nfacct', ['get', 'ct_state_invalid_dropped_pkts']);
      const packets = Number(/pkts = (\d+)/.exec(counted.stdout)?.[1]);
      assert.ok(packets >= 2, `nfacct counted ${packets} packets`);
      assert.ok(await metric('kubeproxy_iptables_ct_state_invalid_dropped_packets_total') - before >= 2, 'the metric reads the counter');
      await cluster.exec(cluster.extNs, 'nft', ['delete table ip mangle-test']);
      const valid = await cluster.tcp(cluster.extNs, cluster.pods[0]!.ip, PORT, { count: 2 });
      assert.deepEqual(valid.errors, {}, 'valid forwarded traffic passes');
    });

    /** A flush as shell commands run at once in the node namespace, and the tables it leaves without kproxy's rules. */
    /** `thenChange`: a Service changes right after the flush, so kproxy writes before its next check. */
    type Flush = { name: string; script: string; tables: readonly string[]; whole: () => Promise<boolean>; thenChange?: boolean };
    // firewalld's iptables backend reloads by restoring whole tables (without --noflush: every chain flushed, every
    // user chain deleted), one restore per family.
    const reload = (['iptables', 'ip6tables'] as const).map((family) => `printf '*nat\\nCOMMIT\\n*filter\\nCOMMIT\\n*mangle\\nCOMMIT\\n' | ${family}-${variant}-restore -w`).join(' && ');
    const flushes: readonly Flush[] = [
      { name: 'iptables -t nat -F', script: `iptables-${variant} -w 5 -t nat -F`, tables: ['nat'], whole: webAnswers },
      { name: 'iptables -F (filter)', script: `iptables-${variant} -w 5 -F`, tables: ['filter'], whole: emptyRefused },
      { name: 'a firewall reload (whole tables restored, both families)', script: reload, tables: ['nat', 'filter'], whole: async () => (await webAnswers()) && (await emptyRefused()) },
      // A write of kproxy's own between the flush and the next check must not hide the flush (a legacy table's size
      // after the write is not taken as the reference when it changed before the write).
      { name: 'iptables -t nat -F followed by a Service change', script: `iptables-${variant} -w 5 -t nat -F`, tables: ['nat'], whole: webAnswers, thenChange: true },
    ];
    for (const flush of flushes) {
      test(`the canary: after ${flush.name}, everything is back within the poll interval`, async () => {
        assert.ok(await flush.whole(), 'works before');
        // A check has seen the canaries (and, in legacy, taken the tables' sizes) since the last write.
        if (flush.thenChange) await new Promise((resolve) => setTimeout(resolve, 2 * SYNC_PERIOD_S * 1000));
        const seen = drifts();
        // How many of kproxy's rules each table holds right after (a repair follows within the poll interval).
        const counts = flush.tables.map((table) => `(iptables-${variant} -w 5 -t ${table} -S | grep -c '^-A KPROXY' || true)`);
        const left = (await cluster.exec(cluster.nodeNs, 'sh', ['-c', [flush.script, ...counts].join(' && ')])).stdout.trim().split('\n');
        const flushedAt = Date.now();
        assert.deepEqual(left, flush.tables.map(() => '0'), 'the flush removed kproxy\'s rules (else this test proves nothing)');
        if (flush.thenChange) writeManifests(manifests, [...SERVICES(cluster), { name: 'changed', clusterIP: '10.96.0.21', ports: [{ port: 80, targetPort: PORT }], endpoints: [{ pod: cluster.pods[0]! }] }], [{ name: 'node1', ip: NODE_IP }]);
        await eventually(flush.whole, 'service restored', (SYNC_PERIOD_S + 8) * 1000, 100).catch((error: unknown) => {
          throw new Error(`${(error as Error).message}\n${proxy.output().split('\n').slice(-15).join('\n')}`);
        });
        const tookMs = Date.now() - flushedAt;
        process.stderr.write(`# ${variant}: ${flush.name}: restored ${tookMs} ms after the flush\n`);
        assert.ok(drifts() > seen, 'the drift was seen and a full resync asked for');
        assert.ok(tookMs < (SYNC_PERIOD_S + 4) * 1000, `restored within the poll interval and a sync (${tookMs} ms)`);
        await eventually(async () => /-d fd00:96::10\/128/.test((await iptables('ip6tables', ['-t', 'nat', '-S', 'KPROXY-SERVICES'])).stdout), 'IPv6 rules back too');
      });
    }

    test('kproxy\'s own syncs (changes, removals) never look like drift', async () => {
      const seen = drifts();
      const extra: ServiceSpec = { name: 'extra', clusterIP: '10.96.0.20', ports: [{ port: 80, targetPort: PORT }], endpoints: [{ pod: cluster.pods[1]! }] };
      const base = SERVICES(cluster);
      writeManifests(manifests, [...base, extra], [{ name: 'node1', ip: NODE_IP }]);
      await eventually(async () => Object.keys((await cluster.tcp(cluster.client.ns, '10.96.0.20', 80, { count: 1, timeoutMs: 500 })).errors).length === 0, 'new service served');
      writeManifests(manifests, base, [{ name: 'node1', ip: NODE_IP }]);
      await new Promise((resolve) => setTimeout(resolve, 3 * SYNC_PERIOD_S * 1000));
      assert.equal(drifts(), seen);
    });

    test('with conntrack.tcpBeLiberal there is no INVALID drop, as in kube-proxy', async () => {
      await proxy.stop();
      await start(['--conntrack-tcp-be-liberal=true']);
      const liberal = await cluster.exec(cluster.nodeNs, 'cat', ['/proc/sys/net/netfilter/nf_conntrack_tcp_be_liberal']);
      assert.equal(liberal.stdout.trim(), '1', 'set in the node namespace at start-up');
      await eventually(async () => !(await iptables('iptables', ['-S', 'KPROXY-FORWARD'])).stdout.includes('INVALID'), 'the drop rule is gone after the full sync');
      assert.ok(await webAnswers());
    });
  });
}
