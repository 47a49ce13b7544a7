// From what the kernel holds to what it should hold, as one transaction. Pure.
// - partial: the table was written by this process from `prev`; only the service ports whose plan changed are
//   compiled again, and only their frontends' elements (plus shared chains/maps that gain their first or lose
//   their last user) change. The size depends on what changed, never on the number of services.
// - full: the table as read back from the kernel (netlink/read.ts) against the whole desired table: what is
//   missing is added, what differs is replaced, what is stale is deleted; nothing is flushed wholesale, so
//   traffic never sees a gap. A table whose set layouts or base chains no longer match is rebuilt in the same
//   transaction.
import type { CompiledFamilies } from '../../kit/family-sync.ts';
import { changedPlans, type FamilySource } from '../../kit/plan-diff.ts';
import type { IPFamily, ServicePortPlan } from '../../src/model/types.ts';
import { assemble, balancerChain, balancerChainName, balancerMap, balancerMapSpec, compileService, familyContext, type Assembled, type Assembly, type Balancer, type FamilyContext, type FrontendPart, type ServiceContribution } from './compile.ts';
import type { KernelChain, KernelSet } from './netlink/read.ts';
import { setMatches } from './netlink/read.ts';
import { ruleComment, ruleText } from './render.ts';
import { elementKey, elementValue, type Chain, type Element, type NftFamily, type SetSpec, type Table } from './ruleset.ts';
import { SETS, TABLE, TABLE_COMMENT } from './names.ts';
import type { Transaction } from './transaction.ts';
import type { DesiredState } from '../../src/model/types.ts';

/** A family's desired table, kept as plans (compiled per service on demand: the kit's FamilySource). */
export interface NftSource extends FamilySource<ServiceContribution> {
  readonly ctx: FamilyContext;
}

export function compileSource(state: DesiredState, family: IPFamily): NftSource {
  const ctx = familyContext(state, family);
  return { family, contextKey: ctx.key, services: state.families[family].services, ctx, compileService: (plan) => compileService(plan, ctx) };
}

/** The mode's compiled form (what `compile` hands to sync, plan and trace): one source per family. */
export function compileFamilies(state: DesiredState): CompiledFamilies<NftSource> {
  return { state, families: { IPv4: compileSource(state, 'IPv4'), IPv6: compileSource(state, 'IPv6') } };
}

/** What this process last wrote to one family's table: the source, and the indexes a partial diff needs. */
export interface Mirror {
  source: NftSource;
  /** Frontend id → service keys claiming it, sorted (the first wins). */
  readonly claims: Map<string, string[]>;
  readonly plans: Map<string, ServicePortPlan>;
  readonly balancers: Map<string, { balancer: Balancer; uses: number }>;
  readonly hairpin: Map<string, number>;
  /** Every set of the table, by name (transactions that add elements need their layout). */
  readonly sets: Map<string, SetSpec>;
  /**
   * Chains and sets nothing refers to any more, by the time (ms) they were let go: they stay a while before they
   * are deleted (see LINGER_MS), and are reused if wanted again meanwhile.
   */
  readonly lingering: Map<string, number>;
  readonly lingeringSets: Map<string, number>;
}

/**
 * How long an unreferenced chain (and its set) stays before it is deleted. Kernels before 6.2 release a chain's
 * reference from a map element only a little after the transaction that deleted the element, and refuse to delete
 * the chain in that same transaction (upstream kube-proxy waits likewise).
 */
export const LINGER_MS = 1000;

export function mirrorOf(source: NftSource, assembled: Assembly, lingering: Lingering = { chains: [], sets: [] }, now = 0): Mirror {
  return {
    source, claims: assembled.claims, plans: new Map(source.services.map((p) => [p.key, p])),
    balancers: assembled.balancerUses, hairpin: assembled.hairpinUses, sets: new Map(assembled.sets),
    lingering: new Map(lingering.chains.map((name) => [name, now])), lingeringSets: new Map(lingering.sets.map((name) => [name, now])),
  };
}

/** Stale chains and sets a full transaction leaves for later (see LINGER_MS). */
export interface Lingering {
  readonly chains: readonly string[];
  readonly sets: readonly string[];
}

