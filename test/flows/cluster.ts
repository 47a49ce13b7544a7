// The packet-flow table's cluster: cluster.yaml through the real store and compute, as kproxy --manifests does.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import type { ComputeOptions } from '../../src/compute/options.ts';
import type { InvalidObject } from '../../src/model/observe.ts';
import type { ObjectKind } from '../../src/model/source.ts';
import type { DesiredState } from '../../src/model/types.ts';
import { ClusterStore } from '../../src/store/cluster-store.ts';

export const FLOW_MANIFEST_PATH = fileURLToPath(new URL('./cluster.yaml', import.meta.url));

/** The flags kproxy runs with for the table (the kernel tests pass the same on the command line). */
export const FLOW_COMPUTE_OPTIONS: ComputeOptions = {
  nodeName: 'node1',
  clusterCIDRs: ['10.244.0.0/16', 'fd00:244::/32'],
  nodePortAddresses: [],
  masqueradeAll: false,
  masqueradeBit: 14,
};

/** Addresses of the topology the cases use (the namespace harness builds the same). */
export const TOPOLOGY = {
  nodeIP: '192.168.100.2',
  nodeIP6: 'fd00:100::2',
  outsideClient: '192.168.100.1',
  outsideClient6: 'fd00:100::1',
  clientPod: '10.244.1.200',
  clientPod6: 'fd00:244:1::200',
  pods: ['10.244.1.2', '10.244.1.3', '10.244.1.4'],
  pods6: ['fd00:244:1::2', 'fd00:244:1::3', 'fd00:244:1::4'],
} as const;

const KINDS: readonly ObjectKind[] = ['Node', 'Service', 'EndpointSlice'];

/** The objects of a manifest file, by kind (anything else is ignored). */
export function readManifest(path: string = FLOW_MANIFEST_PATH): Record<ObjectKind, unknown[]> {
  const byKind: Record<ObjectKind, unknown[]> = { Node: [], Service: [], EndpointSlice: [] };
  for (const doc of parseAllDocuments(readFileSync(path, 'utf8'))) {
    if (doc.errors.length > 0) throw new Error(`${path}: ${doc.errors[0]?.message ?? 'bad YAML'}`);
    const object: unknown = doc.toJS();
    const kind = (object as { kind?: unknown } | null)?.kind;
    if (typeof kind === 'string' && (KINDS as readonly string[]).includes(kind)) byKind[kind as ObjectKind].push(object);
  }
  return byKind;
}

/** DesiredState of the flow cluster; throws when compute finds an object invalid (the manifest must be clean). */
export function flowClusterState(options: ComputeOptions = FLOW_COMPUTE_OPTIONS): DesiredState {
  const invalid: InvalidObject[] = [];
  const store = new ClusterStore({ compute: options, onInvalid: (i) => invalid.push(i) });
  const objects = readManifest();
  for (const kind of KINDS) store.replaceAll(kind, objects[kind]);
  store.synced();
  const state = store.snapshot();
  if (invalid.length > 0) throw new Error(`cluster.yaml: ${invalid.map((i) => `${i.kind} ${i.ref}: ${i.reason}`).join('; ')}`);
  return state;
}
