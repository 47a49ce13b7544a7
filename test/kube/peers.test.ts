// The side-by-side harness itself (peers.ts, bridge.ts, the scale node, the table watch): kproxy and the upstream
// kube-proxy each program a node namespace from the same config file through the apiserver bridge, their rules land
// in the kernel's legacy nat table (read with getsockopt, not logs), traffic through them reaches endpoints, their
// usage reads from /proc, each has an xtables lock file of its own, and stop() ends each by PID.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ControlPlane, kubeTestsDisabled } from './apiserver.ts';
import { createNode, PEER_KINDS, startPeer } from './peers.ts';
import { createScaleNode, SCALE_CLIENT_IP, SCALE_CLUSTER_CIDR, SCALE_NODE_IP } from '../harness/scale-node.ts';
import { watchTable } from '../harness/table-watch.ts';

const skip = kubeTestsDisabled ? 'KPROXY_NO_KUBE_TESTS=1' : process.env.KPROXY_NO_KERNEL_TESTS === '1' ? 'KPROXY_NO_KERNEL_TESTS=1' : false;
const NODE = 'peer-node';

describe('side-by-side harness: kproxy and kube-proxy against one apiserver, each in its own node namespace', { skip }, () => {
  let plane: ControlPlane;
  let clusterIP = '';

  before(async () => {
    plane = await ControlPlane.start();
    await createNode(plane, NODE, [SCALE_NODE_IP]);
    await plane.request('POST', '/api/v1/namespaces', { metadata: { name: 'web' } });
    const service = await plane.request('POST', '/api/v1/namespaces/web/services',
      { metadata: { name: 'front' }, spec: { ports: [{ port: 80, targetPort: 8080, protocol: 'TCP' }] } });
    clusterIP = (service.spec as { clusterIP: string }).clusterIP;
    await plane.request('POST', '/apis/discovery.k8s.io/v1/namespaces/web/endpointslices', {
      metadata: { name: 'front-1', labels: { 'kubernetes.io/service-name': 'front' } },
      addressType: 'IPv4', ports: [{ name: '', port: 8080, protocol: 'TCP' }],
      endpoints: ['10.244.7.1', '10.244.7.2'].map((ip) => ({ addresses: [ip], conditions: { ready: true }, nodeName: 'other' })),
    });
  });

  after(async () => { await plane?.stop(); });

  for (const kind of PEER_KINDS) {
    test(`${kind}: rules in the kernel, traffic through them, usage, own lock file, stop by PID`, async () => {
      const node = await createScaleNode();
      try {
        await plane.reachFrom((cmd, args) => node.spawn(node.nodeNs, cmd, args));
        const nat = await watchTable((cmd, args) => node.spawn(node.nodeNs, cmd, args));
        const empty = nat.current().entries;
        const peer = startPeer(node, kind, {
          mode: 'iptables', kubeconfig: plane.proxyKubeconfig, nodeName: NODE, clusterCIDR: SCALE_CLUSTER_CIDR,
          workDir: join(plane.dir, kind),
        });
        try {
          await peer.waitListening();
          // a service with two endpoints takes more than a dozen nat entries in either proxy's layout
          await nat.until((entries) => entries > empty + 12, { timeoutMs: 30_000 });
          const summary = await eventuallyAnswered(node, clusterIP);
          assert.deepEqual(summary.peers, { [SCALE_CLIENT_IP]: 20 }, `${kind}: pod traffic is not masqueraded`);
          const usage = peer.usage();
          assert.ok(usage.cpuSeconds > 0 && usage.rssKiB > 10_000 && usage.peakRssKiB >= usage.rssKiB, JSON.stringify(usage));
          const environ = readFileSync(`/proc/${peer.pid}/environ`, 'utf8').split('\0');
          const lock = environ.find((v) => v.startsWith('XTABLES_LOCKFILE='));
          assert.ok(lock && lock !== `XTABLES_LOCKFILE=${process.env.XTABLES_LOCKFILE}`, `${kind}: its own xtables lock (${lock})`);
        } finally {
          const status = await peer.stop();
          assert.ok(status === 0 || status === 'SIGTERM', `${kind} stopped with ${status}:\n${peer.output().slice(-2000)}`);
          assert.throws(() => process.kill(peer.pid, 0), `${kind} is gone`);
          nat.stop();
        }
      } finally {
        await node.destroy();
      }
    });
  }
});

async function eventuallyAnswered(node: Awaited<ReturnType<typeof createScaleNode>>, ip: string): Promise<{ peers: Record<string, number> }> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const summary = await node.tcp(node.clientNs, ip, 80, { count: 20, concurrency: 4, timeoutMs: 1000 });
    if (summary.answers['sink'] === 20 || Date.now() > deadline) return summary;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
