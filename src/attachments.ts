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
import type { EventSink } from './events/node-events.ts';
import { systemClock } from './sync/index.ts';

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
      const server = await startHealthServer({
        bindAddress: config.healthzBindAddress, health,
        ...(metrics && { onAnswer: (path: 'healthz' | 'livez', status: number) => metrics.healthAnswered(path, status) }),
      });
      attachments.push({
        name: 'health', observer: health, tap: nodeEligibilityTap(health),
        stop: () => server.close(),
      });
      const serviceHealth = new ServiceHealthServer({ log: log.child({ component: 'service-health' }), proxyHealthy: () => health.isHealthy() });
      attachments.push({ name: 'service-health', observer: serviceHealth, stop: () => serviceHealth.close() });
    }
    if (metrics) {
      const server = await startMetricsServer({ bindAddress: config.metricsBindAddress, metrics, configz: () => config });
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

/** Node events (Starting, persistent sync failure) for sources that can post them (the Kubernetes API). */
export function nodeEventsFor(source: ClusterSource, nodeName: string, log: AppLogger): NodeEvents | undefined {
  if (!canPostEvents(source)) return undefined;
  return new NodeEvents({ sink: source.eventSink(), nodeName, log: log.child({ component: 'events' }) });
}

function canPostEvents(source: ClusterSource): source is ClusterSource & { eventSink(): EventSink } {
  return 'eventSink' in source && typeof source.eventSink === 'function';
}
