// Health-check node ports: for each externalTrafficPolicy: Local service with a healthCheckNodePort, an HTTP
// server on that port that load balancers probe. 200 while this node has ready local endpoints for the
// service (and the proxy itself is healthy), 503 otherwise. Servers follow the applied DesiredState.
import type { Logger } from '../model/mode.ts';
import type { SyncObserver, SyncSucceeded } from '../model/observe.ts';
import type { DesiredState } from '../model/types.ts';
import { listen, send, type RunningServer } from './http.ts';

export interface HealthCheckService {
  readonly namespace: string;
  readonly name: string;
  readonly port: number;
  /** Distinct ready local endpoint addresses over all ports and families. */
  readonly localEndpoints: number;
  /** Addresses to listen on ('::' = every address). */
  readonly hosts: readonly string[];
}

/** Pure: the health-check node ports the state asks for, keyed by port. */
export function healthCheckServices(state: DesiredState): Map<number, HealthCheckService> {
  const collected = new Map<number, { namespace: string; name: string; ips: Set<string>; hosts: Set<string> }>();
  for (const plan of [state.families.IPv4, state.families.IPv6]) {
    const hosts = plan.nodePortAddresses === 'all' ? ['::'] : plan.nodePortAddresses;
    for (const service of plan.services) {
      if (service.healthCheckNodePort === undefined || !service.externalPolicyLocal) continue;
      const port = service.healthCheckNodePort;
      let entry = collected.get(port);
      if (entry && (entry.namespace !== service.namespace || entry.name !== service.name)) continue; // first owner wins
      if (!entry) {
        entry = { namespace: service.namespace, name: service.name, ips: new Set(), hosts: new Set() };
        collected.set(port, entry);
      }
      for (const host of hosts) entry.hosts.add(host);
      for (const endpoint of service.allEndpoints) if (endpoint.local && endpoint.ready) entry.ips.add(endpoint.ip);
    }
  }
  const result = new Map<number, HealthCheckService>();
  for (const [port, entry] of collected) {
    const hosts = entry.hosts.has('::') || entry.hosts.size === 0 ? ['::'] : [...entry.hosts].sort();
    result.set(port, { namespace: entry.namespace, name: entry.name, port, localEndpoints: entry.ips.size, hosts });
  }
  return result;
}

/** Pure: the answer for one service. */
export function serviceHealthResponse(service: Pick<HealthCheckService, 'namespace' | 'name' | 'localEndpoints'>, proxyHealthy: boolean): { status: 200 | 503; body: string; weight: string } {
  const ok = service.localEndpoints > 0 && proxyHealthy;
  const body = JSON.stringify({
    service: { namespace: service.namespace, name: service.name },
    localEndpoints: service.localEndpoints,
    serviceProxyHealthy: proxyHealthy,
  }, null, 2);
  return { status: ok ? 200 : 503, body, weight: String(service.localEndpoints) };
}

export interface ServiceHealthServerOptions {
  readonly log: Logger;
  /** The proxy's own health (ProxyHealth.isHealthy): a broken proxy must not attract traffic. */
  readonly proxyHealthy: () => boolean;
}

interface OpenPort {
  service: HealthCheckService;
  readonly hostsKey: string;
  readonly servers: RunningServer[];
}

export class ServiceHealthServer implements SyncObserver {
  private readonly options: ServiceHealthServerOptions;
  private readonly open = new Map<number, OpenPort>();
  /** Reconciliations run one at a time, in order. */
  private chain: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(options: ServiceHealthServerOptions) {
    this.options = options;
  }

  syncSucceeded(event: SyncSucceeded): void {
    const wanted = healthCheckServices(event.state);
    this.chain = this.chain.then(() => this.reconcile(wanted)).catch((error: Error) => {
      this.options.log.warn({ err: error }, 'health-check node ports not updated');
    });
  }

  /** Wait until every requested change has been applied (tests). */
  settled(): Promise<void> {
    return this.chain;
  }

  /** Ports currently served. */
  ports(): number[] {
    return [...this.open.keys()].sort((a, b) => a - b);
  }

  private async reconcile(wanted: Map<number, HealthCheckService>): Promise<void> {
    if (this.closed) return;
    for (const [port, current] of this.open) {
      const next = wanted.get(port);
      if (next && next.hosts.join(',') === current.hostsKey) continue;
      this.open.delete(port);
      await Promise.all(current.servers.map((server) => server.close()));
    }
    for (const [port, service] of wanted) {
      const current = this.open.get(port);
      if (current) {
        current.service = service; // counts change without reopening
        continue;
      }
      const entry: OpenPort = { service, hostsKey: service.hosts.join(','), servers: [] };
      try {
        for (const host of service.hosts) {
          entry.servers.push(await listen({ host, port }, (_request, response) => {
            const answer = serviceHealthResponse(entry.service, this.options.proxyHealthy());
            send(response, answer.status, 'application/json', answer.body, { 'X-Load-Balancing-Endpoint-Weight': answer.weight });
          }, `health check node port of ${service.namespace}/${service.name}`));
        }
        this.open.set(port, entry);
      } catch (error) {
        await Promise.all(entry.servers.map((server) => server.close()));
        this.options.log.warn({ err: error, port }, 'cannot open health-check node port; retrying on the next sync');
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.chain;
    const all = [...this.open.values()];
    this.open.clear();
    await Promise.all(all.flatMap((entry) => entry.servers.map((server) => server.close())));
  }
}
