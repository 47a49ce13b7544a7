// Which endpoints each kind of traffic may use (kube-proxy's CategorizeEndpoints): ready endpoints first;
// when none is ready, serving+terminating ones, decided separately for the cluster-wide and the local set.
import type { Endpoint } from '../model/types.ts';
import type { Candidate } from './endpoints.ts';
import { passesTopology, topologyFilter, type TopologyInput } from './topology.ts';

export interface CategorizeInput {
  readonly candidates: readonly Candidate[];
  /** Some traffic uses the cluster-wide set (internal with ITP Cluster, or external with ETP Cluster). */
  readonly usesCluster: boolean;
  /** Some traffic uses the node-local set (ITP Local or ETP Local). */
  readonly usesLocal: boolean;
  readonly topology: TopologyInput;
}

export interface Categorized {
  /** Cluster-wide usable endpoints, topology applied; empty when not used. */
  readonly cluster: readonly Endpoint[];
  /** Local usable endpoints; empty when not used. */
  readonly local: readonly Endpoint[];
  /** Some endpoint anywhere is ready, or serving while terminating. */
  readonly hasAny: boolean;
}

const usableFallback = (c: Candidate): boolean => c.endpoint.serving && c.endpoint.terminating;
/** One shared empty set (most services have no local endpoints: one array less each at 10k+ services). */
const NONE: readonly Endpoint[] = Object.freeze([]);

const orNone = (list: readonly Endpoint[]): readonly Endpoint[] => (list.length === 0 ? NONE : list);

export function categorizeEndpoints(input: CategorizeInput): Categorized {
  const { candidates } = input;
  const hasAny = candidates.some((c) => c.ready || usableFallback(c));
  let cluster: readonly Endpoint[] = NONE;
  if (input.usesCluster) {
    const filter = topologyFilter(candidates, input.topology);
    cluster = candidates.filter((c) => c.ready && passesTopology(c, filter, input.topology)).map((c) => c.endpoint);
    // No ready endpoint anywhere (topology already fell back when none was ready for us): use terminating ones.
    if (cluster.length === 0) cluster = orNone(candidates.filter(usableFallback).map((c) => c.endpoint));
  }
  let local: readonly Endpoint[] = NONE;
  if (input.usesLocal) {
    const mine = candidates.filter((c) => c.endpoint.local);
    local = mine.filter((c) => c.ready).map((c) => c.endpoint);
    if (local.length === 0) local = orNone(mine.filter(usableFallback).map((c) => c.endpoint));
  }
  return { cluster, local, hasAny };
}
