// The shared packet-flow table (test/flows/table.ts) on a real kernel: kproxy programs the table's cluster.yaml in
// the namespace harness, whose addresses are the table's topology, and every case the harness can express is sent
// through real sockets, for both iptables variants. Cases marked tracerOnly (an endpoint on a node that exists
// only on paper, SCTP) are not registered here: the tracer runs them.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { FLOW_CASES, FLOW_MANIFEST_PATH, flowClusterState } from '../flows/table.ts';
import { checkKernelFlow, createCluster, type Cluster } from '../harness/index.ts';
import { VARIANTS } from '../../kit/iptables/variant.ts';
import { createDriver } from './iptables-driver.ts';
import { kernelSuite, requireKernelTools } from './preflight.ts';

const ENDPOINT_PORT = 8080;
const kernelCases = FLOW_CASES.filter((flow) => flow.tracerOnly === undefined);

test('the flow table has cases the kernel can run, and says why the others are tracer-only', () => {
  assert.ok(kernelCases.length >= 20, `${kernelCases.length} kernel cases`);
  for (const flow of FLOW_CASES) if (flow.tracerOnly !== undefined) assert.ok(flow.tracerOnly.length > 10, flow.name);
});

for (const variant of VARIANTS) {
  describe(`packet-flow table on a real kernel: iptables (${variant})`, kernelSuite, () => {
    let cluster: Cluster;
    const state = flowClusterState();

    before(async () => {
      requireKernelTools([`iptables-${variant}-restore`, `ip6tables-${variant}-restore`, 'conntrack']);
      cluster = await createCluster({ pods: 3, podPorts: [ENDPOINT_PORT] });
      await createDriver({ cluster, manifests: FLOW_MANIFEST_PATH, variant }).start();
    });

    after(async () => { await cluster?.destroy(); });

    for (const flow of kernelCases) test(flow.name, () => checkKernelFlow(cluster, state, flow, ENDPOINT_PORT));
  });
}
