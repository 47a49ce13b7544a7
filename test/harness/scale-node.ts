// A node for scale benchmarks: every endpoint of a synthetic cluster answers, however many there are.
//
//   <p>-cli 10.250.0.2 ==veth== 10.250.0.1 (eth1) <p>-node (eth0) 192.168.100.2 ==veth== 192.168.100.1 <p>-sink
//                                                                               the sink owns all of 10.244.0.0/16
// The sink holds a local route for the whole pod range (AnyIP), so one pod server there answers for every pod IP of
// test/fixtures/synthetic.ts (10.244.0.0/16) on the ports given: a service's DNAT to any of its endpoints reaches a
// real socket. The client is a pod outside that range but inside the cluster CIDR the proxies are given
// (SCALE_CLUSTER_CIDR), so its connections are not masqueraded. The node routes the pod range to the sink and has a
// default route there (connect() to a service IP needs a route before OUTPUT DNAT). Nothing in the root namespace.
import { namespaceTools, waitForLine, POD_SERVER, type NamespaceTools } from './cluster.ts';
import { addNamespace, deleteNamespace, nsRun, sweepStaleNamespaces, sysctl, uniquePrefix } from './netns.ts';
import { run, type RunOptions, type RunResult } from './run.ts';

export const SCALE_NODE_IP = '192.168.100.2';
export const SCALE_SINK_IP = '192.168.100.1';
export const SCALE_CLIENT_IP = '10.250.0.2';
export const SCALE_POD_RANGE = '10.244.0.0/16';
/** Covers the pod range and the client: traffic from the client counts as pod traffic. */
export const SCALE_CLUSTER_CIDR = '10.240.0.0/12';

export interface ScaleNode extends NamespaceTools {
  readonly prefix: string;
  readonly nodeNs: string;
  readonly sinkNs: string;
  readonly clientNs: string;
  exec(ns: string, cmd: string, args: readonly string[], options?: RunOptions): Promise<RunResult>;
  destroy(): Promise<void>;
}

export interface ScaleNodeOptions {
  /** Ports the sink answers on, TCP and UDP (default 8080, 8443: the synthetic cluster's TCP target ports). */
  readonly ports?: readonly number[];
}

export async function createScaleNode(options: ScaleNodeOptions = {}): Promise<ScaleNode> {
  sweepStaleNamespaces();
  const prefix = uniquePrefix();
  const nodeNs = `${prefix}-node`;
  const sinkNs = `${prefix}-sink`;
  const clientNs = `${prefix}-cli`;
  const tools = namespaceTools();
  const node: ScaleNode = {
    ...tools, prefix, nodeNs, sinkNs, clientNs,
    exec: (ns, cmd, args, runOptions) => nsRun(ns, cmd, args, runOptions),
    destroy: async () => {
      for (const child of tools.children) child.kill('SIGKILL');
      for (const ns of [clientNs, sinkNs, nodeNs]) await deleteNamespace(ns);
    },
  };
  const ip = (ns: string, ...args: string[]): Promise<RunResult> => run('ip', ['-n', ns, ...args]);
  try {
    for (const ns of [nodeNs, sinkNs, clientNs]) await addNamespace(ns);
    await sysctl(nodeNs, 'net.ipv4.ip_forward=1');
    await run('ip', ['link', 'add', 'eth0', 'netns', nodeNs, 'type', 'veth', 'peer', 'name', 'ext0', 'netns', sinkNs]);
    await run('ip', ['link', 'add', 'eth1', 'netns', nodeNs, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', clientNs]);
    await ip(nodeNs, 'addr', 'add', `${SCALE_NODE_IP}/24`, 'dev', 'eth0');
    await ip(nodeNs, 'addr', 'add', '10.250.0.1/24', 'dev', 'eth1');
    await ip(sinkNs, 'addr', 'add', `${SCALE_SINK_IP}/24`, 'dev', 'ext0');
    await ip(clientNs, 'addr', 'add', `${SCALE_CLIENT_IP}/24`, 'dev', 'eth0');
    for (const [ns, dev] of [[nodeNs, 'eth0'], [nodeNs, 'eth1'], [sinkNs, 'ext0'], [clientNs, 'eth0']] as const) await ip(ns, 'link', 'set', dev, 'up');
    await ip(nodeNs, 'route', 'add', 'default', 'via', SCALE_SINK_IP);
    await ip(nodeNs, 'route', 'add', SCALE_POD_RANGE, 'via', SCALE_SINK_IP);
    await ip(sinkNs, 'route', 'add', 'local', SCALE_POD_RANGE, 'dev', 'lo');
    await ip(sinkNs, 'route', 'add', '10.250.0.0/24', 'via', SCALE_NODE_IP);
    await ip(clientNs, 'route', 'add', 'default', 'via', '10.250.0.1');
    // many short connections: TIME_WAIT sockets must not collide with reused source ports
    for (const ns of [sinkNs, clientNs, nodeNs]) await sysctl(ns, 'net.ipv4.tcp_max_tw_buckets=0', 'net.ipv4.tcp_tw_reuse=1');
    await sysctl(clientNs, 'net.ipv4.ip_local_port_range=10000 65000');
    const server = tools.spawn(sinkNs, process.execPath, [POD_SERVER, 'sink', (options.ports ?? [8080, 8443]).join(',')]);
    await waitForLine(server, 'ready', 'sink server');
  } catch (error) {
    await node.destroy();
    throw error;
  }
  return node;
}
