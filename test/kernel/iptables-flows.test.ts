// The shared packet-flow table (test/flows/table.ts) on a real kernel: kproxy programs the table's cluster.yaml in
// the namespace harness, whose addresses are the table's topology, and every case the harness can express is sent
// through real sockets, for both iptables variants. Cases marked tracerOnly (an endpoint on a node that exists
// only on paper, SCTP) are not registered here: the tracer runs them.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Packet, Verdict } from '../../src/model/trace.ts';
import type { DesiredState } from '../../src/model/types.ts';
import { ipFamily } from '../../src/util/ip.ts';
import { FLOW_CASES, FLOW_MANIFEST_PATH, flowClusterState } from '../flows/table.ts';
import { createCluster, observable, observeFlow, type Cluster } from '../harness/index.ts';
import { VARIANTS } from '../../kit/iptables/variant.ts';
import { createDriver } from './iptables-driver.ts';
import { kernelSuite, requireKernelTools } from './preflight.ts';

const ENDPOINT_PORT = 8080;
const kernelCases = FLOW_CASES.filter((flow) => flow.tracerOnly === undefined);

/** Whether the packet addresses a service port with ClientIP affinity (one client then sticks to one endpoint). */
function addressesStickyService(state: DesiredState, packet: Packet): boolean {
  const family = ipFamily(packet.dst);
  if (!family) return false;
  return state.families[family].services.some((s) => s.affinity !== undefined && s.protocol === packet.protocol
    && s.frontends.some((f) => f.kind !== 'NodePort' && f.ip === packet.dst && f.port === packet.port));
}

/** A sticky service seen from one client: exactly one of the expected reaches. */
function stickyVariants(expected: Verdict): Verdict[] {
  return expected.kind === 'forward' ? expected.reaches.map((reach) => ({ kind: 'forward', reaches: [reach] })) : [expected];
}

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

    for (const flow of kernelCases) {
      test(flow.name, async () => {
        await cluster.flushConntrack();
        const { verdict, summary } = await observeFlow(cluster, flow.packet, flow.expect, ENDPOINT_PORT);
        const allowed = addressesStickyService(state, flow.packet)
          ? stickyVariants(flow.expect)
          : observable(flow.expect, flow.packet, cluster, ENDPOINT_PORT);
        const { from, src, dst, port, protocol } = flow.packet;
        assert.ok(allowed.some((v) => JSON.stringify(v) === JSON.stringify(verdict)),
          `${from} ${src} -> ${dst}:${port}/${protocol}: got ${JSON.stringify(verdict)}, want ${JSON.stringify(allowed)} (${JSON.stringify(summary)})`);
      });
    }
  });
}
