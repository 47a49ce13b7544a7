// Compact service descriptions → Kubernetes Service/EndpointSlice/Node objects in a manifest file (multi-document
// YAML), for tests that run kproxy with --manifests.
import { renameSync, writeFileSync } from 'node:fs';
import { stringify } from 'yaml';
import type { Pod } from './cluster.ts';

export interface PortSpec {
  readonly name?: string;
  readonly port: number;
  readonly targetPort?: number;
  readonly protocol?: 'TCP' | 'UDP' | 'SCTP';
  readonly nodePort?: number;
}

export interface EndpointSpec {
  readonly pod: Pod;
  /** nodeName of the endpoint; default "node1" (the node kproxy runs as). */
  readonly node?: string;
  readonly ready?: boolean;
  readonly serving?: boolean;
  readonly terminating?: boolean;
}

export interface ServiceSpec {
  readonly name: string;
  readonly namespace?: string;
  readonly clusterIP: string;
  /** Also give the service this IPv6 cluster IP (dual-stack). */
  readonly clusterIP6?: string;
  readonly type?: 'ClusterIP' | 'NodePort' | 'LoadBalancer';
  readonly ports: readonly PortSpec[];
  readonly endpoints: readonly EndpointSpec[];
  readonly externalTrafficPolicy?: 'Cluster' | 'Local';
  readonly internalTrafficPolicy?: 'Cluster' | 'Local';
  readonly affinityTimeoutSeconds?: number;
  readonly externalIPs?: readonly string[];
  readonly loadBalancerIPs?: readonly string[];
  readonly loadBalancerSourceRanges?: readonly string[];
}

export interface NodeSpec {
  readonly name: string;
  readonly ip: string;
}

type Obj = Record<string, unknown>;

function serviceObject(spec: ServiceSpec): Obj {
  const ips = spec.clusterIP6 ? [spec.clusterIP, spec.clusterIP6] : [spec.clusterIP];
  const type = spec.type ?? 'ClusterIP';
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: spec.name, namespace: spec.namespace ?? 'default' },
    spec: {
      type,
      clusterIP: spec.clusterIP,
      clusterIPs: ips,
      ipFamilies: ips.map((ip) => (ip.includes(':') ? 'IPv6' : 'IPv4')),
      ipFamilyPolicy: ips.length > 1 ? 'RequireDualStack' : 'SingleStack',
      ports: spec.ports.map((p) => ({
        ...(p.name !== undefined ? { name: p.name } : {}),
        port: p.port,
        targetPort: p.targetPort ?? p.port,
        protocol: p.protocol ?? 'TCP',
        ...(p.nodePort !== undefined ? { nodePort: p.nodePort } : {}),
      })),
      ...(type !== 'ClusterIP' ? { externalTrafficPolicy: spec.externalTrafficPolicy ?? 'Cluster' } : {}),
      ...(spec.internalTrafficPolicy ? { internalTrafficPolicy: spec.internalTrafficPolicy } : {}),
      ...(spec.affinityTimeoutSeconds !== undefined
        ? { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: spec.affinityTimeoutSeconds } } }
        : {}),
      ...(spec.externalIPs ? { externalIPs: spec.externalIPs } : {}),
      ...(spec.loadBalancerSourceRanges ? { loadBalancerSourceRanges: spec.loadBalancerSourceRanges } : {}),
    },
    ...(spec.loadBalancerIPs ? { status: { loadBalancer: { ingress: spec.loadBalancerIPs.map((ip) => ({ ip })) } } } : {}),
  };
}

function sliceObject(spec: ServiceSpec, family: 'IPv4' | 'IPv6'): Obj {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: `${spec.name}-${family === 'IPv4' ? 'v4' : 'v6'}`,
      namespace: spec.namespace ?? 'default',
      labels: { 'kubernetes.io/service-name': spec.name },
    },
    addressType: family,
    endpoints: spec.endpoints.map((e) => ({
      addresses: [family === 'IPv4' ? e.pod.ip : e.pod.ip6],
      conditions: { ready: e.ready ?? true, serving: e.serving ?? e.ready ?? true, terminating: e.terminating ?? false },
      nodeName: e.node ?? 'node1',
      targetRef: { kind: 'Pod', name: e.pod.name, namespace: spec.namespace ?? 'default' },
    })),
    ports: spec.ports.map((p) => ({
      ...(p.name !== undefined ? { name: p.name } : {}),
      port: p.targetPort ?? p.port,
      protocol: p.protocol ?? 'TCP',
    })),
  };
}

export function manifestObjects(services: readonly ServiceSpec[], nodes: readonly NodeSpec[] = []): Obj[] {
  const objects: Obj[] = nodes.map((n) => ({
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: n.name },
    status: { addresses: [{ type: 'InternalIP', address: n.ip }] },
  }));
  for (const spec of services) {
    objects.push(serviceObject(spec), sliceObject(spec, 'IPv4'));
    if (spec.clusterIP6) objects.push(sliceObject(spec, 'IPv6'));
  }
  return objects;
}

export function manifestText(services: readonly ServiceSpec[], nodes: readonly NodeSpec[] = []): string {
  return manifestObjects(services, nodes).map((o) => stringify(o)).join('---\n');
}

/** Replace the file atomically (write + rename), as a config-map update does, so no reader sees half a file. */
export function writeManifests(path: string, services: readonly ServiceSpec[], nodes: readonly NodeSpec[] = []): void {
  const temp = `${path}.tmp`;
  writeFileSync(temp, manifestText(services, nodes));
  renameSync(temp, path);
}
