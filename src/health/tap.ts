// Lets observers (health, metrics) see what a source tells the store, without the source knowing them:
// every call goes to the target first, then to each tap. A failing tap is ignored (best effort).
import type { ClusterEvents } from '../model/source.ts';

export type ClusterEventsTap = Partial<ClusterEvents>;

export function tapClusterEvents(target: ClusterEvents, ...taps: readonly ClusterEventsTap[]): ClusterEvents {
  const each = (call: (tap: ClusterEventsTap) => void): void => {
    for (const tap of taps) {
      try {
        call(tap);
      } catch {
        // Observers never break the data path.
      }
    }
  };
  return {
    upsert(kind, object) {
      target.upsert(kind, object);
      each((tap) => tap.upsert?.(kind, object));
    },
    remove(kind, namespace, name) {
      target.remove(kind, namespace, name);
      each((tap) => tap.remove?.(kind, namespace, name));
    },
    replaceAll(kind, objects) {
      target.replaceAll(kind, objects);
      each((tap) => tap.replaceAll?.(kind, objects));
    },
    synced() {
      target.synced();
      each((tap) => tap.synced?.());
    },
    stale(isStale, reason) {
      target.stale?.(isStale, reason);
      each((tap) => tap.stale?.(isStale, reason));
    },
  };
}