export function assembleSource(source: NftSource): Assembled {
  return assemble(source.ctx, source.services, source.compileService);
}

/** Element changes of one partial transaction, by set and key: what the kernel has (before) and must have. */
class ElementChanges {
  readonly #sets = new Map<string, Map<string, { before?: Element; after?: Element }>>();

  #entry(set: string, e: Element): { before?: Element; after?: Element } {
    let keys = this.#sets.get(set);
    if (!keys) this.#sets.set(set, keys = new Map());
    const key = elementKey(e);
    let entry = keys.get(key);
    if (!entry) keys.set(key, entry = {});
    return entry;
  }

  before(set: string, e: Element): void { this.#entry(set, e).before = e; }
  after(set: string, e: Element): void { this.#entry(set, e).after = e; }

  /** Deletions (skipping sets that are deleted whole) and additions. */
  result(deletedSets: ReadonlySet<string>): { deletes: Map<string, string[]>; adds: Map<string, Element[]> } {
    const deletes = new Map<string, string[]>();
    const adds = new Map<string, Element[]>();
    for (const [set, keys] of this.#sets) {
      for (const [key, { before, after }] of keys) {
        if (before === after) continue;
        if (before !== undefined && !deletedSets.has(set)) push(deletes, set, key);
        if (after !== undefined) push(adds, set, after);
      }
    }
    return { deletes, adds };
  }
}

function push<T>(map: Map<string, T[]>, set: string, item: T): void {
  let list = map.get(set);
  if (!list) map.set(set, list = []);
  list.push(item);
}

/**
 * What turns a set holding `have` into one holding `want` (both element texts): keys to delete (gone, or whose
 * value changes) and elements to add. Sorts both (in place) instead of indexing them: at 10k services a map holds
 * ~100k elements, and two sorted arrays cost far less memory than two hash maps.
 */
function setDifference(have: string[], want: string[]): { deletes: string[]; adds: Element[] } {
  have.sort();
  want.sort();
  const deletes: string[] = [];
  const adds: Element[] = [];
  const wantKeys = new Set<string>();
  let i = 0;
  let j = 0;
  while (i < have.length || j < want.length) {
    const h = have[i];
    const w = want[j];
    if (h !== undefined && h === w) { i++; j++; continue; }
    if (w === undefined || (h !== undefined && h < w)) { deletes.push(elementKey(h ?? '')); i++; continue; }
    adds.push(w);
    wantKeys.add(elementKey(w));
    j++;
  }
  // A key whose value changes is deleted and added again; a deletion of a key that stays is only the old value's.
  return { deletes: [...new Set(deletes)], adds: adds.filter((e) => wantKeys.has(elementKey(e))) };
}

const byName = <T extends { name: string }>(list: readonly T[]): Map<string, T> => new Map(list.map((x) => [x.name, x]));
const chainText = (chain: Chain, family: NftFamily): string => chain.rules.map((r) => ruleText(r, family)).join('\n');

function insertSorted(list: string[], key: string): void {
  let i = 0;
  while (i < list.length && (list[i] ?? '') < key) i++;
  if (list[i] !== key) list.splice(i, 0, key);
}

/**
 * The transaction from `mirror` (what this process wrote) to `next` (same family context), updating `mirror` to
 * describe `next`; `now` (ms) times lingering objects. The caller discards the mirror if the transaction fails.
 */
export function partialTransaction(mirror: Mirror, next: NftSource, now = 0): Transaction {
  const prev = mirror.source;
  const family = next.ctx.family;
  const { removed, added } = changedPlans(prev, next);
  const oldParts = new Map<string, ServiceContribution>(removed.map((p) => [p.key, prev.compileService(p)]));
  const newParts = new Map<string, ServiceContribution>(added.map((p) => [p.key, next.compileService(p)]));

  const touched = new Set<string>();
  for (const parts of [oldParts, newParts]) for (const part of parts.values()) for (const f of part.frontends) touched.add(f.id);
  const frontendOf = (part: ServiceContribution | undefined, id: string): FrontendPart | undefined => part?.frontends.find((f) => f.id === id);
  const unchanged = new Map<string, ServiceContribution>();
  const contribution = (key: string | undefined, parts: Map<string, ServiceContribution>, source: NftSource): ServiceContribution | undefined => {
    if (key === undefined) return undefined;
    const own = parts.get(key);
    if (own) return own;
    let part = unchanged.get(key);
    const plan = mirror.plans.get(key);
    if (!part && plan) unchanged.set(key, part = source.compileService(plan));
    return part;
  };
  const oldWinners = new Map<string, FrontendPart | undefined>();
  for (const id of touched) oldWinners.set(id, frontendOf(contribution(mirror.claims.get(id)?.[0], oldParts, prev), id));

  // Claims and plans as they are after this change.
  for (const [key, part] of oldParts) {
    for (const f of part.frontends) {
      const list = mirror.claims.get(f.id);
      if (!list) continue;
      const i = list.indexOf(key);
      if (i >= 0) list.splice(i, 1);
      if (list.length === 0) mirror.claims.delete(f.id);
    }
    mirror.plans.delete(key);
  }
  for (const plan of added) mirror.plans.set(plan.key, plan);
  for (const [key, part] of newParts) {
    for (const f of part.frontends) {
      let list = mirror.claims.get(f.id);
      if (!list) mirror.claims.set(f.id, list = []);
      insertSorted(list, key);
    }
  }

  const changes = new ElementChanges();
  const balancerBefore = new Map<string, number>();
  const useBalancer = (balancer: Balancer, delta: number): void => {
    const name = balancerChainName(balancer);
    let use = mirror.balancers.get(name);
    if (!balancerBefore.has(name)) balancerBefore.set(name, use?.uses ?? 0);
    if (!use) mirror.balancers.set(name, use = { balancer, uses: 0 });
    use.uses += delta;
  };
  for (const id of touched) {
    const before = oldWinners.get(id);
    const after = frontendOf(contribution(mirror.claims.get(id)?.[0], newParts, next), id);
    if (before === after) continue;
    for (const { set, element } of before?.elements ?? []) changes.before(set, element);
    for (const { set, element } of after?.elements ?? []) changes.after(set, element);
    for (const b of before?.balancers ?? []) useBalancer(b, -1);
    for (const b of after?.balancers ?? []) useBalancer(b, +1);
  }
  // The balancers a service's own chains fall back to, whichever frontends it wins.
  for (const part of oldParts.values()) for (const b of part.balancers) useBalancer(b, -1);
  for (const part of newParts.values()) for (const b of part.balancers) useBalancer(b, +1);

  // Hairpin keys are counted per service that has them (not per frontend: conflicts do not matter there).
  const hairpinBefore = new Map<string, number>();
  const useHairpin = (key: string, delta: number): void => {
    const count = mirror.hairpin.get(key) ?? 0;
    if (!hairpinBefore.has(key)) hairpinBefore.set(key, count);
    if (count + delta <= 0) mirror.hairpin.delete(key);
    else mirror.hairpin.set(key, count + delta);
  };
  for (const part of oldParts.values()) for (const key of part.hairpin) useHairpin(key, -1);
  for (const part of newParts.values()) for (const key of part.hairpin) useHairpin(key, +1);
  for (const [key, count] of hairpinBefore) {
    if (count > 0) changes.before(SETS.hairpin, key);
    if ((mirror.hairpin.get(key) ?? 0) > 0) changes.after(SETS.hairpin, key);
  }

  // Shared balancers (a chain and its map) that gained their first or lost their last user. Objects let go linger
  // (see LINGER_MS); wanted again, a lingering chain is refilled and a lingering set reused.
  const addSets: SetSpec[] = [];
  const addChains: Chain[] = [];
  const replaceChains: Chain[] = [];
  const deleteChains: string[] = [];
  const deleteSets: string[] = [];
  const wantChain = (chain: Chain): void => {
    if (mirror.lingering.delete(chain.name)) replaceChains.push(chain);
    else addChains.push(chain);
  };
  const wantSet = (set: SetSpec): void => {
    if (!mirror.lingeringSets.delete(set.name)) addSets.push(set);
    else mirror.sets.set(set.name, set);
  };
  const letGo = (name: string): void => { mirror.lingering.set(name, now); };
  const letGoSet = (name: string): void => { mirror.lingeringSets.set(name, now); };
  const mapUses = (map: string, when: 'before' | 'after'): number => {
    let uses = 0;
    for (const [name, use] of mirror.balancers) {
      if (balancerMap(use.balancer) === map) uses += when === 'before' ? balancerBefore.get(name) ?? use.uses : use.uses;
    }
    return uses;
  };
  const maps = new Map<string, Balancer>();
  for (const name of balancerBefore.keys()) {
    const use = mirror.balancers.get(name);
    if (use) maps.set(balancerMap(use.balancer), use.balancer);
  }
  for (const [map, balancer] of maps) {
    const before = mapUses(map, 'before');
    const after = mapUses(map, 'after');
    if (before === 0 && after > 0) wantSet(balancerMapSpec(balancer));
    else if (before > 0 && after === 0) letGoSet(map);
  }
  for (const [name, before] of balancerBefore) {
    const use = mirror.balancers.get(name);
    if (!use) continue;
    if (before === 0 && use.uses > 0) wantChain(balancerChain(use.balancer, next.ctx));
    else if (before > 0 && use.uses === 0) letGo(name);
    if (use.uses === 0) mirror.balancers.delete(name);
  }

  // The service ports' own objects (session affinity).
  const oldChains = byName([...oldParts.values()].flatMap((p) => p.chains));
  const newChains = byName([...newParts.values()].flatMap((p) => p.chains));
  for (const [name, chain] of newChains) {
    const old = oldChains.get(name);
    if (!old) wantChain(chain);
    else if (chainText(old, family) !== chainText(chain, family)) replaceChains.push(chain);
  }
  for (const name of oldChains.keys()) if (!newChains.has(name)) letGo(name);
  const oldSets = byName([...oldParts.values()].flatMap((p) => p.sets));
  const newSets = byName([...newParts.values()].flatMap((p) => p.sets));
  for (const [name, set] of newSets) if (!oldSets.has(name)) wantSet(set);
  for (const name of oldSets.keys()) if (!newSets.has(name)) letGoSet(name);

  // What has lingered long enough goes now: chains first, then sets no lingering chain may still use.
  for (const [name, since] of mirror.lingering) {
    if (now - since < LINGER_MS) continue;
    deleteChains.push(name);
    mirror.lingering.delete(name);
  }
  if (mirror.lingering.size === 0) {
    for (const [name, since] of mirror.lingeringSets) {
      if (now - since < LINGER_MS) continue;
      deleteSets.push(name);
      mirror.lingeringSets.delete(name);
    }
  }

  mirror.source = next;
  for (const set of addSets) mirror.sets.set(set.name, set);
  for (const name of deleteSets) mirror.sets.delete(name);
  const { deletes, adds } = changes.result(new Set(deleteSets));
  return { family, table: TABLE, addSets, addChains, replaceChains, flushSets: [], deleteElements: deletes, addElements: adds, deleteChains, deleteSets };
}

// --- full ----------------------------------------------------------------------------------------------------

/** kproxy's table as the kernel holds it (elements only of the sets kproxy compares). */
export interface KernelView {
  readonly chains: ReadonlyMap<string, KernelChain>;
  readonly sets: ReadonlyMap<string, KernelSet>;
  /**
   * The element texts of one set the kernel holds in `spec`'s layout (read when asked: the full diff holds one set's
   * at a time, not the ~200k of a 10k-service table). The full diff sorts the array in place.
   */
  elements(spec: SetSpec): Promise<string[]> | string[];
}

/** Everything from nothing (`rebuild`: after deleting what is there, in the same transaction). */
function createAll(desired: Table, rebuild: boolean): Transaction {
  return {
    family: desired.family, table: desired.name, ensureTable: { comment: TABLE_COMMENT }, ...(rebuild ? { deleteTable: true } : {}),
    addSets: desired.sets, addChains: desired.chains, replaceChains: [], flushSets: [],
    deleteElements: new Map(), addElements: desired.elements, deleteChains: [], deleteSets: [],
  };
}

/**
 * The transaction that makes the kernel's table (`kernel`, undefined when absent) hold `desired`.
 * `expressions`: the expression digests this process saw in its own chains after its last write; a chain whose
 * rules now differ from them was edited by someone else even if its comments still match. Stale chains that an
 * element deleted by this very transaction still refers to linger (see LINGER_MS), with every stale set: `lingering`.
 */
export async function fullTransaction(desired: Table, kernel: KernelView | undefined, expressions?: ReadonlyMap<string, readonly string[]>): Promise<Transaction> {
  return (await fullDiff(desired, kernel, expressions)).tx;
}

export async function fullDiff(desired: Table, kernel: KernelView | undefined, expressions?: ReadonlyMap<string, readonly string[]>): Promise<{ tx: Transaction; lingering: Lingering }> {
  const none: Lingering = { chains: [], sets: [] };
  if (!kernel) return { tx: createAll(desired, false), lingering: none };
  const family = desired.family;
  for (const set of desired.sets) {
    const k = kernel.sets.get(set.name);
    if (k && !setMatches(k, set, family)) return { tx: createAll(desired, true), lingering: none };
  }
  for (const chain of desired.chains) {
    const k = kernel.chains.get(chain.name);
    if (!k) continue;
    const want = chain.base;
    const have = k.base;
    if ((want === undefined) !== (have === undefined)) return { tx: createAll(desired, true), lingering: none };
    if (want && have && (want.type !== have.type || want.hook !== have.hook || want.priority !== have.priority || have.policy !== 'accept')) {
      return { tx: createAll(desired, true), lingering: none };
    }
  }
  const addSets = desired.sets.filter((s) => !kernel.sets.has(s.name));
  const addChains = desired.chains.filter((c) => !kernel.chains.has(c.name));
  const replaceChains = desired.chains.filter((c) => {
    const k = kernel.chains.get(c.name);
    if (!k) return false;
    const comments = c.rules.map((r) => ruleComment(r, family));
    if (k.rules.length !== comments.length || k.rules.some((r, i) => r.comment !== comments[i])) return true;
    const seen = expressions?.get(c.name);
    return seen !== undefined && (seen.length !== k.rules.length || k.rules.some((r, i) => r.expressions !== seen[i]));
  });
  const deleteElements = new Map<string, string[]>();
  const addElements = new Map<string, Element[]>();
  const flushSets: string[] = [];
  // Chains an element this transaction deletes still points at stay for now (see LINGER_MS).
  const pointedAt = new Set<string>();
  for (const set of desired.sets) {
    if (set.dynamic) continue;
    const want = [...(desired.elements.get(set.name) ?? [])];
    const have = kernel.sets.has(set.name) ? await kernel.elements(set) : [];
    const { deletes, adds } = setDifference(have, want);
    if (deletes.length === 0 && adds.length === 0) continue;
    if (set.data === 'verdict' && deletes.length > 0) {
      const deleted = new Set(deletes);
      for (const e of have) {
        const value = elementValue(e);
        if (value && deleted.has(elementKey(e)) && /^(goto|jump) /.test(value)) pointedAt.add(value.slice(value.indexOf(' ') + 1));
      }
    }
    // Interval sets are small: rewritten whole (their ranges need not be split into the kernel's start/end pairs).
    if (set.flags?.includes('interval') && kernel.sets.has(set.name)) {
      flushSets.push(set.name);
      addElements.set(set.name, want);
      continue;
    }
    if (deletes.length > 0) deleteElements.set(set.name, deletes);
    if (adds.length > 0) addElements.set(set.name, adds);
  }
  const wantedChains = new Set(desired.chains.map((c) => c.name));
  const wantedSets = new Set(desired.sets.map((s) => s.name));
  const stale = [...kernel.chains.keys()].filter((name) => !wantedChains.has(name));
  const staleSets = [...kernel.sets.keys()].filter((name) => !wantedSets.has(name));
  const deleteChains = stale.filter((name) => !pointedAt.has(name));
  const lingeringChains = stale.filter((name) => pointedAt.has(name));
  const deleteSets = lingeringChains.length === 0 ? staleSets : [];
  const tx: Transaction = { family, table: TABLE, addSets, addChains, replaceChains, flushSets, deleteElements, addElements, deleteChains, deleteSets };
  return { tx, lingering: { chains: lingeringChains, sets: lingeringChains.length === 0 ? [] : staleSets } };
}
