// The --manifests source: Services, EndpointSlices and (at most) one Node from a file or a folder, watched for
// changes. A file that stops parsing keeps its last good content in effect: a typo never drops working rules.
// The first load hands over everything (replaceAll); a reload parses only the documents that changed (parse.ts) and
// hands over only the objects that changed (object-index.ts), so an edit costs in proportion to the edit.
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Logger } from '../../src/model/mode.ts';
import type { ClusterEvents, ClusterSource, ObjectKind } from '../../src/model/source.ts';
import { KproxyError, ManifestError } from '../../src/errors.ts';
import { fingerprint, inspectManifestPath, listManifestFiles, type ManifestPath } from './files.ts';
import { ObjectIndex, type Removal } from './object-index.ts';
import { ManifestDocuments, nameOf, type DocumentChange, type ManifestObject } from './parse.ts';

export interface ManifestSourceOptions {
  /** A YAML/JSON file or a folder of them. */
  readonly path: string;
  readonly log: Logger;
  /** This node's name: when the manifests hold several Nodes, only this one is delivered. */
  readonly nodeName?: string;
  /** Wait this long after the last file-system event before reloading (editors write in several steps). */
  readonly debounceMs?: number;
  /** Cheap stat-based check for changes fs.watch missed (network file systems, some container mounts). 0: off. */
  readonly pollIntervalMs?: number;
  /** false: load once, never watch (for `kproxy plan`). */
  readonly watch?: boolean;
  /**
   * true for one-shot commands (plan, trace): a file that cannot be read or parsed throws a ManifestError naming it
   * (and the line), instead of being skipped with a warning as the long-running agent does.
   */
  readonly strict?: boolean;
}

export interface ManifestContents {
  readonly services: readonly unknown[];
  readonly endpointSlices: readonly unknown[];
  readonly nodes: readonly unknown[];
}

interface FileState {
  readonly documents: ManifestDocuments;
  /** Some version of it parsed. */
  loaded: boolean;
  /** The last version that failed to parse, so the same error is reported once. */
  failed?: Buffer;
}

export class ManifestSource implements ClusterSource {
  readonly description: string;
  private readonly options: ManifestSourceOptions;
  private readonly log: Logger;
  private target: ManifestPath | undefined;
  private events: ClusterEvents | undefined;
  private readonly files = new Map<string, FileState>();
  /** The files in the order they apply (later ones win). */
  private order: readonly string[] = [];
  private readonly index: ObjectIndex;
  /** Everything went to the store once (replaceAll); since then only changes. */
  private delivered = false;
  private lastFingerprint = '';
  private watcher: FSWatcher | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private poller: NodeJS.Timeout | undefined;
  private missingReported = false;
  private stopped = false;

  constructor(options: ManifestSourceOptions) {
    this.options = options;
    this.log = options.log.child({ source: 'manifests' });
    this.description = `manifests ${options.path}`;
    this.index = new ObjectIndex(options.nodeName);
  }

