// One kind's list+watch loop. It replaces client-node's ListWatch, which stops for good after most errors:
// here every failure leads to a restart after a jittered, growing delay (one loop per kind, so never two
// restarts at once), a 410 Gone leads to a fresh list, and a watchdog restarts a watch that went silent
// (the apiserver sends bookmarks about once a minute, so a healthy watch is never silent for long).
import type { ObjectKind } from '../../src/model/source.ts';
import type { Clock, TimerHandle } from '../../src/model/clock.ts';
import { Backoff, type BackoffOptions } from './backoff.ts';
import { isGone, type KubeApi, type WatchHandle } from './client.ts';
import { objectRef, resourceVersionOf } from './slim.ts';
import type { ItemDecoder } from './protobuf.ts';

export interface ReflectorSink {
  replaceAll(objects: readonly unknown[]): void;
  upsert(object: unknown): void;
  remove(namespace: string | undefined, name: string): void;
}

export type RestartReason = 'error' | 'gone' | 'silent';

export interface ReflectorHooks {
  /** The first complete list was delivered. */
  listed?(): void;
  /** The view became stale (a list or watch failed) or fresh again (a list or watch succeeded). */
  stale?(isStale: boolean, reason?: string): void;
  /** The list+watch is being restarted. */
  restarted?(reason: RestartReason, detail: string): void;
}

export interface ReflectorOptions {
  readonly kind: ObjectKind;
  /** Collection path, e.g. /api/v1/services. */
  readonly path: string;
  readonly labelSelector?: string;
  readonly fieldSelector?: string;
  readonly api: KubeApi;
  readonly slim: (object: unknown) => unknown;
  /** The kind's protobuf decoder (protobuf.ts): lists are then asked for in protobuf. */
  readonly protobuf?: ItemDecoder;
  readonly sink: ReflectorSink;
  readonly hooks?: ReflectorHooks;
  readonly clock: Clock;
  readonly backoff?: BackoffOptions;
  /** Restart a watch that delivered nothing (not even a bookmark) for this long. Default 90 s. */
  readonly silenceMs?: number;
  /** Server-side watch timeout range, as client-go picks it: [min, 2×min) seconds. Default min 300. */
  readonly minWatchTimeoutSeconds?: number;
  /** Items per list page. Default 500 (as client-go's pager). */
  readonly pageSize?: number;
  /** A watch that ends sooner than this without any event counts as a failure (no hot loop). Default 1 s. */
  readonly minWatchMs?: number;
  readonly random?: () => number;
}

type WatchOutcome = 'closed' | 'gone' | 'silent' | 'failed';

export class Reflector {
  private readonly options: ReflectorOptions;
  private readonly backoff: Backoff;
  private readonly random: () => number;
  /** Where the next watch resumes; undefined: list first. */
  private resourceVersion: string | undefined;
  private listedOnce = false;
  private stopped = false;
  private isStale = false;
  private current: WatchHandle | undefined;
  private wake: (() => void) | undefined;
  private sleepTimer: TimerHandle | undefined;
  private loop: Promise<void> | undefined;

