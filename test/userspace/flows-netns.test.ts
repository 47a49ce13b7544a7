// The shared packet-flow table (test/flows/table.ts) against the REAL userspace relay: the agent runs in the node
// namespace of the harness with the table's cluster.yaml, puts the service addresses on its own interface, listens on
// the node's addresses for NodePorts, and every case the harness can express goes through real sockets. The expected
// verdict is the relay's (relay-expectation.ts, the same the tracer test uses): every reach masqueraded. A relay
// refuses after the handshake, so refusals read the relay way (harness/flows.ts RefusalStyle): reset = reject,
// quiet close = drop. Cases marked tracerOnly (an endpoint on a node that exists only on paper, SCTP) are left to
// the tracer. Root only.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { FLOW_CASES, FLOW_MANIFEST_PATH, flowClusterState } from '../flows/table.ts';
import {
  addressesStickyService, createCluster, NODE_IP, observable, observeFlow, startKproxy, stickyVariants,
  type Cluster, type KproxyProcess,
} from '../harness/index.ts';
import { eventually, kernelSuite } from '../kernel/preflight.ts';
import { relayExpectation } from './relay-expectation.ts';

const ENDPOINT_PORT = 8080;
const netnsCases = FLOW_CASES.filter((flow) => flow.tracerOnly === undefined);

test('the flow table has cases the relay can run in namespaces, and says why the others are tracer-only', () => {
  assert.ok(netnsCases.length >= 20, `${netnsCases.length} cases`);
  for (const flow of FLOW_CASES) if (flow.tracerOnly !== undefined) assert.ok(flow.tracerOnly.length > 10, flow.name);
});

describe('packet-flow table on the userspace relay in network namespaces', kernelSuite, () => {
  let cluster: Cluster;
  let kproxy: KproxyProcess | undefined;
  const state = flowClusterState();

  /** True once `dst:port` from `ns` reaches a pod through the relay. */
  const answers = async (ns: string, dst: string, port: number): Promise<boolean> =>
    Object.keys((await cluster.tcp(ns, dst, port, { count: 1, timeoutMs: 500 })).answers).length === 1;

  before(async () => {
    cluster = await createCluster({ pods: 3, podPorts: [ENDPOINT_PORT] });
    // The relay reads the node's addresses at a sync and lists only running links: wait for eth0's carrier (its
    // peer is outside) so the first sync already opens the NodePorts on NODE_IP.
    await eventually(async () => /LOWER_UP/.test((await cluster.exec(cluster.nodeNs, 'ip', ['link', 'show', 'dev', 'eth0'])).stdout),
      'eth0 of the node running', 5000, 20);
    kproxy = startKproxy(cluster, {
      mode: 'userspace', manifests: FLOW_MANIFEST_PATH,
      args: ['--min-sync-period', '0s', '--metrics-bind-address', '', '--log-format', 'json'],
    });
    await kproxy.waitHealthy(15_000);
    // Healthy means synced; the relay processes may still be opening listeners: wait for one of each kind.
    await eventually(async () => await answers(cluster.client.ns, '10.96.0.10', 80)
      && await answers(cluster.extNs, NODE_IP, 30080) && await answers(cluster.client.ns, 'fd00:96::10', 80),
    `the relay answering on a ClusterIP, a NodePort and an IPv6 ClusterIP:\n${kproxy.output()}`, 10_000, 100);
  });

  after(async () => {
    await kproxy?.stop('SIGKILL');
    await cluster?.destroy();
  });

  for (const flow of netnsCases) {
    test(flow.name, async () => {
      const expected = relayExpectation(flow);
      const { verdict, summary } = await observeFlow(cluster, flow.packet, expected, ENDPOINT_PORT, { refusals: 'relay' });
      // ClientIP affinity is global in the relay: one client sticks to one endpoint
      const allowed = addressesStickyService(state, flow.packet)
        ? stickyVariants(expected)
        : observable(expected, flow.packet, cluster, ENDPOINT_PORT);
      const { from, src, dst, port, protocol } = flow.packet;
      assert.ok(allowed.some((v) => JSON.stringify(v) === JSON.stringify(verdict)),
        `${from} ${src} -> ${dst}:${port}/${protocol}: got ${JSON.stringify(verdict)}, want ${JSON.stringify(allowed)} (${JSON.stringify(summary)})`);
    });
  }
});
