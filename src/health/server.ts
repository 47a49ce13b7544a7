// The health server on --healthz-bind-address (default 0.0.0.0:10256): /healthz and /livez.
import type { ProxyHealth } from './proxy-health.ts';
import { listen, parseBindAddress, pathOf, send, type RunningServer } from './http.ts';

export interface HealthServerOptions {
  /** HOST:PORT as the flag takes it; port 0 picks a free port (tests). */
  readonly bindAddress: string;
  readonly health: Pick<ProxyHealth, 'healthz' | 'livez'>;
  /** Told about every answer (metrics: kubeproxy_proxy_healthz_total / livez_total). */
  readonly onAnswer?: (path: 'healthz' | 'livez', status: number) => void;
}

export async function startHealthServer(options: HealthServerOptions): Promise<RunningServer> {
  const address = parseBindAddress(options.bindAddress, '--healthz-bind-address');
  return listen(address, (request, response) => {
    const path = pathOf(request);
    if (path !== '/healthz' && path !== '/livez') {
      send(response, 404, 'text/plain; charset=utf-8', '404 page not found\n');
      return;
    }
    const which = path === '/healthz' ? 'healthz' : 'livez';
    const answer = which === 'healthz' ? options.health.healthz() : options.health.livez();
    options.onAnswer?.(which, answer.status);
    send(response, answer.status, 'application/json', answer.body);
  }, 'health server');
}
