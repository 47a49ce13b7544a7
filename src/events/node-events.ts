// Kubernetes Events on this proxy's Node: "Starting" at start-up and a Warning when syncing keeps failing.
// Best effort: events go out in the background through a small bounded queue; a failure to post is logged
// and dropped, and nothing here ever waits in the sync path.
import { randomBytes } from 'node:crypto';
import type { Logger } from '../model/mode.ts';
import type { CoreEvent, EventSink } from '../model/events.ts';
import type { SyncFailed, SyncObserver } from '../model/observe.ts';

export interface NodeEventsOptions {
  readonly sink: EventSink;
  readonly nodeName: string;
  readonly log: Logger;
  /** Epoch ms. */
  readonly now?: () => number;
  /** Consecutive failed syncs before the Warning is posted (once per failure streak). Default 3. */
  readonly failureThreshold?: number;
  /** At most this many events wait to be posted; more are dropped. Default 20. */
  readonly maxQueued?: number;
  readonly component?: string;
}

/** Cluster-scoped objects (Nodes) have their events in "default", as kubectl describe expects. */
export const NODE_EVENTS_NAMESPACE = 'default';

export class NodeEvents implements SyncObserver {
  private readonly options: NodeEventsOptions;
  private readonly now: () => number;
  private queue: Promise<void> = Promise.resolve();
  private queued = 0;
  private warnedThisStreak = false;
  private loggedFailure = false;

  constructor(options: NodeEventsOptions) {
    this.options = options;
    this.now = options.now ?? Date.now;
  }

  /** Post the "Starting" event. */
  starting(detail = 'Starting kproxy.'): void {
    this.emit('Normal', 'Starting', detail);
  }

  syncFailed(event: SyncFailed): void {
    if (this.warnedThisStreak || event.attempt < (this.options.failureThreshold ?? 3)) return;
    this.warnedThisStreak = true;
    const message = `Syncing proxy rules failed ${event.attempt} times in a row (retrying in ${Math.round(event.retryInMs / 1000)}s): ${event.error.message}`;
    this.emit('Warning', 'SyncProxyRulesFailed', message.slice(0, 1024));
  }

  syncSucceeded(): void {
    if (!this.warnedThisStreak) return;
    this.warnedThisStreak = false;
    this.emit('Normal', 'SyncProxyRulesRecovered', 'Proxy rules are synced again.');
  }

  /** Resolves once everything queued so far was posted or dropped (tests, shutdown). */
  flushed(): Promise<void> {
    return this.queue;
  }

  emit(type: 'Normal' | 'Warning', reason: string, message: string): void {
    if (this.queued >= (this.options.maxQueued ?? 20)) return;
    const { nodeName, sink, log } = this.options;
    const at = new Date(this.now()).toISOString().replace(/\.\d+Z$/, 'Z');
    const component = this.options.component ?? 'kproxy';
    const event: CoreEvent = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: `${nodeName}.${this.now().toString(16)}${randomBytes(3).toString('hex')}`, namespace: NODE_EVENTS_NAMESPACE },
      // kubelet and kube-proxy use the node name as the Node reference's uid.
      involvedObject: { apiVersion: 'v1', kind: 'Node', name: nodeName, uid: nodeName },
      reason,
      message,
      type,
      source: { component, host: nodeName },
      reportingComponent: component,
      reportingInstance: nodeName,
      firstTimestamp: at,
      lastTimestamp: at,
      count: 1,
    };
    this.queued++;
    this.queue = this.queue.then(() => sink.create(event)).then(
      () => { this.loggedFailure = false; },
      (error: Error) => {
        // One line per run of failures, at warn; the rest at debug.
        (this.loggedFailure ? log.debug : log.warn).call(log, { reason, err: error.message }, 'could not post event');
        this.loggedFailure = true;
      },
    ).finally(() => { this.queued--; });
  }
}
