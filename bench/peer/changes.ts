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

function changeOf(slice: RawObject, added: string): SliceChange {
  const original = slice.endpoints as RawObject[];
  const endpoint: RawObject = {
    addresses: [added], conditions: { ready: true, serving: true, terminating: false }, nodeName: 'node-1', zone: 'zone-b',
  };
  return { path: slicePath(slice), original, added, changed: [...original, endpoint] };
}

/** Address number n of a /16 reserved for one kind of change (never a synthetic pod: those are in 10.244/16). */
const addressIn = (secondOctet: number, n: number): string => `10.${secondOctet}.${(n >>> 8) & 255}.${n & 255}`;

export interface ChangePlan {
  /** Each is applied as an addition, then as a removal (two changes). */
  readonly pairs: readonly SliceChange[];
  readonly burst: readonly SliceChange[];
}

/** `pairs` slices for the latency changes and `burst` others for the burst, picked evenly over the cluster. */
export function planChanges(cluster: SyntheticCluster, pairs: number, burst: number): ChangePlan {
  const slices = changeableSlices(cluster);
  if (pairs + burst > slices.length) throw new Error(`${pairs + burst} changes need as many slices; the cluster has ${slices.length} usable`);
  const step = slices.length / (pairs + burst);
  const picked = Array.from({ length: pairs + burst }, (_, i) => slices[Math.floor(i * step)] as RawObject);
  return {
    pairs: picked.slice(0, pairs).map((slice, i) => changeOf(slice, addressIn(247, i + 1))),
    burst: picked.slice(pairs).map((slice, i) => changeOf(slice, addressIn(246, i + 1))),
  };
}

export const applyChange = (admin: Admin, change: SliceChange): Promise<number> =>
  admin.request('PATCH', change.path, { endpoints: change.changed });

export const revertChange = (admin: Admin, change: SliceChange): Promise<number> =>
  admin.request('PATCH', change.path, { endpoints: change.original });

/** Put every slice of `changes` back as created. */
export function revertAll(admin: Admin, changes: readonly SliceChange[]): Promise<void> {
  return parallel(changes, 32, (change) => revertChange(admin, change));
}
