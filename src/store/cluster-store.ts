// The cluster store: keeps the parsed Services, EndpointSlices and this node's Node, and produces DesiredState
// snapshots. Each object is parsed once when it arrives; per-service plans are memoised and only the services
// touched since the last snapshot are recomputed, so a sync at 10k services with one change stays cheap.
//
// Bad input never removes working rules: an invalid UPDATE of an object keeps its last good version, and
// each bad version is reported once through onInvalid.
import type { InvalidObject, ObjectNotice } from '../model/observe.ts';
import type { ClusterEvents, ObjectKind } from '../model/source.ts';
import type { DesiredState } from '../model/types.ts';
import { assembleDesiredState, compareStrings, serviceSortKey } from '../compute/desired-state.ts';
import type { ComputeOptions } from '../compute/options.ts';
import { parseEndpointSlice } from '../compute/parse-endpointslice.ts';
import { refOf, type Parsed } from '../compute/parse-meta.ts';
import { parseNode } from '../compute/parse-node.ts';
import { parseService } from '../compute/parse-service.ts';
import type { NodeRecord, ServiceRecord, SliceRecord } from '../compute/records.ts';
import { NO_PLANS, planService, type ServicePlans } from '../compute/service-plan.ts';
import { sameData } from './same-data.ts';

export interface ClusterStoreOptions {
  readonly compute: ComputeOptions;
  /** Called once per bad version of an object (also for slices/nodes of which only parts were dropped). */
  readonly onInvalid?: (invalid: InvalidObject) => void;
  /** Called once per version of an object read from legacy forms (used as kube-proxy reads it). */
  readonly onNotice?: (notice: ObjectNotice) => void;
}

export interface StoreCounts {
  readonly services: number;
  readonly skippedServices: number;
  readonly slices: number;
  readonly endpoints: number;
  readonly hasNode: boolean;
}

interface Stored<T> {
  /** metadata.resourceVersion of the last version seen (valid or not), to skip exact repeats cheaply. */
  version: string | undefined;
  /** Last good record; undefined when the object is not ours or never was valid. */
  record: T | undefined;
}

const versionOf = (raw: unknown): string | undefined => {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const metadata = (raw as { metadata?: unknown }).metadata;
  if (typeof metadata !== 'object' || metadata === null) return undefined;
  const version = (metadata as { resourceVersion?: unknown }).resourceVersion;
  return typeof version === 'string' && version !== '' ? version : undefined;
};

const sliceServiceKey = (slice: SliceRecord): string => `${slice.namespace}/${slice.serviceName}`;

export class ClusterStore implements ClusterEvents {
  readonly #options: ClusterStoreOptions;
  readonly #services = new Map<string, Stored<ServiceRecord>>();
  readonly #slices = new Map<string, Stored<SliceRecord>>();
  /** serviceKey → sliceName → slice; slices may arrive before their Service. */
  readonly #slicesByService = new Map<string, Map<string, SliceRecord>>();
  #node: Stored<NodeRecord> = { version: undefined, record: undefined };
  /** `${kind} ${ref}` → signature of the bad version already reported. */
  readonly #reported = new Map<string, string>();
  readonly #reportedUnnamed = new Set<string>();
  /** `${kind} ${ref}` → the notes of the version already reported. */
  readonly #noticed = new Map<string, string>();

  readonly #plans = new Map<string, ServicePlans>();
  readonly #dirty = new Set<string>();
  #allDirty = true;
  #orderStale = true;
  #order: string[] = [];
  #last: DesiredState | undefined;
  #changed = true;
  #synced = false;
  #stale: { isStale: boolean; reason?: string } = { isStale: false };
  readonly #listeners = new Set<() => void>();
  #batching = false;
  #batchChanged = false;

  constructor(options: ClusterStoreOptions) {
    this.#options = options;
  }

  /** True once the source delivered its first complete state. */
  get hasSynced(): boolean {
    return this.#synced;
  }

  get staleness(): { readonly isStale: boolean; readonly reason?: string } {
    return this.#stale;
  }

  /** Services whose plans will be recomputed by the next snapshot (all of them after a zone change). */
  get pendingServiceChanges(): number {
    return this.#allDirty ? this.#services.size : this.#dirty.size;
  }

