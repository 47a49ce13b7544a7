// Feeds the Node's eligibility to the health check straight from the source's events, so /healthz flips as
// soon as the Node is marked for deletion or removed, not only after the next sync; and whether the source's
// view is stale (reported in the health JSON).
import { parseNode } from '../compute/parse-node.ts';
import type { ClusterEvents } from '../model/source.ts';
import type { ProxyHealth } from './proxy-health.ts';

export function nodeEligibilityTap(health: Pick<ProxyHealth, 'setNodeEligible' | 'setSourceStale'>): Partial<ClusterEvents> {
  let seen = false;
  const observe = (raw: unknown): void => {
    const parsed = parseNode(raw);
    if (parsed.kind !== 'ok') return;
    seen = true;
    health.setNodeEligible(!parsed.value.shuttingDown);
  };
  return {
    upsert(kind, object) {
      if (kind === 'Node') observe(object);
    },
    remove(kind) {
      if (kind === 'Node' && seen) health.setNodeEligible(false);
    },
    replaceAll(kind, objects) {
      if (kind !== 'Node') return;
      const [node] = objects;
      if (node !== undefined) observe(node);
      // A Node that existed and is no longer listed was deleted; one never seen leaves start-up eligibility.
      else if (seen) health.setNodeEligible(false);
    },
    stale(isStale, reason) {
      health.setSourceStale(isStale, reason);
    },
  };
}
