// The layout's properties that no single packet shows: what is shared, what a service owns, the mark left behind,
// affinity timeouts, conflicting frontends.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { assembleSource, compileSource } from '../../modes/nftables/diff.ts';
import { tracePaths } from '../../modes/nftables/trace.ts';
import type { Statement } from '../../modes/nftables/ruleset.ts';
import { ClusterStore } from '../../src/store/cluster-store.ts';
import { syntheticCluster } from '../fixtures/synthetic.ts';
import { flowClusterState, TOPOLOGY } from '../flows/table.ts';

function syntheticTable(services: number) {
  const cluster = syntheticCluster({ services, endpointsPerService: 10, nodeName: 'node-0', seed: 42 });
  const store = new ClusterStore({ compute: { nodeName: 'node-0', clusterCIDRs: ['10.244.0.0/16'], nodePortAddresses: [], masqueradeAll: false, masqueradeBit: 14 } });
  store.replaceAll('Node', [cluster.node]);
  store.replaceAll('Service', cluster.services);
  store.replaceAll('EndpointSlice', cluster.slices);
  store.synced();
  const state = store.snapshot();
  return { state, table: assembleSource(compileSource(state, 'IPv4')).table };
}

describe('nftables layout', () => {
  test('only session-affinity ports own chains and sets; everything else is shared, whatever the number of services', () => {
    const counts = [500, 2000].map((n) => {
      const { state, table } = syntheticTable(n);
      const affinity = state.families.IPv4.services.filter((s) => s.routes.clusterIP.affinity).length;
      const own = table.chains.filter((c) => c.name.startsWith('svc-')).length;
      const ownSets = table.sets.filter((s) => s.name.startsWith('svc-')).length;
      assert.ok(own >= affinity && own <= affinity * 4, `${own} chains for ${affinity} affinity ports`);
      assert.equal(ownSets, affinity);
      return { shared: table.chains.length - own, sharedSets: table.sets.length - ownSets };
    });
    // Shared balancers exist per (key kind, class, protocol, masquerade, endpoint count): at most 3 × 3 × 2 × 2 per
    // count (11 here: up to 10 endpoints), not per service.
    for (const { shared, sharedSets } of counts) {
      assert.ok(shared <= 10 + 36 * 11, JSON.stringify(counts));
      assert.ok(sharedSets <= 11 + 12 * 11, JSON.stringify(counts));
    }
  });

  test('a masqueraded packet leaves with the masquerade bit cleared', () => {
    const state = flowClusterState();
    const table = assembleSource(compileSource(state, 'IPv4')).table;
    const paths = tracePaths(table, { from: 'node', src: TOPOLOGY.nodeIP, dst: '10.96.0.10', port: 80, protocol: 'TCP' }, { nodeIPs: state.families.IPv4.nodeIPs });
    assert.ok(paths.length > 0 && paths.every((p) => p.masquerade));
    for (const path of paths) assert.equal(path.mark & 0x4000, 0, `mark ${path.mark.toString(16)}`);
  });

  test('affinity entries carry the service\'s own timeout', () => {
    const state = flowClusterState();
    const table = assembleSource(compileSource(state, 'IPv4')).table;
    const sticky = state.families.IPv4.services.find((s) => s.routes.clusterIP.affinity);
    const timeout = sticky?.routes.clusterIP.affinity?.timeoutSeconds;
    assert.ok(timeout !== undefined && timeout !== 10800, 'the flow cluster\'s affinity service has a timeout of its own');
    const updates = table.chains.filter((c) => c.name.startsWith('svc-')).flatMap((c) => c.rules.flatMap((r) => r.statements))
      .filter((s): s is Extract<Statement, { kind: 'update' }> => s.kind === 'update');
    assert.ok(updates.length >= 6);
    for (const update of updates) assert.equal(update.timeoutSeconds, timeout);
  });

  test('a frontend two services claim goes to the first by key, and only it', () => {
    const state = flowClusterState();
    const services = state.families.IPv4.services;
    const owner = services.find((s) => s.key === 'default/echo-lb:http');
    const clash = services.find((s) => s.key === 'default/echo-np:http');
    assert.ok(owner && clash);
    const external = owner.frontends.find((f) => f.kind === 'ExternalIP');
    assert.ok(external && external.kind === 'ExternalIP');
    const stolen = { ...clash, frontends: [...clash.frontends, external], key: 'zzz/late:http' };
    const next = { ...state, families: { ...state.families, IPv4: { ...state.families.IPv4, services: [...services, stolen] } } };
    const table = assembleSource(compileSource(next, 'IPv4')).table;
    const keys = (table.elements.get('service-ips') ?? []).filter((e) => e.startsWith(`${external.ip} . tcp . ${external.port} `));
    assert.equal(keys.length, 1, JSON.stringify(keys));
  });
});
