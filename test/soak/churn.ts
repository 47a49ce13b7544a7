// The churn a soak run applies: one endpoint changed every 0.5 s, and every 10 s the service added 10 s earlier
// removed and a new one added (alternately a ClusterIP service and a LoadBalancer with externalTrafficPolicy Local,
// whose health-check node port opens and closes a socket). Applied to a manifest file or to the test apiserver.
import { renameSync, writeFileSync } from 'node:fs';
import { stringify } from 'yaml';
import { mutateOneEndpoint, type RawObject, type SyntheticCluster } from '../fixtures/synthetic.ts';
import { servicePath, sliceBody, slicePath, type Admin } from '../../bench/apiserver-load.ts';

export interface ExtraService {
  readonly service: RawObject;
  readonly slice: RawObject;
}

/** Where changes go. Calls never overlap. */
export interface ChurnTarget {
  endpointsChanged(slice: RawObject): Promise<void>;
  serviceAdded(extra: ExtraService): Promise<void>;
  serviceRemoved(extra: ExtraService): Promise<void>;
}

const EXTRA_NAMESPACE = 'ns-0';
/** Outside the NodePort range, so it meets no synthetic service's node port (userspace mode listens on those). */
const EXTRA_NODE_PORT = 29998;
const EXTRA_HEALTH_PORT = 29999;

/** The n-th churned service: even n a ClusterIP service, odd n a LoadBalancer with a Local traffic policy. */
export function extraService(n: number, nodeName: string): ExtraService {
  const name = `soak-extra-${n}`;
  const local = n % 2 === 1;
  const spec: RawObject = {
    type: local ? 'LoadBalancer' : 'ClusterIP',
    clusterIP: `10.97.${Math.floor(n / 250) % 250}.${(n % 250) + 1}`,
    ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP', ...(local && { nodePort: EXTRA_NODE_PORT }) }],
    selector: { app: name },
    ...(local && { externalTrafficPolicy: 'Local', healthCheckNodePort: EXTRA_HEALTH_PORT }),
  };
  const endpoints = Array.from({ length: 10 }, (_, i) => ({
    addresses: [`10.245.${n % 250}.${i + 1}`],
    conditions: { ready: true, serving: true, terminating: false },
    nodeName: i % 3 === 0 ? nodeName : 'node-1',
  }));
  return {
    service: {
      apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: EXTRA_NAMESPACE, labels: { app: name } }, spec,
      ...(local && { status: { loadBalancer: { ingress: [{ ip: `172.31.${n % 250}.1` }] } } }),
    },
    slice: {
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
      metadata: { name: `${name}-0`, namespace: EXTRA_NAMESPACE, labels: { 'kubernetes.io/service-name': name } },
      addressType: 'IPv4', endpoints, ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    },
  };
}

export interface ChurnSchedule {
  readonly endpointEveryMs: number;
  readonly serviceEveryMs: number;
}

export const DEFAULT_CHURN: ChurnSchedule = { endpointEveryMs: 500, serviceEveryMs: 10_000 };

/** Drives a target until stop(); changes() counts the operations applied. Errors end the churn (see failure()). */
export class Churn {
  readonly #cluster: SyntheticCluster;
  readonly #target: ChurnTarget;
  readonly #nodeName: string;
  readonly #schedule: ChurnSchedule;
  #timer: NodeJS.Timeout | undefined;
  #busy: Promise<void> | undefined;
  #changes = 0;
  #ticks = 0;
  #extra: ExtraService | undefined;
  #failure: Error | undefined;

  constructor(cluster: SyntheticCluster, target: ChurnTarget, nodeName: string, schedule: ChurnSchedule = DEFAULT_CHURN) {
    this.#cluster = cluster;
    this.#target = target;
    this.#nodeName = nodeName;
    this.#schedule = schedule;
  }

  start(): void {
    this.#timer = setInterval(() => {
      if (this.#busy) return; // a slow target (a loaded apiserver) skips ticks rather than queueing them
      this.#busy = this.#tick().catch((error: unknown) => {
        this.#failure ??= error instanceof Error ? error : new Error(String(error));
      }).finally(() => { this.#busy = undefined; });
    }, this.#schedule.endpointEveryMs);
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#busy;
  }

