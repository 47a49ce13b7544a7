// The EndpointSlice changes of the peer benchmark, the same for every proxy and round: one endpoint added to a
// slice and removed again (so the apiserver ends where it started), and a burst of additions to distinct slices that
// is put back once the proxy under test has stopped.
import type { RawObject, SyntheticCluster } from '../../test/fixtures/synthetic.ts';
import { parallel, slicePath, type Admin } from '../apiserver-load.ts';

export interface SliceChange {
  readonly path: string;
  /** The slice's endpoints as created. */
  readonly original: readonly RawObject[];
  /** The address the change adds. */
  readonly added: string;
  /** The endpoints with the addition. */
  readonly changed: readonly RawObject[];
}

/**
 * Slices whose every change shows in both proxies' rules: IPv4, and no topology hints (an added endpoint in another
 * zone would be filtered out by hints, and change nothing). Spread over the whole cluster, deterministic.
 */
function changeableSlices(cluster: SyntheticCluster): RawObject[] {
  return cluster.slices.filter((slice) => slice.addressType === 'IPv4'
    && !(slice.endpoints as RawObject[]).some((e) => e.hints !== undefined));
}

const newEndpoint = (address: string): RawObject => ({
  addresses: [address], conditions: { ready: true, serving: true, terminating: false }, nodeName: 'node-1', zone: 'zone-b',
});

/** A change that adds `added` to `slice`, on top of `earlier` additions to the same slice. */
function changeOf(slice: RawObject, added: string, earlier: readonly string[] = []): SliceChange {
  const original = slice.endpoints as RawObject[];
  return { path: slicePath(slice), original, added, changed: [...original, ...[...earlier, added].map(newEndpoint)] };
}

/** Address number n of a /16 reserved for one kind of change (never a synthetic pod: those are in 10.244/16). */
const addressIn = (secondOctet: number, n: number): string => `10.${secondOctet}.${(n >>> 8) & 255}.${n & 255}`;

export interface ChangePlan {
  /** Each is applied as an addition, then as a removal (two changes). */
  readonly pairs: readonly SliceChange[];
  readonly burst: readonly SliceChange[];
}

/**
 * `pairs` slices for the latency changes and the others for the burst, picked evenly over the cluster. A burst larger
 * than the slices left adds to them again in turn, each change carrying the additions before it (a slice's changes are
 * a whole round of the burst apart, so they never overtake one another).
 */
export function planChanges(cluster: SyntheticCluster, pairs: number, burst: number): ChangePlan {
  const slices = changeableSlices(cluster);
  if (pairs >= slices.length) throw new Error(`${pairs} change pairs need as many slices; the cluster has ${slices.length} usable`);
  const step = slices.length / pairs;
  const pairSlices = Array.from({ length: pairs }, (_, i) => slices[Math.floor(i * step)] as RawObject);
  const taken = new Set(pairSlices);
  const rest = slices.filter((slice) => !taken.has(slice));
  const burstSlices = burst <= rest.length ? Array.from({ length: burst }, (_, i) => rest[Math.floor((i * rest.length) / burst)] as RawObject) : rest;
  const addedTo = new Map<RawObject, string[]>();
  const burstChanges = Array.from({ length: burst }, (_, i) => {
    const slice = burstSlices[i % burstSlices.length] as RawObject;
    const earlier = addedTo.get(slice) ?? [];
    const added = addressIn(246, i + 1);
    addedTo.set(slice, [...earlier, added]);
    return changeOf(slice, added, earlier);
  });
  return { pairs: pairSlices.map((slice, i) => changeOf(slice, addressIn(247, i + 1))), burst: burstChanges };
}

export const applyChange = (admin: Admin, change: SliceChange): Promise<number> =>
  admin.request('PATCH', change.path, { endpoints: change.changed });

export const revertChange = (admin: Admin, change: SliceChange): Promise<number> =>
  admin.request('PATCH', change.path, { endpoints: change.original });

/** Put every slice of `changes` back as created. */
export function revertAll(admin: Admin, changes: readonly SliceChange[]): Promise<void> {
  const once = [...new Map(changes.map((change) => [change.path, change])).values()];
  return parallel(once, 32, (change) => revertChange(admin, change));
}
