// Small pieces of the composition root shared by `kproxy` (run), `plan` and `trace`: which node we are, the
// options of the Kubernetes semantics, the cluster store and the source of cluster objects.
import { hostname } from 'node:os';
import { ManifestSource, readManifests } from '../../controllers/manifests/index.ts';
import type { ComputeOptions } from '../compute/options.ts';
import type { ProxyConfig } from '../config/types.ts';
import { SourceUnavailableError } from '../errors.ts';
import type { Logger } from '../model/mode.ts';
import type { InvalidObject } from '../model/observe.ts';
import type { ClusterSource, ObjectKind } from '../model/source.ts';
import type { DesiredState } from '../model/types.ts';
import { ClusterStore } from '../store/cluster-store.ts';
import { firstLineOf } from '../util/errors.ts';
import { tapClusterEvents } from '../health/tap.ts';

export interface NodeNameInput {
  readonly hostnameOverride?: string;
  /** Names of the Node objects found in --manifests (the name of the only one is used). */
  readonly manifestNodeNames?: readonly string[];
  readonly systemHostname?: string;
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/**
 * --hostname-override, else the Node of a manifest holding exactly one, else $NODE_NAME (set from the downward
 * API in a DaemonSet), else the host name; lower-cased as kube-proxy does.
 */
export function resolveNodeName(input: NodeNameInput): string {
  if (input.hostnameOverride) return input.hostnameOverride;
  const [only, ...others] = input.manifestNodeNames ?? [];
  if (only !== undefined && others.length === 0) return only;
  const fromEnv = input.env?.NODE_NAME?.trim();
  if (fromEnv) return fromEnv.toLowerCase();
  return (input.systemHostname ?? hostname()).trim().toLowerCase();
}

export function computeOptionsOf(config: ProxyConfig, nodeName: string): ComputeOptions {
  return {
    nodeName,
    ...(config.serviceProxyName !== undefined && { proxyName: config.serviceProxyName }),
    clusterCIDRs: config.clusterCIDRs,
    // BridgeInterface / InterfaceNamePrefix are not built: the config warned, and the cluster CIDRs serve.
    detectLocal: config.detectLocalMode === 'NodeCIDR' ? 'NodeCIDR' : 'ClusterCIDR',
    nodePortAddresses: config.nodePortAddresses,
    // 0.0.0.0 / :: (the default) leave the primary address to the Node object, as kube-proxy.
    ...(config.bindAddress !== '0.0.0.0' && config.bindAddress !== '::' && { primaryIP: config.bindAddress }),
    masqueradeAll: config.masqueradeAll,
    masqueradeBit: config.masqueradeBit,
    conntrackTcpLiberal: config.conntrack.tcpBeLiberal,
    ...(config.featureGates.PreferSameTrafficDistribution === false && { nodeHints: false }),
  };
}

export interface StoreHooks {
  readonly onInvalid?: (invalid: InvalidObject) => void;
}

/**
 * The store, reporting each skipped object in one warning line (namespace/name and why), and each object read
 * from legacy address forms in one warning line (namespace/name, the fields and how they are read).
 */
export function createStore(compute: ComputeOptions, log: Logger, hooks: StoreHooks = {}): ClusterStore {
  return new ClusterStore({
    compute,
    onInvalid: (invalid) => {
      log.warn({ kind: invalid.kind, object: invalid.ref, reason: invalid.reason }, `Skipping invalid ${invalid.kind} ${invalid.ref}: ${invalid.reason}`);
      hooks.onInvalid?.(invalid);
    },
    onNotice: (notice) => {
      log.warn({ kind: notice.kind, object: notice.ref, notes: notice.notes },
        `${notice.kind} ${notice.ref} uses legacy address forms, read as kube-proxy reads them: ${notice.notes.join('; ')}`);
    },
  });
}

/**
 * Names of the Node objects in the manifests (to learn the node name before the store exists). `strict`: a file that
 * cannot be read or parsed is an error (one-shot commands), not a warning (the agent).
 */
export function manifestNodeNames(path: string, log: Logger, strict = false): string[] {
  return readManifests({ path, log, strict }).nodes.map(nodeNameOf).filter((name) => name !== '');
}

function nodeNameOf(node: unknown): string {
  const metadata = node !== null && typeof node === 'object' ? (node as { metadata?: unknown }).metadata : undefined;
  const name = metadata !== null && typeof metadata === 'object' ? (metadata as { name?: unknown }).name : undefined;
  return typeof name === 'string' ? name : '';
}

/** The node name for `config`, reading the manifests' Node when needed (strictly for one-shot commands). */
export function nodeNameFor(config: ProxyConfig, log: Logger, strict = false): string {
  return resolveNodeName({
    ...(config.hostnameOverride !== undefined && { hostnameOverride: config.hostnameOverride }),
    ...(config.hostnameOverride === undefined && config.manifests !== undefined && { manifestNodeNames: manifestNodeNames(config.manifests, log, strict) }),
    env: process.env,
  });
}

export interface SourceHooks {
  /** Told about every informer restart of the Kubernetes source (metrics). */
  readonly onRestart?: (kind: ObjectKind) => void;
}

/**
 * --manifests wins; otherwise the Kubernetes API (--kubeconfig, --master or the in-cluster service account).
 * Not finding connection settings is a one-line SourceUnavailableError, not a stack trace.
 */
export async function createSource(config: ProxyConfig, nodeName: string, log: Logger, hooks: SourceHooks = {}): Promise<ClusterSource> {
  if (config.manifests !== undefined) return new ManifestSource({ path: config.manifests, log, nodeName });
  const { createKubeSource } = await loadKubeSource();
  try {
    return createKubeSource({
      nodeName,
      connection: {
        ...config.clientConnection,
        ...(config.kubeconfig !== undefined && { kubeconfig: config.kubeconfig }),
        ...(config.master !== undefined && { master: config.master }),
      },
      ...(config.serviceProxyName !== undefined && { proxyName: config.serviceProxyName }),
      log: log.child({ component: 'kube' }),
      ...(hooks.onRestart && { onRestart: hooks.onRestart }),
    });
  } catch (err) {
    throw new SourceUnavailableError(`cannot use the Kubernetes API: ${firstLineOf(err)}; use --kubeconfig, --master or --manifests`);
  }
}

/** The Kubernetes source, loaded only when needed (it pulls in the API client); typed by its own module. */
async function loadKubeSource(): Promise<typeof import('../../controllers/kube/source.ts')> {
  try {
    return await import('../../controllers/kube/source.ts');
  } catch (err) {
    // A package built without controllers/kube (the import cannot be resolved) still runs from --manifests.
    if ((err as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND') {
      throw new SourceUnavailableError('the Kubernetes API source is not available in this build; use --manifests PATH');
    }
    throw err;
  }
}

/**
 * One-shot desired state from --manifests (plan, trace): no watching, nothing programmed. Input it cannot read is an
 * error (one line naming the file and line): there is no last good state to keep.
 */
export async function desiredStateFromManifests(config: ProxyConfig, log: Logger): Promise<{ state: DesiredState; nodeName: string }> {
  if (config.manifests === undefined) throw new SourceUnavailableError('this command needs --manifests PATH');
  const nodeName = nodeNameFor(config, log, true);
  const store = createStore(computeOptionsOf(config, nodeName), log);
  const source = new ManifestSource({ path: config.manifests, log, nodeName, watch: false, strict: true });
  await source.start(store);
  await source.stop();
  return { state: store.snapshot(), nodeName };
}

export interface ClusterReadOptions {
  /** Longest wait for the first complete lists of Services and EndpointSlices. */
  readonly timeoutMs?: number;
  /** After those, how long the Node's list may still take (it may be absent or not readable). */
  readonly nodeGraceMs?: number;
}

/**
 * One-shot desired state as the running proxy sees it (plan and trace inside the pod): from --manifests when
 * given, else one list of the cluster's objects through the same source and credentials as the proxy.
 */
export async function desiredStateOnce(config: ProxyConfig, log: Logger, options: ClusterReadOptions = {}): Promise<{ state: DesiredState; nodeName: string }> {
  if (config.manifests !== undefined) return desiredStateFromManifests(config, log);
  const nodeName = nodeNameFor(config, log);
  const store = createStore(computeOptionsOf(config, nodeName), log);
  const source = await createSource(config, nodeName, log);
  let markSynced = (): void => undefined;
  let markNode = (): void => undefined;
  const synced = new Promise<void>((resolve) => { markSynced = resolve; });
  const nodeListed = new Promise<void>((resolve) => { markNode = resolve; });
  const timer = (ms: number): { done: Promise<'timeout'>; clear(): void } => {
    let handle: NodeJS.Timeout | undefined;
    return { done: new Promise((resolve) => { handle = setTimeout(() => resolve('timeout'), ms); }), clear: () => clearTimeout(handle) };
  };
  await source.start(tapClusterEvents(store, { synced: markSynced, replaceAll: (kind) => { if (kind === 'Node') markNode(); } }));
  try {
    const listWait = timer(options.timeoutMs ?? 30_000);
    const outcome = await Promise.race([synced, listWait.done]);
    listWait.clear();
    if (outcome === 'timeout') {
      throw new SourceUnavailableError(`no complete list of Services and EndpointSlices from ${source.description} within ${(options.timeoutMs ?? 30_000) / 1000} s`);
    }
    const nodeWait = timer(options.nodeGraceMs ?? 5000);
    if (await Promise.race([nodeListed, nodeWait.done]) === 'timeout') log.warn({ node: nodeName }, `Node ${nodeName} not read: computed without it`);
    nodeWait.clear();
  } finally {
    await source.stop();
  }
  return { state: store.snapshot(), nodeName };
}
