// Part of the composition root: what runs beside the sync loop — the health server (/healthz, /livez), the
// health-check node ports of externalTrafficPolicy Local services, the metrics server, and Node events.
// Each is optional (an empty bind address disables a server) and is stopped on shutdown.
import type { ProxyConfig } from './config/types.ts';
import type { AppLogger } from './log.ts';
import type { InvalidObject, SyncObserver } from './model/observe.ts';
import type { ClusterEvents, ClusterSource } from './model/source.ts';
import { nodeEligibilityTap } from './health/node-tap.ts';
import { ProxyHealth } from './health/proxy-health.ts';
import { startHealthServer } from './health/server.ts';
import { ServiceHealthServer } from './health/service-health.ts';
import { ProxyMetrics } from './metrics/proxy-metrics.ts';
import { startMetricsServer } from './metrics/server.ts';
import { NodeEvents } from './events/node-events.ts';
import type { EventSink } from './model/events.ts';
import { systemClock } from './sync/index.ts';
import { ListenError } from './errors.ts';
import type { RunningServer } from './health/http.ts';

export interface Attachment {
  readonly name: string;
  readonly observer?: SyncObserver;
  readonly onInvalid?: (invalid: InvalidObject) => void;
  /** Sees what the source tells the store (Node eligibility, change counting, a stale view). */
  readonly tap?: Partial<ClusterEvents>;
  stop(): Promise<void>;
}

export interface Servers {
  readonly attachments: readonly Attachment[];
  readonly metrics: ProxyMetrics | undefined;
}

/** Starts the health and metrics servers the config asks for. */
export async function startServers(config: ProxyConfig, log: AppLogger): Promise<Servers> {
  const attachments: Attachment[] = [];
  const metrics = config.metricsBindAddress !== '' ? new ProxyMetrics({ mode: config.mode }) : undefined;
  try {
    if (config.healthzBindAddress !== '') {
      const health = new ProxyHealth({ clock: systemClock, healthTimeoutMs: 2 * config.syncPeriodMs });
      const server = await listenOrRetry(() => startHealthServer({
        bindAddress: config.healthzBindAddress, health,
        ...(metrics && { onAnswer: (path: 'healthz' | 'livez', status: number) => metrics.healthAnswered(path, status) }),
      }), { what: 'health server', hardFail: config.bindAddressHardFail, log });
      attachments.push({
        name: 'health', observer: health, tap: nodeEligibilityTap(health),
        stop: () => server.close(),
      });
      const serviceHealth = new ServiceHealthServer({ log: log.child({ component: 'service-health' }), proxyHealthy: () => health.isHealthy() });
      attachments.push({ name: 'service-health', observer: serviceHealth, stop: () => serviceHealth.close() });
    }
    if (metrics) {
      const server = await listenOrRetry(() => startMetricsServer({ bindAddress: config.metricsBindAddress, metrics, configz: () => config.effective }),
        { what: 'metrics server', hardFail: config.bindAddressHardFail, log });
      attachments.push({
        name: 'metrics', observer: metrics, tap: metrics.changeTap(),
        onInvalid: (invalid) => metrics.invalidObject(invalid),
        stop: () => server.close(),
      });
    }
  } catch (err) {
    await Promise.allSettled(attachments.map((a) => a.stop()));
    throw err;
  }
  return { attachments, metrics };
}

export const LISTEN_RETRY_MS = 5000;

interface RetryOptions {
  readonly what: string;
  /** --bind-address-hard-fail: give up (exit) instead of retrying. */
  readonly hardFail: boolean;
  readonly log: AppLogger;
  readonly retryMs?: number;
}

/**
 * Starts a server; when its address cannot be listened on (typically the port is still held by the kube-proxy
 * this agent replaces), keeps the agent running and retries every 5 s, as kube-proxy does, unless hardFail.
 */
export async function listenOrRetry(start: () => Promise<RunningServer>, options: RetryOptions): Promise<{ close(): Promise<void> }> {
  let server: RunningServer | undefined;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  try {
    server = await start();
  } catch (err) {
    if (options.hardFail || !(err instanceof ListenError)) throw err;
    options.log.warn({ reason: err.message }, `${err.message}; retrying every ${(options.retryMs ?? LISTEN_RETRY_MS) / 1000}s`);
    const retry = (): void => {
      timer = setTimeout(() => {
        start().then(async (started) => {
          if (closed) return started.close();
          server = started;
          options.log.info({}, `${options.what} is listening now`);
        }, (again: unknown) => {
          if (!closed && again instanceof ListenError) retry();
          else if (!closed) options.log.error({ err: again }, `${options.what} failed`);
        });
      }, options.retryMs ?? LISTEN_RETRY_MS);
      timer.unref();
    };
    retry();
  }
  return {
    close: async () => {
      closed = true;
      clearTimeout(timer);
      await server?.close();
    },
  };
}

/** Node events (Starting, persistent sync failure) for sources that can post them (the Kubernetes API). */
export function nodeEventsFor(source: ClusterSource, nodeName: string, log: AppLogger): NodeEvents | undefined {
  if (!canPostEvents(source)) return undefined;
  return new NodeEvents({ sink: source.eventSink(), nodeName, log: log.child({ component: 'events' }) });
}

function canPostEvents(source: ClusterSource): source is ClusterSource & { eventSink(): EventSink } {
  return 'eventSink' in source && typeof source.eventSink === 'function';
}