  /** Subscribe to "the desired state may have changed"; returns the unsubscribe function. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  counts(): StoreCounts {
    let services = 0;
    for (const entry of this.#services.values()) if (entry.record) services++;
    let endpoints = 0;
    for (const entry of this.#slices.values()) endpoints += entry.record?.endpoints.length ?? 0;
    return {
      services, skippedServices: this.#services.size - services, slices: this.#slices.size, endpoints,
      hasNode: this.#node.record !== undefined,
    };
  }

  // ---- ClusterEvents ----

  upsert(kind: ObjectKind, object: unknown): void {
    if (this.#apply(kind, object)) this.#notify();
  }

  remove(kind: ObjectKind, namespace: string | undefined, name: string): void {
    const key = kind === 'Node' ? name : `${namespace === undefined || namespace === '' ? 'default' : namespace}/${name}`;
    this.#reported.delete(`${kind} ${key}`);
    this.#noticed.delete(`${kind} ${key}`);
    if (this.#removeKey(kind, key)) this.#notify();
  }

  replaceAll(kind: ObjectKind, objects: readonly unknown[]): void {
    let changed = false;
    const present = new Set(objects.map((object) => refOf(kind, object)));
    const known = kind === 'Service' ? [...this.#services.keys()] : kind === 'EndpointSlice' ? [...this.#slices.keys()]
      : this.#node.record || this.#node.version !== undefined ? [this.#options.compute.nodeName] : [];
    for (const key of known) {
      if (!present.has(key)) {
        this.#reported.delete(`${kind} ${key}`);
        this.#noticed.delete(`${kind} ${key}`);
        if (this.#removeKey(kind, key)) changed = true;
      }
    }
    for (const object of objects) if (this.#apply(kind, object)) changed = true;
    if (changed) this.#notify();
  }

  synced(): void {
    const first = !this.#synced;
    this.#synced = true;
    if (first) this.#notify();
  }

  stale(isStale: boolean, reason?: string): void {
    this.#stale = reason === undefined ? { isStale } : { isStale, reason };
  }

  /** Apply several events and notify listeners once at the end (e.g. a manifest reload). */
  batch(body: () => void): void {
    if (this.#batching) return body();
    this.#batching = true;
    this.#batchChanged = false;
    try {
      body();
    } finally {
      this.#batching = false;
      if (this.#batchChanged) this.#notify();
    }
  }

  // ---- snapshot ----

  /** The current desired state. Unchanged since last time → the same object; otherwise only dirty services are replanned. */
  snapshot(): DesiredState {
    if (!this.#changed && this.#last) return this.#last;
    const context = { nodeName: this.#options.compute.nodeName, zone: this.#node.record?.zone, masqueradeAll: this.#options.compute.masqueradeAll };
    const keys = this.#allDirty ? new Set([...this.#services.keys(), ...this.#plans.keys()]) : this.#dirty;
    for (const key of keys) {
      const service = this.#services.get(key)?.record;
      if (service === undefined) {
        if (this.#plans.delete(key)) this.#orderStale = true;
        continue;
      }
      const group = this.#slicesByService.get(key);
      const slices = group ? [...group.values()].sort((a, b) => compareStrings(a.name, b.name)) : [];
      if (!this.#plans.has(key)) this.#orderStale = true;
      this.#plans.set(key, planService(service, slices, context));
    }
    this.#dirty.clear();
    this.#allDirty = false;
    if (this.#orderStale) {
      this.#order = [...this.#plans.keys()]
        .map((key) => {
          const service = this.#services.get(key)?.record;
          return [service ? serviceSortKey(service.namespace, service.name) : key, key] as const;
        })
        .sort((a, b) => compareStrings(a[0], b[0]))
        .map(([, key]) => key);
      this.#orderStale = false;
    }
    const plans = this.#plans;
    const ordered = this.#order.map((key) => plans.get(key) ?? NO_PLANS);
    this.#last = assembleDesiredState({ options: this.#options.compute, node: this.#node.record, plans: ordered });
    this.#changed = false;
    return this.#last;
  }

  // ---- internals ----

  #notify(): void {
    this.#changed = true;
    if (this.#batching) {
      this.#batchChanged = true;
      return;
    }
    for (const listener of this.#listeners) listener();
  }

  #markDirty(serviceKey: string): void {
    this.#dirty.add(serviceKey);
    this.#changed = true;
  }

  /** Report a bad version once; a repeat of the same bad version stays quiet. */
  #report(invalid: InvalidObject, version: string | undefined): void {
    if (invalid.ref === '<unnamed>') {
      // Nameless garbage has no identity to track per version: report each distinct reason once (bounded).
      const signature = `${invalid.kind}|${invalid.reason}`;
      if (this.#reportedUnnamed.has(signature)) return;
      if (this.#reportedUnnamed.size >= 1000) this.#reportedUnnamed.clear();
      this.#reportedUnnamed.add(signature);
      this.#options.onInvalid?.(invalid);
      return;
    }
    const id = `${invalid.kind} ${invalid.ref}`;
    const signature = `${version ?? ''}|${invalid.reason}`;
    if (this.#reported.get(id) === signature) return;
    this.#reported.set(id, signature);
    this.#options.onInvalid?.(invalid);
  }

  /** Tell about legacy forms once per distinct set of notes of an object. */
  #notice(kind: ObjectKind, ref: string, notes: readonly string[] | undefined): void {
    const id = `${kind} ${ref}`;
    if (notes === undefined || notes.length === 0) {
      this.#noticed.delete(id);
      return;
    }
    const signature = notes.join('\n');
    if (this.#noticed.get(id) === signature) return;
    this.#noticed.set(id, signature);
    this.#options.onNotice?.({ kind, ref, notes });
  }

  /** Returns whether anything the desired state depends on changed. */
  #apply(kind: ObjectKind, object: unknown): boolean {
    if (kind === 'Service') return this.#applyService(object);
    if (kind === 'EndpointSlice') return this.#applySlice(object);
    return this.#applyNode(object);
  }

  /** Common bookkeeping of a parse result: reports, and tells what record (if any) to keep. */
  #digest<T>(kind: ObjectKind, parsed: Parsed<T>, version: string | undefined, previous: T | undefined): { keep: T | undefined; key: string } {
    if (parsed.kind === 'invalid') {
      this.#report(parsed.invalid, version);
      // An invalid update keeps the last good version: bad input must not remove working rules.
      return { keep: previous, key: parsed.invalid.ref };
    }
    const key = parsed.kind === 'skipped' ? parsed.ref : this.#keyOf(kind, parsed.value);
    if (parsed.kind === 'ok' && parsed.problem !== undefined) this.#report({ kind, ref: key, reason: parsed.problem }, version);
    else this.#reported.delete(`${kind} ${key}`);
    this.#notice(kind, key, parsed.kind === 'ok' ? parsed.notes : undefined);
    return { keep: parsed.kind === 'ok' ? parsed.value : undefined, key };
  }

  #keyOf(kind: ObjectKind, record: unknown): string {
    const { namespace, name } = record as { namespace?: string; name: string };
    return kind === 'Node' ? name : `${namespace ?? 'default'}/${name}`;
  }

  #applyService(object: unknown): boolean {
    const version = versionOf(object);
    const ref = refOf('Service', object);
    const stored = this.#services.get(ref);
    if (stored && version !== undefined && stored.version === version) return false;
    const parsed = parseService(object, { proxyName: this.#options.compute.proxyName });
    const { keep, key } = this.#digest('Service', parsed, version, stored?.record);
    if (key === '<unnamed>') return false;
    const entry = this.#services.get(key);
    if (entry === undefined) {
      if (keep === undefined && parsed.kind === 'invalid') return false;
      this.#services.set(key, { version, record: keep });
      if (keep === undefined) return false;
      this.#markDirty(key);
      return true;
    }
    entry.version = version;
    if (sameData(entry.record, keep)) return false;
    entry.record = keep;
    this.#markDirty(key);
    return true;
  }

  #applySlice(object: unknown): boolean {
    const version = versionOf(object);
    const ref = refOf('EndpointSlice', object);
    const stored = this.#slices.get(ref);
    if (stored && version !== undefined && stored.version === version) return false;
    const parsed = parseEndpointSlice(object, { nodeHints: this.#options.compute.nodeHints !== false });
    const { keep, key } = this.#digest('EndpointSlice', parsed, version, stored?.record);
    if (key === '<unnamed>') return false;
    const entry = this.#slices.get(key);
    if (entry === undefined && keep === undefined) return false;
    if (entry !== undefined) {
      entry.version = version;
      if (sameData(entry.record, keep)) return false;
    }
    const previous = entry?.record;
    if (previous) this.#unindexSlice(previous);
    if (keep === undefined) this.#slices.delete(key);
    else {
      this.#slices.set(key, { version, record: keep });
      this.#indexSlice(keep);
    }
    return true;
  }

  #indexSlice(slice: SliceRecord): void {
    const serviceKey = sliceServiceKey(slice);
    let group = this.#slicesByService.get(serviceKey);
    if (!group) this.#slicesByService.set(serviceKey, (group = new Map()));
    group.set(slice.name, slice);
    this.#markDirty(serviceKey);
  }

  #unindexSlice(slice: SliceRecord): void {
    const serviceKey = sliceServiceKey(slice);
    const group = this.#slicesByService.get(serviceKey);
    group?.delete(slice.name);
    if (group?.size === 0) this.#slicesByService.delete(serviceKey);
    this.#markDirty(serviceKey);
  }

  #applyNode(object: unknown): boolean {
    const name = refOf('Node', object);
    // Only this node matters; other Nodes (if a source sends them) are ignored unparsed.
    if (name !== '<unnamed>' && name !== this.#options.compute.nodeName) return false;
    const version = versionOf(object);
    if (this.#node.record && version !== undefined && this.#node.version === version) return false;
    const parsed = parseNode(object);
    const { keep } = this.#digest('Node', parsed, version, this.#node.record);
    if (name === '<unnamed>') return false;
    return this.#setNode(keep, version);
  }

  #setNode(record: NodeRecord | undefined, version: string | undefined): boolean {
    const previous = this.#node.record;
    this.#node = { version, record };
    if (sameData(previous, record)) return false;
    // Plans depend on the node only through its zone (topology); addresses only change the family frame.
    if (previous?.zone !== record?.zone) this.#allDirty = true;
    this.#changed = true;
    return true;
  }

  #removeKey(kind: ObjectKind, key: string): boolean {
    if (kind === 'Service') {
      const entry = this.#services.get(key);
      if (!entry) return false;
      this.#services.delete(key);
      if (!entry.record) return false;
      this.#markDirty(key);
      return true;
    }
    if (kind === 'EndpointSlice') {
      const entry = this.#slices.get(key);
      if (!entry) return false;
      this.#slices.delete(key);
      if (!entry.record) return false;
      this.#unindexSlice(entry.record);
      return true;
    }
    if (key !== this.#options.compute.nodeName) return false;
    return this.#setNode(undefined, undefined);
  }
}
