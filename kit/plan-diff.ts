// What changed between two syncs, by plan identity. The store keeps an unchanged ServicePortPlan the same object
// between snapshots, so the plans that are not shared by both sides are exactly the changed ones: a partial sync
// compiles and writes only those, whatever the number of services. Pure.
import type { IPFamily, ServicePortPlan } from '../src/model/types.ts';

/**
 * A family's compiled state, kept lazily: the plans and a compile function, not the compiled objects (at 10k
 * services the ruleset is ~140 MiB; the plans are already in memory).
 */
export interface FamilySource<Compiled> {
  readonly family: IPFamily;
  /**
   * The family-wide inputs of per-service compilation (mark bit, cluster CIDRs, node IPs…) as one string: when it
   * differs, every service compiles differently and nothing can be reused.
   */
  readonly contextKey: string;
  /** This family's service ports, in order. */
  readonly services: readonly ServicePortPlan[];
  /** Compiles one of `services` (pure: the same plan object always gives the same result). */
  readonly compileService: (plan: ServicePortPlan) => Compiled;
}

export interface PlanChanges {
  /** Plans only `prev` has, or all of prev's when the context changed. */
  readonly removed: readonly ServicePortPlan[];
  /** Plans only `next` has, or all of next's when the context changed. */
  readonly added: readonly ServicePortPlan[];
}

/**
 * The plans to take out (compiled with `prev`) and to put in (compiled with `next`); O(services), no compiling.
 * Both lists are sorted by key (FamilyPlan.services), so one walk in step compares them without hashing 10k plan
 * objects into sets (that cost 4-100 ms per sync at 10k services under load, most of a one-endpoint sync); lists
 * out of order fall back to sets.
 */
export function changedPlans<C>(prev: FamilySource<C>, next: FamilySource<C>): PlanChanges {
  if (prev.family !== next.family) throw new Error(`${prev.family} ruleset diffed against ${next.family}`);
  if (prev.contextKey !== next.contextKey) return { removed: prev.services, added: next.services };
  return changedSorted(prev.services, next.services) ?? changedByIdentity(prev.services, next.services);
}

/** The walk in step; undefined when either list is not strictly sorted by key. */
function changedSorted(before: readonly ServicePortPlan[], after: readonly ServicePortPlan[]): PlanChanges | undefined {
  const removed: ServicePortPlan[] = [];
  const added: ServicePortPlan[] = [];
  let i = 0;
  let j = 0;
  let lastBefore = '';
  let lastAfter = '';
  while (i < before.length || j < after.length) {
    const b = before[i];
    const a = after[j];
    if (b !== undefined && a !== undefined && b === a) {
      if ((i > 0 && b.key <= lastBefore) || (j > 0 && a.key <= lastAfter)) return undefined;
      lastBefore = lastAfter = b.key;
      i++;
      j++;
      continue;
    }
    if (b !== undefined && (a === undefined || b.key <= a.key)) {
      if (i > 0 && b.key <= lastBefore) return undefined;
      lastBefore = b.key;
      removed.push(b);
      i++;
      continue;
    }
    if (a === undefined || (j > 0 && a.key <= lastAfter)) return undefined;
    lastAfter = a.key;
    added.push(a);
    j++;
  }
  return { removed, added };
}

function changedByIdentity(before: readonly ServicePortPlan[], after: readonly ServicePortPlan[]): PlanChanges {
  const kept = new Set<ServicePortPlan>();
  const known = new Set<ServicePortPlan>(before);
  for (const plan of after) if (known.has(plan)) kept.add(plan);
  return { removed: before.filter((plan) => !kept.has(plan)), added: after.filter((plan) => !kept.has(plan)) };
}
