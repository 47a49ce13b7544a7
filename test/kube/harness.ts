// Shared pieces of the real-apiserver tests: a kproxy pipeline (Kubernetes source → ClusterStore → sync loop
// with a no-op proxier → health / service health / metrics observers), and polling helpers.
import { defaultComputeOptions } from '../../src/compute/options.ts';
import { silentLogger } from '../../src/log.ts';
import type { DesiredState, ServicePortPlan } from '../../src/model/types.ts';
import type { SyncSucceeded } from '../../src/model/observe.ts';
import { ClusterStore } from '../../src/store/cluster-store.ts';
import { SyncLoop } from '../../src/sync/loop.ts';
import { systemClock } from '../../src/sync/clock.ts';
import { createKubeSource, type KubeClusterSource, type KubeSourceOptions } from '../../controllers/kube/source.ts';
import { ProxyHealth } from '../../src/health/proxy-health.ts';
import { nodeEligibilityTap } from '../../src/health/node-tap.ts';
import { ServiceHealthServer } from '../../src/health/service-health.ts';
import { tapClusterEvents } from '../../src/health/tap.ts';
import { ProxyMetrics } from '../../src/metrics/proxy-metrics.ts';
import type { ObjectKind } from '../../src/model/source.ts';

export interface Pipeline {
  readonly store: ClusterStore;
  readonly source: KubeClusterSource;
  readonly loop: SyncLoop;
  readonly health: ProxyHealth;
  readonly serviceHealth: ServiceHealthServer;
  readonly metrics: ProxyMetrics;
  readonly restarts: Array<{ kind: ObjectKind; reason: string }>;
  readonly staleEvents: boolean[];
  /** The last state the sync loop applied. */
  applied(): DesiredState | undefined;
  stop(): Promise<void>;
}

export interface PipelineOptions extends Partial<KubeSourceOptions> {
  readonly kubeconfig: string;
  readonly nodeName: string;
}

export async function startPipeline(options: PipelineOptions): Promise<Pipeline> {
  const log = silentLogger();
  const compute = { ...defaultComputeOptions(options.nodeName), ...(options.proxyName ? { proxyName: options.proxyName } : {}) };
  const store = new ClusterStore({ compute });
  const restarts: Array<{ kind: ObjectKind; reason: string }> = [];
  const staleEvents: boolean[] = [];
  const metrics = new ProxyMetrics({ mode: 'userspace', families: ['IPv4'], processMetrics: false });
  const health = new ProxyHealth({ clock: systemClock, healthTimeoutMs: 60_000, families: ['IPv4'] });
  const serviceHealth = new ServiceHealthServer({ log, proxyHealthy: () => health.isHealthy() });
  let applied: DesiredState | undefined;
  const loop = new SyncLoop({
    clock: systemClock,
    log,
    proxier: { sync: async (_state, request) => ({ full: request.full }) },
    snapshot: () => store.snapshot(),
    isReady: () => store.hasSynced,
    minSyncPeriodMs: 0,
    syncPeriodMs: 30_000,
    observers: [health, metrics, serviceHealth, { syncSucceeded: (event: SyncSucceeded) => { applied = event.state; } }],
  });
  store.onChange(() => loop.requestSync());
  const { kubeconfig, ...sourceOptions } = options;
  const source = createKubeSource({
    connection: { kubeconfig, qps: 50, burst: 100 },
    log,
    backoff: { initialMs: 200, maxMs: 1000 },
    ...sourceOptions,
    onRestart: (kind, reason) => {
      restarts.push({ kind, reason });
      metrics.informerRestarted(kind);
    },
  });
  const events = tapClusterEvents(store, nodeEligibilityTap(health), metrics.changeTap(), { stale: (isStale) => staleEvents.push(isStale) });
  loop.start();
  await source.start(events);
  return {
    store, source, loop, health, serviceHealth, metrics, restarts, staleEvents,
    applied: () => applied,
    async stop() {
      await source.stop();
      await loop.stop();
      await serviceHealth.close();
    },
  };
}

/** Poll `check` until it returns a value other than undefined/false, or fail after `timeoutMs`. */
export async function eventually<T>(what: string, check: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${lastError ? `: ${(lastError as Error).message}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export function servicePlans(state: DesiredState | undefined, namespace: string): ServicePortPlan[] {
  return state ? state.families.IPv4.services.filter((s) => s.namespace === namespace) : [];
}

export function serviceBody(name: string, extra: Record<string, unknown> = {}, labels: Record<string, string> = {}): Record<string, unknown> {
  return { metadata: { name, labels }, spec: { ports: [{ name: 'http', port: 80, protocol: 'TCP' }], ...extra } };
}

export function sliceBody(name: string, service: string, endpoints: Array<{ ip: string; node?: string; ready?: boolean }>, labels: Record<string, string> = {}): Record<string, unknown> {
  return {
    metadata: { name, labels: { 'kubernetes.io/service-name': service, ...labels } },
    addressType: 'IPv4',
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints: endpoints.map((e) => ({ addresses: [e.ip], conditions: { ready: e.ready ?? true }, ...(e.node ? { nodeName: e.node } : {}) })),
  };
}
