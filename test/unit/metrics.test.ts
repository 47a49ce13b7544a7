import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ProxyMetrics, NETWORK_PROGRAMMING_BUCKETS, SYNC_DURATION_BUCKETS } from '../../src/metrics/proxy-metrics.ts';
import { startMetricsServer } from '../../src/metrics/server.ts';
import type { DesiredState, ServicePortPlan } from '../../src/model/types.ts';
import { withRoutes } from '../harness/state.ts';

function state(services: ServicePortPlan[] = []): DesiredState {
  const family = (f: 'IPv4' | 'IPv6', list: ServicePortPlan[]) => ({ family: f, services: list, nodePortAddresses: 'all' as const, localDetector: { kind: 'None' as const }, nodeIPs: [] });
  return { node: { name: 'n', shuttingDown: false }, settings: { masqueradeAll: false, masqueradeBit: 14, conntrackTcpLiberal: false }, families: { IPv4: family('IPv4', services), IPv6: family('IPv6', []) } };
}

function plan(name: string, options: Partial<ServicePortPlan>): ServicePortPlan {
  return withRoutes({
    key: `ns/${name}:`, namespace: 'ns', name, portName: '', protocol: 'TCP', family: 'IPv4', port: 80, clusterIP: '10.96.0.1',
    frontends: [{ kind: 'ClusterIP', ip: '10.96.0.1', port: 80 }], externalPolicyLocal: false, internalPolicyLocal: false, sourceRanges: [],
    clusterEndpoints: [], localEndpoints: [], allEndpoints: [], hasEndpoints: true, ...options,
  });
}

const value = (text: string, series: string): number | undefined => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

