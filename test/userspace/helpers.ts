// Builders of desired state and small socket helpers for the userspace mode's tests.
import dgram from 'node:dgram';
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import type { Logger } from '../../src/model/mode.ts';
import { withRoutes } from '../harness/state.ts';
import type { DesiredState, Endpoint, Frontend, ServicePortPlan } from '../../src/model/types.ts';

export interface ServiceSpec {
  readonly name: string;
  readonly namespace?: string;
  readonly protocol?: 'TCP' | 'UDP' | 'SCTP';
  readonly clusterIP: string;
  readonly port: number;
  /** [ip, port, local?] */
  readonly endpoints: readonly (readonly [string, number, boolean?])[];
  readonly nodePort?: number;
  readonly externalIPs?: readonly string[];
  readonly loadBalancerIPs?: readonly string[];
  readonly sourceRanges?: readonly string[];
  readonly affinitySeconds?: number;
  readonly externalPolicyLocal?: boolean;
}

const endpoint = ([ip, port, local]: readonly [string, number, boolean?]): Endpoint => ({
  ip, port, local: local ?? false, ready: true, serving: true, terminating: false,
});

export function servicePlan(spec: ServiceSpec): ServicePortPlan {
  const all = spec.endpoints.map(endpoint);
  const frontends: Frontend[] = [{ kind: 'ClusterIP', ip: spec.clusterIP, port: spec.port }];
  for (const ip of spec.externalIPs ?? []) frontends.push({ kind: 'ExternalIP', ip, port: spec.port });
  for (const ip of spec.loadBalancerIPs ?? []) frontends.push({ kind: 'LoadBalancer', ip, port: spec.port });
  if (spec.nodePort !== undefined) frontends.push({ kind: 'NodePort', port: spec.nodePort });
  const namespace = spec.namespace ?? 'default';
  return withRoutes({
    key: `${namespace}/${spec.name}:`,
    namespace,
    name: spec.name,
    portName: '',
    protocol: spec.protocol ?? 'TCP',
    family: spec.clusterIP.includes(':') ? 'IPv6' : 'IPv4',
    port: spec.port,
    clusterIP: spec.clusterIP,
    frontends,
    ...(spec.nodePort !== undefined ? { nodePort: spec.nodePort } : {}),
    ...(spec.affinitySeconds !== undefined ? { affinity: { timeoutSeconds: spec.affinitySeconds } } : {}),
    externalPolicyLocal: spec.externalPolicyLocal ?? false,
    internalPolicyLocal: false,
    sourceRanges: spec.sourceRanges ?? [],
    clusterEndpoints: all,
    localEndpoints: all.filter((e) => e.local),
    allEndpoints: all,
    hasEndpoints: all.length > 0,
  });
}

export interface StateSpec {
  readonly nodeIPs?: readonly string[];
  readonly nodePortAddresses?: readonly string[] | 'all';
  readonly clusterCidrs?: readonly string[];
}

export function desiredState(services: readonly ServiceSpec[], spec: StateSpec = {}): DesiredState {
  const plans = services.map(servicePlan).sort((a, b) => (a.key < b.key ? -1 : 1));
  const family = (f: 'IPv4' | 'IPv6') => ({
    family: f,
    services: plans.filter((p) => p.family === f),
    nodePortAddresses: spec.nodePortAddresses ?? ('all' as const),
    localDetector: spec.clusterCidrs
      ? { kind: 'ClusterCIDR' as const, cidrs: spec.clusterCidrs.filter((c) => c.includes(':') === (f === 'IPv6')) }
      : { kind: 'None' as const },
    nodeIPs: (spec.nodeIPs ?? []).filter((ip) => ip.includes(':') === (f === 'IPv6')),
  });
  return {
    node: { name: 'node1', shuttingDown: false },
    settings: { masqueradeAll: false, masqueradeBit: 14, conntrackTcpLiberal: false },
    families: { IPv4: family('IPv4'), IPv6: family('IPv6') },
  };
}

export interface CapturedLine {
  readonly level: string;
  readonly obj: object;
  readonly msg: string | undefined;
}

/** A Logger that keeps its lines (tests assert on refused/failed messages). */
export function memoryLogger(lines: CapturedLine[] = []): Logger & { lines: CapturedLine[] } {
  const at = (level: string) => (obj: object, msg?: string): void => void lines.push({ level, obj, msg });
  const logger = { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => logger };
  return logger;
}

/** A port that is free on `ip` right now. */
export async function freePort(ip: string): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen({ host: ip, port: 0 }, resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A TCP backend that answers every connection with its name and closes. */
export async function nameServer(ip: string, name: string, port = 0): Promise<{ server: net.Server; port: number }> {
  const server = net.createServer((socket) => {
    socket.on('error', () => undefined);
    socket.end(name);
  });
  await new Promise<void>((resolve) => server.listen({ host: ip, port }, resolve));
  return { server, port: (server.address() as net.AddressInfo).port };
}

/** Connect, read until the peer closes, return what was read (or the error code). */
export function fetchText(ip: string, port: number, send?: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: ip, port });
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (data += chunk));
    socket.on('connect', () => {
      if (send !== undefined) socket.write(send);
    });
    socket.on('error', (err: NodeJS.ErrnoException) => resolve(`ERR:${err.code ?? err.message}`));
    socket.on('close', () => resolve(data));
  });
}

export function countBy(values: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of values) out[v] = (out[v] ?? 0) + 1;
  return out;
}

/** A UDP echo backend that prefixes replies with its name. */
export async function udpNameEcho(ip: string, name: string): Promise<{ socket: dgram.Socket; port: number }> {
  const socket = dgram.createSocket('udp4');
  socket.on('message', (msg, rinfo) => socket.send(`${name}:${msg.toString()}`, rinfo.port, rinfo.address));
  await new Promise<void>((resolve) => socket.bind({ address: ip, port: 0 }, resolve));
  return { socket, port: socket.address().port };
}

/** Send one datagram from `client` and wait for the reply. */
export function udpAsk(client: dgram.Socket, ip: string, port: number, text: string, timeoutMs = 2000): Promise<{ text: string; from: string }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off('message', onMessage);
      reject(new Error(`no UDP reply from ${ip}:${port}`));
    }, timeoutMs);
    const onMessage = (msg: Buffer, rinfo: dgram.RemoteInfo): void => {
      clearTimeout(timer);
      client.off('message', onMessage);
      resolve({ text: msg.toString(), from: `${rinfo.address}:${rinfo.port}` });
    };
    client.on('message', onMessage);
    client.send(text, port, ip);
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Resident memory of a process and all its descendants (kproxy plus its relay processes), in KiB: the
 * total and each process's own (the root first). */
export function treeRssKiB(root: number): { total: number; each: number[] } {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // "pid (comm) state ppid …": comm may hold spaces, so read after the last ')'.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // exited meanwhile
    }
  }
  const each: number[] = [];
  const walk = (pid: number): void => {
    try {
      each.push(Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0));
    } catch {
      return;
    }
    for (const child of children.get(pid) ?? []) walk(child);
  };
  walk(root);
  return { total: each.reduce((a, b) => a + b, 0), each };
}
