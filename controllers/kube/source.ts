// The Kubernetes API as a ClusterSource: Services, EndpointSlices and this node's Node, listed and watched
// with kube-proxy's selectors. synced() waits for the first complete list of Services and EndpointSlices
// (the Node may be missing or forbidden); stale() reports whether any watch is currently broken.
import type { ClusterEvents, ClusterSource, ObjectKind } from '../../src/model/source.ts';
import type { Logger } from '../../src/model/mode.ts';
import type { Clock } from '../../src/model/clock.ts';
import { systemClock } from '../../src/sync/clock.ts';
import type { BackoffOptions } from './backoff.ts';
import { createKubeApi, kubeEventSink, loadClientConfig, type ClientConnectionOptions, type KubeApi } from './client.ts';
import type { EventSink } from '../../src/model/events.ts';
import { Reflector, type RestartReason } from './reflector.ts';
import { nodeFieldSelector, proxyLabelSelector } from './selectors.ts';
import { slimEndpointSlice, slimNode, slimService } from './slim.ts';
import { decodeEndpointSlice, decodeNode, decodeService, type ItemDecoder } from './protobuf.ts';

export interface KubeSourceOptions {
  /** This node's name (see resolveNodeName). */
  readonly nodeName: string;
  /** How to reach the apiserver (kubeconfig/master/in-cluster, content type, qps/burst). */
  readonly connection: ClientConnectionOptions;
  /** Serve only Services labelled service.kubernetes.io/service-proxy-name=NAME; default: only unlabelled ones. */
  readonly proxyName?: string;
  /** Watch this node's Node object (default true). */
  readonly watchNode?: boolean;
  readonly log?: Logger;
  readonly clock?: Clock;
  /** Told about every informer restart (for kproxy_informer_restarts_total). */
  readonly onRestart?: (kind: ObjectKind, reason: RestartReason) => void;
  readonly backoff?: BackoffOptions;
  /** Watchdog for silent watches (default 90 s). */
  readonly silenceMs?: number;
  /** Server-side watch timeout lower bound in seconds (default 300; a random value in [min, 2×min) is used). */
  readonly minWatchTimeoutSeconds?: number;
  /** A ready client instead of `connection` (tests, benchmarks). */
  readonly api?: KubeApi;
}

interface KindSpec {
  readonly kind: ObjectKind;
  readonly path: string;
  readonly labelSelector?: string;
  readonly fieldSelector?: string;
  readonly slim: (object: unknown) => unknown;
  readonly protobuf: ItemDecoder;
  /** synced() waits for this kind's first list. */
  readonly required: boolean;
}

function kindSpecs(options: KubeSourceOptions): KindSpec[] {
  const labelSelector = proxyLabelSelector(options.proxyName);
  const specs: KindSpec[] = [
    { kind: 'Service', path: '/api/v1/services', labelSelector, slim: slimService, protobuf: decodeService, required: true },
    { kind: 'EndpointSlice', path: '/apis/discovery.k8s.io/v1/endpointslices', labelSelector, slim: slimEndpointSlice, protobuf: decodeEndpointSlice, required: true },
  ];
  if (options.watchNode !== false && options.nodeName) {
    specs.push({ kind: 'Node', path: '/api/v1/nodes', fieldSelector: nodeFieldSelector(options.nodeName), slim: slimNode, protobuf: decodeNode, required: false });
  }
  return specs;
}

/** The source, plus its client for the other API users (Events). */
export interface KubeClusterSource extends ClusterSource {
  readonly api: KubeApi;
  /** Posts core/v1 Events with the same credentials and rate limit. */
  eventSink(): EventSink;
}

class KubeSource implements KubeClusterSource {
  readonly description: string;
  private readonly options: KubeSourceOptions;
  readonly api: KubeApi;
  private readonly clock: Clock;
  private reflectors: Reflector[] = [];

  constructor(options: KubeSourceOptions) {
    this.options = options;
    this.clock = options.clock ?? systemClock;
    if (options.api) {
      this.api = options.api;
    } else {
      const config = loadClientConfig(options.connection);
      for (const note of config.notes) options.log?.warn({}, note);
      this.api = createKubeApi({ config, clock: this.clock, qps: options.connection.qps, burst: options.connection.burst });
    }
    this.description = `kube-apiserver ${this.api.server}`;
  }

  async start(events: ClusterEvents): Promise<void> {
    const specs = kindSpecs(this.options);
    const waitingFor = new Set(specs.filter((s) => s.required).map((s) => s.kind));
    const staleKinds = new Map<ObjectKind, string>();
    let syncedSent = false;
    const log = this.options.log;
    this.reflectors = specs.map((spec) => new Reflector({
      kind: spec.kind,
      path: spec.path,
      labelSelector: spec.labelSelector,
      fieldSelector: spec.fieldSelector,
      api: this.api,
      slim: spec.slim,
      protobuf: spec.protobuf,
      clock: this.clock,
      backoff: this.options.backoff,
      silenceMs: this.options.silenceMs,
      minWatchTimeoutSeconds: this.options.minWatchTimeoutSeconds,
      sink: {
        replaceAll: (objects) => events.replaceAll(spec.kind, objects),
        upsert: (object) => events.upsert(spec.kind, object),
        remove: (namespace, name) => events.remove(spec.kind, spec.kind === 'Node' ? undefined : namespace, name),
      },
      hooks: {
        listed: () => {
          waitingFor.delete(spec.kind);
          log?.debug({ kind: spec.kind }, 'first list complete');
          if (waitingFor.size === 0 && !syncedSent) {
            syncedSent = true;
            events.synced();
          }
        },
        stale: (isStale, reason) => {
          const wasStale = staleKinds.size > 0;
          if (isStale) staleKinds.set(spec.kind, reason ?? 'watch failed');
          else staleKinds.delete(spec.kind);
          const nowStale = staleKinds.size > 0;
          if (nowStale !== wasStale || (isStale && nowStale)) {
            const why = [...staleKinds].map(([kind, text]) => `${kind}: ${text}`).join('; ');
            if (nowStale !== wasStale) log?.[nowStale ? 'warn' : 'info']({ reason: why }, nowStale ? 'cluster view is stale' : 'cluster view is fresh again');
            events.stale?.(nowStale, nowStale ? why : undefined);
          }
        },
        restarted: (reason, detail) => {
          log?.[reason === 'error' ? 'warn' : 'info']({ kind: spec.kind, reason, detail }, 'restarting list+watch');
          this.options.onRestart?.(spec.kind, reason);
        },
      },
    }));
    for (const reflector of this.reflectors) reflector.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.reflectors.map((r) => r.stop()));
  }

  eventSink(): EventSink {
    return kubeEventSink(this.api);
  }
}

/** A ClusterSource backed by kube-apiserver. Throws (one line) when no connection settings can be found. */
export function createKubeSource(options: KubeSourceOptions): KubeClusterSource {
  return new KubeSource(options);
}
