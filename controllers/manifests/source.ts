// The --manifests source: Services, EndpointSlices and (at most) one Node from a file or a folder, watched for
// changes. A file that stops parsing keeps its last good content in effect: a typo never drops working rules.
// The first load hands over everything (replaceAll); a reload parses only the documents that changed and hands
// over only the objects that changed (see delta.ts), so an edit costs in proportion to the edit, not to the file.
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Logger } from '../../src/model/mode.ts';
import type { ClusterEvents, ClusterSource, ObjectKind } from '../../src/model/source.ts';
import { KproxyError } from '../../src/errors.ts';
import { fingerprint, inspectManifestPath, listManifestFiles, type ManifestPath } from './files.ts';
import { diffObjects, indexObjects } from './delta.ts';
import { nameOf, parseManifestDocuments, type DocumentCache, type ManifestObject, type ParsedManifest } from './parse.ts';

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
}

export interface ManifestContents {
  readonly services: readonly unknown[];
  readonly endpointSlices: readonly unknown[];
  readonly nodes: readonly unknown[];
}

interface FileState {
  readonly text: string;
  readonly parsed: ParsedManifest;
  /** Its documents by text, for the next version to reuse. */
  readonly cache: DocumentCache;
  /** Text of the last version that failed to parse, so the same error is reported once. */
  readonly failedText?: string;
}

export class ManifestSource implements ClusterSource {
  readonly description: string;
  private readonly options: ManifestSourceOptions;
  private readonly log: Logger;
  private target: ManifestPath | undefined;
  private events: ClusterEvents | undefined;
  private readonly files = new Map<string, FileState>();
  private current: ManifestContents = { services: [], endpointSlices: [], nodes: [] };
  /** The objects last handed over, by kind and reference; undefined until the first delivery. */
  private delivered: ReadonlyMap<string, ManifestObject> | undefined;
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

  /** The merged objects currently in effect. */
  contents(): ManifestContents {
    return this.current;
  }

  private merge(): ManifestContents {
    const byKind = (kind: ObjectKind): unknown[] =>
      [...this.files.values()].flatMap((f) => f.parsed.objects.filter((o) => o.kind === kind).map((o) => o.object));
    return { services: byKind('Service'), endpointSlices: byKind('EndpointSlice'), nodes: this.pickNode(byKind('Node')) };
  }

  /** The merged contents as the objects to hand over, in file order. */
  private entries(contents: ManifestContents): ManifestObject[] {
    const of = (kind: ObjectKind, objects: readonly unknown[]): ManifestObject[] => objects.map((object) => ({ kind, object }));
    return [...of('Service', contents.services), ...of('EndpointSlice', contents.endpointSlices), ...of('Node', contents.nodes)];
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
    let changed = this.delivered === undefined;
    for (const known of [...this.files.keys()]) {
      if (!files.includes(known)) {
        this.files.delete(known);
        this.log.info({ file: known }, 'Manifest file removed');
        changed = true;
      }
    }
    for (const file of files) if (this.loadFile(file)) changed = true;
    if (!changed) return;
    this.current = this.merge();
    this.deliver();
  }

  /** Read one file; returns whether what it contributes may have changed. */
  private loadFile(file: string): boolean {
    const previous = this.files.get(file);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        return this.files.delete(file); // removed between listing and reading
      }
      this.log.warn({ file, err: errorText(err) }, 'Cannot read manifest file; keeping its last good content');
      return false;
    }
    if (previous && (previous.text === text || previous.failedText === text)) return false;
    try {
      const { parsed, cache } = parseManifestDocuments(text, file, previous?.cache);
      for (const other of parsed.ignored) this.log.debug({ file, kind: other.kind, name: other.name }, 'Ignoring object of a kind kproxy does not use');
      this.files.set(file, { text, parsed, cache });
      return true;
    } catch (err) {
      const message = err instanceof KproxyError ? err.message : errorText(err);
      this.log.warn({ file, error: message }, previous
        ? 'Manifest file does not parse; keeping its last good content'
        : 'Manifest file does not parse; ignoring it until it is fixed');
      this.files.set(file, {
        text: previous?.text ?? '', parsed: previous?.parsed ?? { objects: [], ignored: [] }, cache: previous?.cache ?? new Map(), failedText: text,
      });
      return false;
    }
  }

  /** Hand the store what changed: everything the first time, then only the objects that changed. */
  private deliver(): void {
    const events = this.events;
    if (!events) return;
    const contents = this.contents();
    const next = indexObjects(this.entries(contents));
    const previous = this.delivered;
    this.delivered = next;
    if (previous === undefined) {
      events.replaceAll('Service', contents.services);
      events.replaceAll('EndpointSlice', contents.endpointSlices);
      events.replaceAll('Node', contents.nodes);
      this.log.debug({ services: contents.services.length, endpointSlices: contents.endpointSlices.length, nodes: contents.nodes.length }, 'Manifests loaded');
      return;
    }
    const { upserts, removals } = diffObjects(previous, next);
    for (const removal of removals) events.remove(removal.kind, removal.namespace, removal.name);
    for (const { kind, object } of upserts) events.upsert(kind, object);
    if (upserts.length + removals.length > 0) this.log.debug({ changed: upserts.length, removed: removals.length }, 'Manifests reloaded');
  }

  /** At most one Node: the one named like this node, else the first. */
  private pickNode(nodes: unknown[]): unknown[] {
    if (nodes.length <= 1) return nodes;
    const wanted = this.options.nodeName;
    const named = (n: unknown): string => (n !== null && typeof n === 'object' ? nameOf(n as Record<string, unknown>) : '');
    const match = wanted === undefined ? undefined : nodes.find((n) => named(n) === wanted);
    const chosen = match ?? nodes[0];
    this.log.warn({ nodes: nodes.map(named), using: named(chosen) }, 'Manifests hold several Nodes; using one');
    return [chosen];
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
export function readManifests(options: Pick<ManifestSourceOptions, 'path' | 'log' | 'nodeName'>): ManifestContents {
  return new ManifestSource({ ...options, watch: false }).loadNow();
}

function errorText(err: unknown): string {
  if (err instanceof Error) return (err as NodeJS.ErrnoException).code ?? err.message;
  return String(err);
}