  changes(): number {
    return this.#changes;
  }

  failure(): Error | undefined {
    return this.#failure;
  }

  async #tick(): Promise<void> {
    if (this.#failure) return;
    const tick = this.#ticks++;
    const slice = mutateOneEndpoint(this.#cluster, { change: tick % 2 === 0 ? 'add' : 'remove' });
    await this.#target.endpointsChanged(slice);
    this.#changes++;
    const perService = Math.max(1, Math.round(this.#schedule.serviceEveryMs / this.#schedule.endpointEveryMs));
    if (tick % perService === perService - 1) {
      if (this.#extra) await this.#target.serviceRemoved(this.#extra);
      this.#extra = extraService(Math.floor(tick / perService), this.#nodeName);
      await this.#target.serviceAdded(this.#extra);
      this.#changes += 2;
    }
  }
}

/** Writes the whole cluster to one manifest file at every change, by rename (as editors and ConfigMap mounts do) or in place. */
export class ManifestFileTarget implements ChurnTarget {
  readonly #file: string;
  readonly #cluster: SyntheticCluster;
  readonly #inPlace: boolean;
  /** Each object's YAML, by identity: a changed object is a new object (mutateOneEndpoint), so only it is rendered again. */
  readonly #yaml = new WeakMap<object, Buffer>();
  #extra: ExtraService | undefined;

  constructor(file: string, cluster: SyntheticCluster, options: { readonly inPlace?: boolean } = {}) {
    this.#file = file;
    this.#cluster = cluster;
    this.#inPlace = options.inPlace ?? false;
  }

  write(): void {
    const objects = [this.#cluster.node, ...this.#cluster.services, ...(this.#extra ? [this.#extra.service] : []), ...this.#cluster.slices, ...(this.#extra ? [this.#extra.slice] : [])];
    const separator = Buffer.from('---\n');
    const pieces = objects.flatMap((object, i) => {
      let yaml = this.#yaml.get(object);
      if (yaml === undefined) this.#yaml.set(object, (yaml = Buffer.from(stringify(object))));
      return i === 0 ? [yaml] : [separator, yaml];
    });
    const bytes = Buffer.concat(pieces); // 24 MB at 10k services: copied once, not built as a string
    if (this.#inPlace) writeFileSync(this.#file, bytes);
    else {
      writeFileSync(`${this.#file}.tmp`, bytes);
      renameSync(`${this.#file}.tmp`, this.#file);
    }
  }

  async endpointsChanged(): Promise<void> {
    this.write();
  }

  async serviceAdded(extra: ExtraService): Promise<void> {
    this.#extra = extra;
    this.write();
  }

  async serviceRemoved(): Promise<void> {
    this.#extra = undefined; // written with the next service
  }
}

/** Applies the changes to the test apiserver as its admin. */
export class ApiserverTarget implements ChurnTarget {
  readonly #admin: Admin;

  constructor(admin: Admin) {
    this.#admin = admin;
  }

  async endpointsChanged(slice: RawObject): Promise<void> {
    await this.#admin.request('PATCH', slicePath(slice), { endpoints: slice.endpoints });
  }

  async serviceAdded(extra: ExtraService): Promise<void> {
    // The apiserver allocates the cluster IP and the node ports; the status (LoadBalancer IP) is not a client's to set.
    const { clusterIP: _ip, ports, healthCheckNodePort: _health, ...spec } = extra.service.spec as RawObject;
    const metadata = extra.service.metadata as RawObject;
    await this.#admin.request('POST', `/api/v1/namespaces/${EXTRA_NAMESPACE}/services`, {
      metadata: { name: metadata.name, labels: metadata.labels },
      spec: { ...spec, ports: (ports as RawObject[]).map(({ nodePort: _port, ...port }) => port) },
    });
    await this.#admin.request('POST', `/apis/discovery.k8s.io/v1/namespaces/${EXTRA_NAMESPACE}/endpointslices`, sliceBody(extra.slice));
  }

  async serviceRemoved(extra: ExtraService): Promise<void> {
    await this.#admin.request('DELETE', slicePath(extra.slice));
    await this.#admin.request('DELETE', servicePath(extra.service));
  }
}
