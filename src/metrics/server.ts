// The metrics server on --metrics-bind-address (default 127.0.0.1:10249): /metrics, /healthz (plain "ok"),
// /proxyMode (the mode name) and /configz (the effective configuration), as kube-proxy serves them.
import type { ProxyMetrics } from './proxy-metrics.ts';
import { listen, parseBindAddress, pathOf, send, type RunningServer } from '../health/http.ts';

export interface MetricsServerOptions {
  /** HOST:PORT as the flag takes it; port 0 picks a free port (tests). */
  readonly bindAddress: string;
  readonly metrics: Pick<ProxyMetrics, 'registry' | 'mode'>;
  /** The effective configuration (KubeProxyConfiguration-shaped), served under /configz. */
  readonly configz: () => unknown;
}

export async function startMetricsServer(options: MetricsServerOptions): Promise<RunningServer> {
  const address = parseBindAddress(options.bindAddress, '--metrics-bind-address');
  const registry = options.metrics.registry;
  return listen(address, (request, response) => {
    const path = pathOf(request);
    if (path === '/metrics') {
      registry.metrics().then(
        (text) => send(response, 200, registry.contentType, text),
        (error: Error) => send(response, 500, 'text/plain; charset=utf-8', `${error.message}\n`),
      );
    } else if (path === '/healthz') {
      send(response, 200, 'text/plain; charset=utf-8', 'ok');
    } else if (path === '/proxyMode') {
      send(response, 200, 'text/plain; charset=utf-8', options.metrics.mode);
    } else if (path === '/configz') {
      let body: string;
      try {
        body = JSON.stringify({ 'kubeproxy.config.k8s.io': options.configz() });
      } catch (error) {
        send(response, 500, 'text/plain; charset=utf-8', `${(error as Error).message}\n`);
        return;
      }
      send(response, 200, 'application/json', body);
    } else {
      send(response, 404, 'text/plain; charset=utf-8', '404 page not found\n');
    }
  }, 'metrics server');
}
