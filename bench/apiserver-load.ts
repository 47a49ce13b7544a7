// Loading a test kube-apiserver with a synthetic cluster (test/fixtures/synthetic.ts), and the admin client that
// does it, for the benchmarks that run against a real control plane (kube, peer).
import { readFileSync } from 'node:fs';
import { Agent, fetch } from 'undici';
import type { RawObject, SyntheticCluster } from '../test/fixtures/synthetic.ts';

export interface Admin {
  /** One REST call; resolves with the status (409 Conflict counts as done). */
  request(method: string, path: string, body?: unknown): Promise<number>;
  close(): Promise<void>;
}

export function adminFromKubeconfig(path: string): Admin {
  const config = JSON.parse(readFileSync(path, 'utf8')) as {
    clusters: Array<{ cluster: { server: string; 'certificate-authority': string } }>;
    users: Array<{ user: { token: string } }>;
  };
  const cluster = config.clusters[0]?.cluster;
  const token = config.users[0]?.user.token;
  if (!cluster || !token) throw new Error(`bad kubeconfig ${path}`);
  const agent = new Agent({ connect: { ca: readFileSync(cluster['certificate-authority']) }, connections: 64 });
  return {
    async request(method, path, body) {
      const response = await fetch(`${cluster.server}${path}`, {
        method, dispatcher: agent,
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': method === 'PATCH' ? 'application/merge-patch+json' : 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const text = await response.text();
      if (response.status >= 300 && response.status !== 409) throw new Error(`${method} ${path}: ${response.status} ${text.slice(0, 200)}`);
      return response.status;
    },
    close: () => agent.close(),
  };
}

/** Run `work` over `items` with `concurrency` in flight. */
export async function parallel<T>(items: readonly T[], concurrency: number, work: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < items.length) await work(items[next++] as T);
  }));
}

const namespaceOf = (object: RawObject): string => (object.metadata as RawObject).namespace as string;
const nameOf = (object: RawObject): string => (object.metadata as RawObject).name as string;

export const servicePath = (service: RawObject): string => `/api/v1/namespaces/${namespaceOf(service)}/services/${nameOf(service)}`;
export const slicePath = (slice: RawObject): string =>
  `/apis/discovery.k8s.io/v1/namespaces/${namespaceOf(slice)}/endpointslices/${nameOf(slice)}`;

/**
 * How Services are created:
 * - 'clusterIP': every Service as a ClusterIP (no node ports, no status);
 * - 'typed': types, node ports, external IPs, affinity and traffic policies as generated, the load balancer
 *   ingress set through the status subresource afterwards. Health-check node ports are numbered from 35000 (the
 *   generated ones could collide with node ports; one the apiserver picked could take a port a later Service names),
 *   so its node-port range must hold them: start it with --service-node-port-range=30000-39999.
 */
export type ServiceShape = 'clusterIP' | 'typed';

const FIRST_HEALTH_CHECK_PORT = 35000;

function creatable(service: RawObject, shape: ServiceShape, healthCheckNodePort: number | undefined): RawObject {
  const spec = { ...(service.spec as RawObject) };
  delete spec['healthCheckNodePort'];
  if (healthCheckNodePort !== undefined) spec['healthCheckNodePort'] = healthCheckNodePort;
  if (shape === 'clusterIP') {
    spec['type'] = 'ClusterIP';
    delete spec['externalTrafficPolicy'];
    spec['ports'] = (spec['ports'] as RawObject[]).map(({ nodePort: _drop, ...port }) => port);
  }
  const metadata = service.metadata as RawObject;
  return { metadata: { name: metadata.name, labels: metadata.labels }, spec };
}

/** The body of an EndpointSlice create (or of a PATCH that puts its endpoints back). */
export function sliceBody(slice: RawObject): RawObject {
  const metadata = slice.metadata as RawObject;
  return { metadata: { name: metadata.name, labels: metadata.labels }, addressType: slice.addressType, ports: slice.ports, endpoints: slice.endpoints };
}

/** Create the cluster's namespaces, Services and EndpointSlices (not its Node). Returns the seconds it took. */
export async function populate(admin: Admin, cluster: SyntheticCluster, shape: ServiceShape): Promise<number> {
  const started = Date.now();
  const namespaces = [...new Set(cluster.services.map(namespaceOf))];
  await parallel(namespaces, 16, (ns) => admin.request('POST', '/api/v1/namespaces', { metadata: { name: ns } }));
  const healthCheckPorts = new Map<RawObject, number>();
  if (shape === 'typed') {
    for (const s of cluster.services) {
      if ((s.spec as RawObject).healthCheckNodePort !== undefined) healthCheckPorts.set(s, FIRST_HEALTH_CHECK_PORT + healthCheckPorts.size);
    }
  }
  await parallel(cluster.services, 48, (s) =>
    admin.request('POST', `/api/v1/namespaces/${namespaceOf(s)}/services`, creatable(s, shape, healthCheckPorts.get(s))));
  if (shape === 'typed') {
    const balanced = cluster.services.filter((s) => ((s.status as RawObject | undefined)?.loadBalancer as RawObject | undefined)?.ingress);
    await parallel(balanced, 48, (s) => admin.request('PATCH', `${servicePath(s)}/status`, { status: s.status }));
  }
  await parallel(cluster.slices, 48, (s) => admin.request('POST', `/apis/discovery.k8s.io/v1/namespaces/${namespaceOf(s)}/endpointslices`, sliceBody(s)));
  return (Date.now() - started) / 1000;
}
