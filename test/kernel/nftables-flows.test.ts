// The shared packet-flow table (test/flows/table.ts) on a real kernel, programmed by the real agent in
// nftables mode in the namespace harness. Cases marked tracerOnly run on the tracer only (test/flows).
import { describe, test, before, after } from 'node:test';
import { expectedIn, FLOW_CASES, FLOW_MANIFEST_PATH, flowClusterState } from '../flows/table.ts';
import { checkKernelFlow, createCluster, startKproxy, type Cluster, type KproxyProcess } from '../harness/index.ts';
import { kernelSuite, requireKernelTools } from './preflight.ts';

const ENDPOINT_PORT = 8080;
const kernelCases = FLOW_CASES.filter((flow) => flow.tracerOnly === undefined);

describe('packet-flow table on a real kernel: nftables', kernelSuite, () => {
  let cluster: Cluster;
  let proxy: KproxyProcess | undefined;
  const state = flowClusterState();

  before(async () => {
    requireKernelTools(['nft', 'conntrack']);
    cluster = await createCluster({ pods: 3, podPorts: [ENDPOINT_PORT] });
    proxy = startKproxy(cluster, {
      mode: 'nftables', manifests: FLOW_MANIFEST_PATH,
      args: ['--min-sync-period', '0s', '--metrics-bind-address', '', '--log-format', 'json'],
    });
    await proxy.waitHealthy(15_000);
  });

  after(async () => {
    await proxy?.stop('SIGTERM');
    await cluster?.destroy();
  });

  for (const flow of kernelCases) {
    test(flow.name, () => checkKernelFlow(cluster, state, { ...flow, expect: expectedIn('nftables', flow) }, ENDPOINT_PORT));
  }
});