  /** Load everything, deliver it, report synced, then watch. Throws when the path does not exist. */
  async start(events: ClusterEvents): Promise<void> {
    this.events = events;
    this.loadNow();
    events.synced();
    if (this.options.watch !== false) {
      this.startWatcher();
      const interval = this.options.pollIntervalMs ?? 2000;
      if (interval > 0) {
        this.poller = setInterval(() => this.poll(), interval);
        this.poller.unref();
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.watcher?.close();
    this.watcher = undefined;
    clearTimeout(this.debounce);
    clearInterval(this.poller);
  }

  /** Read the path now, synchronously, and return what is in effect. Throws when the path does not exist. */
  loadNow(): ManifestContents {
    this.target ??= inspectManifestPath(this.options.path);
    this.reload();
    return this.contents();
  }

  /** The objects in effect, in file order. */
  contents(): ManifestContents {
    const of = (kind: ObjectKind): unknown[] => {
      const objects: unknown[] = [];
      for (const entry of this.objects()) if (entry.kind === kind && this.index.isWinner(entry)) objects.push(entry.object);
      return objects;
    };
    const node = this.index.node();
    return { services: of('Service'), endpointSlices: of('EndpointSlice'), nodes: node ? [node.object] : [] };
  }

  private *objects(): Generator<ManifestObject> {
    for (const file of this.order) yield* this.files.get(file)?.documents.objects() ?? [];
  }

  /** Re-read the files now (also what the watcher and the poller call). */
  reload(): void {
    const target = this.target;
    if (!target || this.stopped) return;
    let files: string[];
    try {
      files = listManifestFiles(inspectManifestPath(target.root));
      this.missingReported = false;
    } catch (err) {
      if (!this.missingReported) {
        this.log.warn({ path: target.root, err: errorText(err) }, 'Manifests path unreadable; keeping the objects loaded before');
        this.missingReported = true;
      }
      return;
    }
    this.lastFingerprint = fingerprint(files);
    const removed: ManifestObject[] = [];
    const added: ManifestObject[] = [];
    for (const known of [...this.files.keys()]) {
      if (files.includes(known)) continue;
      for (const entry of this.files.get(known)?.documents.objects() ?? []) removed.push(entry);
      this.files.delete(known);
      this.log.info({ file: known }, 'Manifest file removed');
    }
    for (const file of files) {
      const change = this.loadFile(file);
      if (!change) continue;
      for (const document of change.removed) for (const entry of document.objects) removed.push(entry);
      for (const document of change.added) for (const entry of document.objects) added.push(entry);
    }
    const reordered = files.join('\0') !== this.order.join('\0');
    this.order = files;
    if (removed.length + added.length === 0 && !reordered && this.delivered) return;
    const nodeBefore = this.index.node();
    const changes = this.index.apply(removed, added, () => this.objects());
    const node = this.index.node();
    if (node !== nodeBefore && this.index.nodeCandidates(() => this.objects()) > 1) {
      this.log.warn({ using: node ? refOf(node) : '' }, 'Manifests hold several Nodes; using one');
    }
    this.deliver(changes.upserts, changes.removals);
  }

  /** Read one file; returns what changed in it (undefined: nothing, or it does not parse). */
  private loadFile(file: string): DocumentChange | undefined {
    let state = this.files.get(file);
    let bytes: Buffer;
    try {
      bytes = readFileSync(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        // removed between listing and reading
        if (state) this.files.delete(file);
        return state ? { removed: state.documents.documents(), added: [] } : undefined;
      }
      if (this.options.strict) throw new ManifestError('KP_ERR_MANIFEST_UNREADABLE', file, `cannot read manifest ${file}: ${errorText(err)}`, { cause: err });
      this.log.warn({ file, err: errorText(err) }, 'Cannot read manifest file; keeping its last good content');
      return undefined;
    }
    if (state?.failed?.equals(bytes)) return undefined;
    state ??= { documents: new ManifestDocuments(), loaded: false };
    try {
      const change = state.documents.update(bytes, file);
      state.failed = undefined;
      state.loaded = true;
      this.files.set(file, state);
      for (const document of change?.added ?? []) {
        for (const other of document.ignored) this.log.debug({ file, kind: other.kind, name: other.name }, 'Ignoring object of a kind kproxy does not use');
      }
      return change;
    } catch (err) {
      if (this.options.strict) throw err instanceof KproxyError ? err : new ManifestError('KP_ERR_MANIFEST_INVALID', file, `${file}: ${errorText(err)}`, { cause: err });
      const message = err instanceof KproxyError ? err.message : errorText(err);
      this.log.warn({ file, error: message }, state.loaded
        ? 'Manifest file does not parse; keeping its last good content'
        : 'Manifest file does not parse; ignoring it until it is fixed');
      state.failed = bytes;
      this.files.set(file, state);
      return undefined;
    }
  }

  /** Hand the store what changed: everything the first time, then only the objects that changed. */
  private deliver(upserts: readonly ManifestObject[], removals: readonly Removal[]): void {
    const events = this.events;
    if (!events) return;
    if (!this.delivered) {
      this.delivered = true;
      const contents = this.contents();
      events.replaceAll('Service', contents.services);
      events.replaceAll('EndpointSlice', contents.endpointSlices);
      events.replaceAll('Node', contents.nodes);
      this.log.debug({ services: contents.services.length, endpointSlices: contents.endpointSlices.length, nodes: contents.nodes.length }, 'Manifests loaded');
      return;
    }
    for (const removal of removals) events.remove(removal.kind, removal.namespace, removal.name);
    for (const { kind, object } of upserts) events.upsert(kind, object);
    if (upserts.length + removals.length > 0) this.log.debug({ changed: upserts.length, removed: removals.length }, 'Manifests reloaded');
  }

  private startWatcher(): void {
    const target = this.target;
    if (!target || this.stopped) return;
    // Watch the folder (for a single file: its parent) so that editors that save by rename keep being seen.
    const folder = target.isDirectory ? target.root : dirname(target.root);
    const onlyName = target.isDirectory ? undefined : basename(target.root);
    try {
      this.watcher = watch(folder, { persistent: false }, (_event, name) => {
        if (onlyName === undefined || name === null || name === onlyName) this.scheduleReload();
      });
      this.watcher.on('error', (err) => {
        this.log.debug({ err: errorText(err) }, 'Manifest watcher failed; relying on polling');
        this.watcher?.close();
        this.watcher = undefined;
      });
    } catch (err) {
      this.log.debug({ err: errorText(err) }, 'Cannot watch manifests; relying on polling');
    }
  }

  private scheduleReload(): void {
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => this.reload(), this.options.debounceMs ?? 200);
    this.debounce.unref();
  }

  private poll(): void {
    const target = this.target;
    if (!target) return;
    if (!this.watcher) this.startWatcher(); // the watched folder may have come back
    let files: string[];
    try {
      files = listManifestFiles(inspectManifestPath(target.root));
    } catch {
      files = [];
    }
    if (fingerprint(files) !== this.lastFingerprint) this.reload();
  }
}

/** Read the manifests once (for `kproxy plan` / `trace` and to learn the Node's name). */
export function readManifests(options: Pick<ManifestSourceOptions, 'path' | 'log' | 'nodeName' | 'strict'>): ManifestContents {
  return new ManifestSource({ ...options, watch: false }).loadNow();
}

const refOf = (entry: ManifestObject): string =>
  (entry.object !== null && typeof entry.object === 'object' ? nameOf(entry.object as Record<string, unknown>) : '');

function errorText(err: unknown): string {
  if (err instanceof Error) return (err as NodeJS.ErrnoException).code ?? err.message;
  return String(err);
}
