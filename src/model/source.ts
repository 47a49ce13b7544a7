// The seam between sources (controllers/: a manifest file, Kubernetes informers) and the cluster store.
// Sources hand over raw objects as they arrived; validation happens in src/compute, never in a source.

export type ObjectKind = 'Service' | 'EndpointSlice' | 'Node';

export interface ClusterEvents {
  /** An object was added or changed. */
  upsert(kind: ObjectKind, object: unknown): void;
  /** An object is gone. `namespace` is undefined for Nodes. */
  remove(kind: ObjectKind, namespace: string | undefined, name: string): void;
  /** A full list of one kind replaces everything known of it (initial list, relist, manifest reload). */
  replaceAll(kind: ObjectKind, objects: readonly unknown[]): void;
  /** The source has delivered its first complete state for every kind it serves (Node may stay absent). */
  synced(): void;
  /** Health signal: the source's view is stale (watch broken) or fresh again. */
  stale?(isStale: boolean, reason?: string): void;
}

export interface ClusterSource {
  /** One line for logs, e.g. "manifests /etc/kproxy/cluster.yaml" or "kube-apiserver https://…". */
  readonly description: string;
  start(events: ClusterEvents): Promise<void>;
  stop(): Promise<void>;
}
