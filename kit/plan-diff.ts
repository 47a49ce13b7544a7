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

/** The plans to take out (compiled with `prev`) and to put in (compiled with `next`); O(services), no compiling. */
export function changedPlans<C>(prev: FamilySource<C>, next: FamilySource<C>): PlanChanges {
  if (prev.family !== next.family) throw new Error(`${prev.family} ruleset diffed against ${next.family}`);
  const kept = new Set<ServicePortPlan>();
  if (prev.contextKey === next.contextKey) {
    const before = new Set<ServicePortPlan>(prev.services);
    for (const plan of next.services) if (before.has(plan)) kept.add(plan);
  }
  return {
    removed: prev.services.filter((plan) => !kept.has(plan)),
    added: next.services.filter((plan) => !kept.has(plan)),
  };
}