describe('ProxyMetrics', () => {
  test('upstream buckets', () => {
    assert.equal(SYNC_DURATION_BUCKETS.length, 15);
    assert.equal(SYNC_DURATION_BUCKETS[0], 0.001);
    assert.equal(SYNC_DURATION_BUCKETS[14], 0.001 * 2 ** 14);
    assert.deepEqual(NETWORK_PROGRAMMING_BUCKETS.slice(0, 5), [0, 0.25, 0.5, 1, 2]);
    assert.equal(NETWORK_PROGRAMMING_BUCKETS.at(-1), 300);
    assert.equal(NETWORK_PROGRAMMING_BUCKETS.length, 81);
  });

  test('per-mode metric sets and separate registries', async () => {
    const iptables = await new ProxyMetrics({ mode: 'iptables', processMetrics: false }).registry.metrics();
    const userspace = await new ProxyMetrics({ mode: 'userspace', processMetrics: false }).registry.metrics();
    const nft = await new ProxyMetrics({ mode: 'nftables', processMetrics: false }).registry.metrics();
    assert.match(iptables, /# TYPE kubeproxy_sync_proxy_rules_iptables_restore_failures_total counter/);
    assert.match(iptables, /# TYPE kubeproxy_sync_full_proxy_rules_duration_seconds histogram/);
    assert.doesNotMatch(userspace, /iptables_restore_failures/);
    assert.doesNotMatch(userspace, /sync_full_proxy_rules/);
    assert.match(nft, /kubeproxy_sync_proxy_rules_nftables_sync_failures_total/);
    for (const text of [iptables, userspace, nft]) {
      for (const name of ['kubeproxy_sync_proxy_rules_duration_seconds histogram', 'kubeproxy_sync_proxy_rules_last_timestamp_seconds gauge',
        'kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds gauge', 'kubeproxy_network_programming_duration_seconds histogram',
        'kubeproxy_sync_proxy_rules_endpoint_changes_pending gauge', 'kubeproxy_sync_proxy_rules_endpoint_changes_total counter',
        'kubeproxy_sync_proxy_rules_service_changes_pending gauge', 'kubeproxy_sync_proxy_rules_service_changes_total counter',
        'kubeproxy_sync_proxy_rules_no_local_endpoints_total gauge', 'kubeproxy_proxy_healthz_total counter', 'kubeproxy_proxy_livez_total counter',
        'kproxy_invalid_objects_skipped_total counter', 'kproxy_informer_restarts_total counter']) {
        assert.match(text, new RegExp(`# TYPE ${name}`));
      }
    }
  });

  test('sync, changes, trigger times and no-local-endpoints', async () => {
    let now = Date.now();
    const metrics = new ProxyMetrics({ mode: 'iptables', families: ['IPv4'], processMetrics: false });
    const tap = metrics.changeTap(() => now);
    tap.upsert?.('Service', {});
    tap.remove?.('Service', 'ns', 'x');
    const trigger = new Date(now + 1000).toISOString();
    tap.upsert?.('EndpointSlice', { addressType: 'IPv4', metadata: { annotations: { 'endpoints.kubernetes.io/last-change-trigger-time': trigger } } });
    metrics.changeQueued(now);
    let text = await metrics.registry.metrics();
    assert.equal(value(text, 'kubeproxy_sync_proxy_rules_service_changes_pending'), 2);
    assert.equal(value(text, 'kubeproxy_sync_proxy_rules_endpoint_changes_pending'), 1);
    assert.equal(value(text, 'kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds{ip_family="IPv4"}'), now / 1000);

    now += 2000;
    const services = [
      plan('itp', { internalPolicyLocal: true, clusterEndpoints: [] }),
      plan('etp', { externalPolicyLocal: true, frontends: [{ kind: 'NodePort', port: 30001 }], clusterEndpoints: [{ ip: '1.1.1.1', port: 1, local: false, ready: true, serving: true, terminating: false }], localEndpoints: [] }),
      plan('none', { hasEndpoints: false }),
    ];
    metrics.syncSucceeded({ full: false, startedAt: now, finishedAt: now + 250, state: state(services), report: { full: false } });
    text = await metrics.registry.metrics();
    assert.equal(value(text, 'kubeproxy_sync_proxy_rules_service_changes_total'), 2);
    assert.equal(value(text, 'kubeproxy_sync_proxy_rules_service_changes_pending'), 0);
    assert.equal(value(text, 'kubeproxy_sync_proxy_rules_endpoint_changes_pending'), 0);
    assert.equal(value(text, 'kubeproxy_sync_partial_proxy_rules_duration_seconds_count{ip_family="IPv4"}'), 1);
    assert.equal(value(text, 'kubeproxy_sync_full_proxy_rules_duration_seconds_count{ip_family="IPv4"}'), 0, 'present from the start, at zero');
    assert.equal(value(text, 'kubeproxy_sync_proxy_rules_duration_seconds_sum{ip_family="IPv4"}'), 0.25);
    assert.equal(value(text, 'kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family="IPv4"}'), (now + 250) / 1000);
    assert.equal(value(text, 'kubeproxy_network_programming_duration_seconds_count{ip_family="IPv4"}'), 1);
    assert.equal(value(text, 'kubeproxy_network_programming_duration_seconds_sum{ip_family="IPv4"}'), 1.25);
    assert.equal(value(text, 'kubeproxy_sync_proxy_rules_no_local_endpoints_total{traffic_policy="internal",ip_family="IPv4"}'), 1);
    assert.equal(value(text, 'kubeproxy_sync_proxy_rules_no_local_endpoints_total{traffic_policy="external",ip_family="IPv4"}'), 1);

    metrics.syncFailed({ full: true, startedAt: now, finishedAt: now, error: new Error('x'), attempt: 1, retryInMs: 1000 });
    metrics.invalidObject({ kind: 'Service', ref: 'ns/x', reason: 'bad' });
    metrics.informerRestarted('EndpointSlice');
    metrics.healthAnswered('healthz', 503);
    metrics.useTrafficStats(async () => ({ 'default/web:http': { active: 2, relayed: 5, spliced: 3, refused: 1, failed: 0, bytesIn: 100, bytesOut: 40 } }));
    tap.stale?.(true);
    text = await metrics.registry.metrics();
    assert.equal(value(text, 'kubeproxy_sync_proxy_rules_iptables_restore_failures_total{ip_family="IPv4"}'), 1);
    assert.equal(value(text, 'kproxy_sync_failures_total{mode="iptables"}'), 1);
    assert.equal(value(text, 'kproxy_invalid_objects_skipped_total{kind="Service"}'), 1);
    assert.equal(value(text, 'kproxy_informer_restarts_total{resource="EndpointSlice"}'), 1);
    assert.equal(value(text, 'kubeproxy_proxy_healthz_total{code="503"}'), 1);
    assert.equal(value(text, 'kproxy_userspace_relay_bytes_total{service="default/web:http",direction="in"}'), 100);
    assert.equal(value(text, 'kproxy_userspace_relay_connections_total{service="default/web:http",result="relayed"}'), 5);
    assert.equal(value(text, 'kproxy_userspace_relay_spliced_connections_total{service="default/web:http"}'), 3);
    assert.equal(value(text, 'kproxy_userspace_relay_active_connections{service="default/web:http"}'), 2);
    assert.equal(value(text, 'kproxy_source_stale'), 1);
  });

  test('each mode registers upstream\'s set (RegisterMetrics), every family\'s series present from the start', async () => {
    const types = async (mode: 'iptables' | 'ipvs' | 'nftables' | 'userspace'): Promise<string[]> => {
      const text = await new ProxyMetrics({ mode, processMetrics: false }).registry.metrics();
      return [...text.matchAll(/^# TYPE (kube\w+) /gm)].map((m) => m[1] ?? '').sort();
    };
    const core = ['kubeproxy_network_programming_duration_seconds', 'kubeproxy_proxy_healthz_total', 'kubeproxy_proxy_livez_total',
      'kubeproxy_sync_proxy_rules_duration_seconds', 'kubeproxy_sync_proxy_rules_endpoint_changes_pending', 'kubeproxy_sync_proxy_rules_endpoint_changes_total',
      'kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds', 'kubeproxy_sync_proxy_rules_last_timestamp_seconds',
      'kubeproxy_sync_proxy_rules_no_local_endpoints_total', 'kubeproxy_sync_proxy_rules_service_changes_pending',
      'kubeproxy_sync_proxy_rules_service_changes_total', 'kubernetes_build_info'];
    const conntrack = ['kubeproxy_conntrack_reconciler_deleted_entries_total', 'kubeproxy_conntrack_reconciler_sync_duration_seconds'];
    const fullPartial = ['kubeproxy_sync_full_proxy_rules_duration_seconds', 'kubeproxy_sync_partial_proxy_rules_duration_seconds'];
    assert.deepEqual(await types('userspace'), [...core].sort());
    assert.deepEqual(await types('iptables'), [...core, ...conntrack, ...fullPartial, 'kubeproxy_iptables_ct_state_invalid_dropped_packets_total',
      'kubeproxy_iptables_localhost_nodeports_accepted_packets_total', 'kubeproxy_sync_proxy_rules_iptables_last',
      'kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total', 'kubeproxy_sync_proxy_rules_iptables_restore_failures_total',
      'kubeproxy_sync_proxy_rules_iptables_total'].sort());
    assert.deepEqual(await types('ipvs'), [...core, ...conntrack, 'kubeproxy_sync_proxy_rules_iptables_restore_failures_total'].sort());
    assert.deepEqual(await types('nftables'), [...core, ...conntrack, ...fullPartial, 'kubeproxy_sync_proxy_rules_nftables_cleanup_failures_total',
      'kubeproxy_sync_proxy_rules_nftables_sync_failures_total'].sort());
    const fresh = await new ProxyMetrics({ mode: 'iptables', processMetrics: false }).registry.metrics();
    for (const family of ['IPv4', 'IPv6']) {
      assert.equal(value(fresh, `kubeproxy_network_programming_duration_seconds_count{ip_family="${family}"}`), 0);
      assert.equal(value(fresh, `kubeproxy_sync_proxy_rules_iptables_restore_failures_total{ip_family="${family}"}`), 0);
      assert.equal(value(fresh, `kubeproxy_conntrack_reconciler_deleted_entries_total{ip_family="${family}"}`), 0);
    }
    assert.equal(value(fresh, 'kubeproxy_iptables_ct_state_invalid_dropped_packets_total'), 0);
    assert.match(fresh, /^kubernetes_build_info\{major="\d+",minor="\d+",git_version="v\d+\.\d+\.\d+",.*compiler="node",platform="linux\/\w+"\} 1$/m);
  });

  test('the mode reports per family; an unattributed failure counts for every family', async () => {
    const metrics = new ProxyMetrics({ mode: 'iptables', processMetrics: false });
    const failed = (full: boolean): void => metrics.syncFailed({ full, startedAt: 0, finishedAt: 0, error: new Error('x'), attempt: 1, retryInMs: 1000 });
    metrics.modeMetrics.restoreFailed('IPv6', true);
    failed(false);
    let text = await metrics.registry.metrics();
    assert.deepEqual(['IPv4', 'IPv6'].map((f) => value(text, `kubeproxy_sync_proxy_rules_iptables_restore_failures_total{ip_family="${f}"}`)), [0, 1]);
    assert.deepEqual(['IPv4', 'IPv6'].map((f) => value(text, `kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total{ip_family="${f}"}`)), [0, 1]);
    failed(true);
    text = await metrics.registry.metrics();
    assert.deepEqual(['IPv4', 'IPv6'].map((f) => value(text, `kubeproxy_sync_proxy_rules_iptables_restore_failures_total{ip_family="${f}"}`)), [1, 2]);
    assert.deepEqual(['IPv4', 'IPv6'].map((f) => value(text, `kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total{ip_family="${f}"}`)), [0, 1], 'a full sync is no partial failure');
    metrics.modeMetrics.rulesCounted('IPv4', 'nat', 120, 7);
    metrics.modeMetrics.conntrackReconciled('IPv4', 0.003, 4);
    metrics.useNetfilterCounters(async () => ({ ctStateInvalidDropped: 12 }));
    text = await metrics.registry.metrics();
    assert.equal(value(text, 'kubeproxy_sync_proxy_rules_iptables_total{table="nat",ip_family="IPv4"}'), 120);
    assert.equal(value(text, 'kubeproxy_sync_proxy_rules_iptables_last{table="nat",ip_family="IPv4"}'), 7);
    assert.equal(value(text, 'kubeproxy_conntrack_reconciler_deleted_entries_total{ip_family="IPv4"}'), 4);
    assert.equal(value(text, 'kubeproxy_conntrack_reconciler_sync_duration_seconds_count{ip_family="IPv4"}'), 1);
    assert.equal(value(text, 'kubeproxy_iptables_ct_state_invalid_dropped_packets_total'), 12);
    assert.equal(value(text, 'kubeproxy_iptables_localhost_nodeports_accepted_packets_total'), 0);
  });

  test('metrics server: /metrics, /healthz, /proxyMode, /configz', async () => {
    const metrics = new ProxyMetrics({ mode: 'ipvs', processMetrics: true });
    const server = await startMetricsServer({ bindAddress: '127.0.0.1:0', metrics, configz: () => ({ mode: 'ipvs', bindAddress: '0.0.0.0' }) });
    const base = `http://127.0.0.1:${server.port}`;
    try {
      const text = await (await fetch(`${base}/metrics`)).text();
      assert.match(text, /kubeproxy_sync_proxy_rules_iptables_restore_failures_total/);
      assert.match(text, /process_cpu_user_seconds_total/);
      assert.equal(await (await fetch(`${base}/healthz`)).text(), 'ok');
      assert.equal(await (await fetch(`${base}/proxyMode`)).text(), 'ipvs');
      assert.deepEqual(await (await fetch(`${base}/configz`)).json(), { 'kubeproxy.config.k8s.io': { mode: 'ipvs', bindAddress: '0.0.0.0' } });
      assert.equal((await fetch(`${base}/nope`)).status, 404);
    } finally {
      await server.close();
    }
  });
});