  constructor(options: ReflectorOptions) {
    this.options = options;
    this.random = options.random ?? Math.random;
    this.backoff = new Backoff({ random: this.random, ...options.backoff });
  }

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.current?.abort();
    this.sleepTimer?.cancel();
    this.wake?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        if (this.resourceVersion === undefined) await this.relist();
        if (this.stopped) break;
        const outcome = await this.watchOnce();
        if (outcome === 'closed') continue;
        if (outcome === 'gone') {
          this.resourceVersion = undefined;
          this.restarted('gone', 'resource version too old (410 Gone), relisting');
          continue;
        }
        if (outcome === 'silent') {
          this.restarted('silent', `no watch event for ${this.silenceMs()} ms`);
          continue;
        }
        throw new Error('watch ended at once');
      } catch (error) {
        if (this.stopped) break;
        if (isGone(error)) {
          this.resourceVersion = undefined;
          this.restarted('gone', 'resource version too old (410 Gone), relisting');
          continue;
        }
        const detail = error instanceof Error ? error.message : String(error);
        this.setStale(true, detail);
        this.restarted('error', detail);
        await this.sleep(this.backoff.next());
      }
    }
  }

  private silenceMs(): number {
    return this.options.silenceMs ?? 90_000;
  }

  private restarted(reason: RestartReason, detail: string): void {
    this.options.hooks?.restarted?.(reason, detail);
  }

  private setStale(stale: boolean, reason?: string): void {
    if (stale === this.isStale) return;
    this.isStale = stale;
    this.options.hooks?.stale?.(stale, reason);
  }

  private selectors(): Record<string, string | undefined> {
    return { labelSelector: this.options.labelSelector, fieldSelector: this.options.fieldSelector };
  }

  /**
   * Read everything and hand it over as one replaceAll. The first list asks for resourceVersion 0, as client-go's
   * reflector does: the watch cache answers it whole, in one response, at once (pages of a list each wait for the
   * client's rate limit: 40 pages at 10k objects took seconds at kube-proxy's 5 qps). A relist after 410 Gone reads
   * consistently (resourceVersion unset), in pages, so that it never goes back in time. A server without a watch
   * cache pages either way; the pages are followed.
   */
  private async relist(): Promise<void> {
    const { api, path, slim, sink, protobuf } = this.options;
    const items: unknown[] = [];
    let continueToken: string | undefined;
    let resourceVersion = '';
    const first = this.listedOnce ? {} : { resourceVersion: '0' };
    do {
      const params = { ...this.selectors(), limit: this.options.pageSize ?? 500, ...(continueToken ? { continue: continueToken } : first) };
      const page = await api.list(path, params, protobuf);
      if (this.stopped) return;
      if (page.slim) for (const item of page.items) items.push(item);
      else for (const item of page.items) items.push(slim(item));
      continueToken = page.continueToken;
      resourceVersion = page.resourceVersion;
    } while (continueToken !== undefined);
    sink.replaceAll(items);
    this.resourceVersion = resourceVersion;
    this.setStale(false);
    if (!this.listedOnce) {
      this.listedOnce = true;
      this.options.hooks?.listed?.();
    }
  }

  /** Watch from the current resourceVersion until the stream ends; report why it ended. */
  private async watchOnce(): Promise<WatchOutcome> {
    const { api, path, slim, sink, clock } = this.options;
    const minTimeout = this.options.minWatchTimeoutSeconds ?? 300;
    let gone = false;
    let silent = false;
    let events = 0;
    let lastEventAt = clock.now();
    const startedAt = clock.now();
    const handle = await api.watch(path, {
      ...this.selectors(),
      resourceVersion: this.resourceVersion,
      allowWatchBookmarks: true,
      timeoutSeconds: Math.floor(minTimeout * (1 + this.random())),
    }, (type, object) => {
      try {
        events++;
        lastEventAt = clock.now();
        if (type === 'ERROR') {
          // A Status object; 410 means the resourceVersion is gone from etcd's history.
          const status = object as { code?: unknown; reason?: unknown } | null;
          if (status?.code === 410 || status?.reason === 'Expired' || status?.reason === 'Gone') gone = true;
          return;
        }
        const version = resourceVersionOf(object);
        if (version !== undefined) this.resourceVersion = version;
        if (type === 'ADDED' || type === 'MODIFIED') sink.upsert(slim(object));
        else if (type === 'DELETED') {
          const ref = objectRef(object);
          if (ref.name !== undefined) sink.remove(ref.namespace, ref.name);
        }
        if (type !== 'BOOKMARK' || events > 1) this.backoff.reset();
      } catch (error) {
        // A handler bug must not stop the watch; the next relist repairs the view.
        this.options.hooks?.restarted?.('error', `event handler failed: ${error instanceof Error ? error.message : String(error)}`);
      }
    });
    this.current = handle;
    // stop() may have run while the watch was being established: it could not abort it then.
    if (this.stopped) handle.abort();
    this.setStale(false);
    const silenceMs = this.silenceMs();
    let watchdog: TimerHandle | undefined;
    const arm = (delay: number): void => {
      watchdog = clock.setTimer(() => {
        const quietFor = clock.now() - lastEventAt;
        if (quietFor >= silenceMs) {
          silent = true;
          handle.abort();
        } else arm(silenceMs - quietFor);
      }, delay);
    };
    arm(silenceMs);
    const error = await handle.done;
    watchdog?.cancel();
    this.current = undefined;
    if (this.stopped) return 'closed';
    if (gone) return 'gone';
    if (silent) return 'silent';
    if (error && error.name === 'TimeoutError') return 'closed'; // client-side inactivity timeout: resume
    if (error) throw error;
    if (events === 0 && clock.now() - startedAt < (this.options.minWatchMs ?? 1000)) return 'failed';
    return 'closed';
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      this.wake = resolve;
      this.sleepTimer = this.options.clock.setTimer(resolve, ms);
    }).finally(() => {
      this.wake = undefined;
      this.sleepTimer = undefined;
    });
  }
}
