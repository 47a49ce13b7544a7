// Talking to kube-apiserver: connection settings (in-cluster, --kubeconfig, --master, clientConnection),
// authentication and TLS through @kubernetes/client-node's KubeConfig, and the three calls the proxy makes
// (paged list, watch, create). Lists are parsed as plain JSON (no per-field model classes) to stay fast at 10k objects.
import { existsSync } from 'node:fs';
import { HttpMethod, KubeConfig, RequestContext, Watch } from './client-lib.ts';
import { fetch } from 'undici';
import type { Clock } from '../../src/model/clock.ts';
import { TokenBucket } from './rate-limit.ts';
import { decodeListPage, PROTOBUF_CONTENT_TYPE, type ItemDecoder } from './protobuf.ts';
import { isRecord } from '../../src/util/record.ts';

export interface ClientConnectionOptions {
  /** --kubeconfig, else clientConnection.kubeconfig. */
  readonly kubeconfig?: string;
  /** --master: overrides the server of the kubeconfig (or is used alone, without credentials). */
  readonly master?: string;
  /**
   * clientConnection.contentType / acceptContentTypes (given only when not kube-proxy's default, protobuf). Lists are
   * read in protobuf (as kube-proxy does) unless these ask for JSON only; watches and writes are JSON either way.
   */
  readonly contentType?: string;
  readonly acceptContentTypes?: string;
  /** clientConnection.qps / burst (upstream defaults 5 / 10). qps ≤ 0: unthrottled. */
  readonly qps?: number;
  readonly burst?: number;
  /** Where the in-cluster service account lives (tests point it elsewhere). */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

export interface LoadedConfig {
  readonly kubeConfig: KubeConfig;
  readonly server: string;
  /** Whether lists may be read in protobuf (see ClientConnectionOptions.contentType). */
  readonly protobufLists: boolean;
  /** Settings that were asked for but cannot be honoured, one line each (the caller logs them). */
  readonly notes: readonly string[];
}

const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/** Build the client configuration the way kube-proxy does: flags first, else the in-cluster service account. */
export function loadClientConfig(options: ClientConnectionOptions): LoadedConfig {
  const notes: string[] = [];
  const kc = new KubeConfig();
  const env = options.env ?? process.env;
  if (options.kubeconfig) {
    kc.loadFromFile(options.kubeconfig);
  } else if (!options.master) {
    if (!env.KUBERNETES_SERVICE_HOST || !existsSync(SERVICE_ACCOUNT_TOKEN)) {
      throw new Error('no --kubeconfig or --master given and not running in a cluster (no KUBERNETES_SERVICE_HOST / service account token)');
    }
    kc.loadFromCluster();
  }
  if (options.master) {
    const cluster = kc.getCurrentCluster();
    if (cluster) {
      // Same credentials, other server (as client-go's BuildConfigFromFlags).
      kc.clusters = kc.clusters.map((c) => (c.name === cluster.name ? { ...c, server: options.master ?? c.server } : c));
    } else {
      kc.loadFromClusterAndUser({ name: 'master', server: options.master, skipTLSVerify: false }, { name: 'anonymous' });
    }
  }
  const server = kc.getCurrentCluster()?.server;
  if (!server) throw new Error('the kubeconfig has no current cluster with a server address');
  let protobufLists = true;
  for (const [field, value] of [['contentType', options.contentType], ['acceptContentTypes', options.acceptContentTypes]] as const) {
    if (!value) continue;
    const types = value.split(',').map((type) => type.trim());
    if (!types.includes(PROTOBUF_CONTENT_TYPE)) protobufLists = false;
    if (!types.every((type) => type === 'application/json' || type === PROTOBUF_CONTENT_TYPE)) {
      notes.push(`clientConnection.${field} ${JSON.stringify(value)} is not supported; using ${protobufLists ? 'protobuf for lists, ' : ''}application/json`);
    }
  }
  return { kubeConfig: kc, server: server.replace(/\/+$/, ''), protobufLists, notes };
}

/** An error answer from the apiserver (or a transport failure, statusCode undefined). */
export class ApiError extends Error {
  readonly statusCode: number | undefined;
  readonly reason: string | undefined;
  constructor(message: string, statusCode?: number, reason?: string) {
    super(message);
    this.name = 'ApiError';
    this.statusCode = statusCode;
    this.reason = reason;
  }
}

/** 410 Gone / reason Expired: the resourceVersion (or continue token) is too old; relist from scratch. */
export function isGone(error: unknown): boolean {
  if (error instanceof ApiError) return error.statusCode === 410 || error.reason === 'Expired' || error.reason === 'Gone';
  const code = (error as { statusCode?: unknown; code?: unknown } | null)?.statusCode ?? (error as { code?: unknown } | null)?.code;
  return code === 410;
}

export interface ListPage {
  /** The objects; already slim (slim.ts) when read in protobuf. */
  readonly items: readonly unknown[];
  readonly resourceVersion: string;
  /** Token for the next page; undefined on the last page. */
  readonly continueToken: string | undefined;
}

export type QueryParams = Readonly<Record<string, string | number | boolean | undefined>>;

/** One running watch; `done` settles once, when the stream ends for whatever reason. */
export interface WatchHandle {
  abort(): void;
  readonly done: Promise<Error | null>;
}

export type WatchEventHandler = (type: string, object: unknown) => void;

export interface KubeApi {
  readonly server: string;
  /**
   * One page of a list. With `protobuf` (the kind's decoder, protobuf.ts), the list is asked for in protobuf and its
   * items come back slim (`slim: true`); a server that answers JSON is read as JSON.
   */
  list(path: string, params: QueryParams, protobuf?: ItemDecoder): Promise<ListPage & { readonly slim?: boolean }>;
  /** Resolves once the apiserver answered 200 (the watch is established); rejects if it did not. */
  watch(path: string, params: QueryParams, onEvent: WatchEventHandler): Promise<WatchHandle>;
  create(path: string, body: object): Promise<void>;
}

export interface KubeApiOptions {
  readonly config: LoadedConfig;
  readonly clock: Clock;
  readonly qps?: number;
  readonly burst?: number;
}

type Json = Record<string, unknown>;


async function errorFromResponse(response: { status: number; statusText: string; text(): Promise<string> }, what: string): Promise<ApiError> {
  let message = response.statusText || `HTTP ${response.status}`;
  let reason: string | undefined;
  try {
    const body: unknown = JSON.parse(await response.text());
    if (isRecord(body)) {
      if (typeof body.message === 'string') message = body.message;
      if (typeof body.reason === 'string') reason = body.reason;
    }
  } catch {
    // Not a Status object: keep the HTTP status text.
  }
  return new ApiError(`${what}: ${message} (HTTP ${response.status})`, response.status, reason);
}

function urlOf(server: string, path: string, params: QueryParams): string {
  const url = new URL(server + path);
  for (const [key, value] of Object.entries(params)) if (value !== undefined) url.searchParams.set(key, String(value));
  return url.toString();
}

export function createKubeApi(options: KubeApiOptions): KubeApi {
  const kc = options.config.kubeConfig;
  const server = options.config.server;
  const limiter = new TokenBucket({ qps: options.qps ?? 5, burst: options.burst ?? 10, clock: options.clock });
  const watcher = new Watch(kc);

  async function request(method: HttpMethod, path: string, params: QueryParams, body?: object, accept = 'application/json') {
    await limiter.acquire();
    const url = urlOf(server, path, params);
    const context = new RequestContext(url, method);
    await kc.applySecurityAuthentication(context);
    const headers = { ...context.getHeaders(), Accept: accept, ...(body ? { 'Content-Type': 'application/json' } : {}) };
    try {
      return await fetch(url, {
        method,
        headers,
        dispatcher: context.getDispatcher(),
        ...(body ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(60_000),
      });
    } catch (error) {
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      throw new ApiError(`${method} ${path}: ${cause?.code ?? cause?.message ?? (error as Error).message}`);
    }
  }

  return {
    server,
    async list(path, params, protobuf) {
      const useProtobuf = protobuf !== undefined && options.config.protobufLists;
      const accept = useProtobuf ? `${PROTOBUF_CONTENT_TYPE}, application/json` : 'application/json';
      const response = await request(HttpMethod.GET, path, params, undefined, accept);
      if (response.status !== 200) throw await errorFromResponse(response, `list ${path}`);
      if (useProtobuf && response.headers.get('content-type')?.startsWith(PROTOBUF_CONTENT_TYPE)) {
        return { ...decodeListPage(Buffer.from(await response.arrayBuffer()), protobuf), slim: true };
      }
      const body: unknown = await response.json();
      const metadata = isRecord(body) && isRecord(body.metadata) ? body.metadata : {};
      const items = isRecord(body) && Array.isArray(body.items) ? body.items : [];
      return {
        items,
        resourceVersion: typeof metadata.resourceVersion === 'string' ? metadata.resourceVersion : '',
        continueToken: typeof metadata.continue === 'string' && metadata.continue !== '' ? metadata.continue : undefined,
      };
    },
    async watch(path, params, onEvent) {
      await limiter.acquire();
      let settle: (error: Error | null) => void = () => {};
      const done = new Promise<Error | null>((resolve) => { settle = resolve; });
      let ended: Error | null | undefined;
      // The library's Watch swallows exceptions thrown by the callback; the handler must not throw.
      const controller = await watcher.watch(path, { ...params }, (type: string, object: unknown) => onEvent(type, object), (error: unknown) => {
        ended = error == null ? null : error instanceof Error ? error : new Error(String(error));
        settle(ended);
      });
      if (ended !== undefined) {
        // It never got going: the apiserver refused (status code) or could not be reached.
        const code = (ended as { statusCode?: number } | null)?.statusCode;
        const cause = (ended as { cause?: { code?: string } } | null)?.cause?.code;
        throw new ApiError(`watch ${path}: ${cause ?? ended?.message ?? 'closed at once'}${code ? ` (HTTP ${code})` : ''}`, code);
      }
      return { abort: () => controller.abort(), done };
    },
    async create(path, body) {
      const response = await request(HttpMethod.POST, path, {}, body);
      if (response.status !== 201 && response.status !== 200) throw await errorFromResponse(response, `create ${path}`);
      await response.body?.cancel();
    },
  };
}

/** core/v1 Events posted through the proxy's own client (for src/events). */
export function kubeEventSink(api: KubeApi): { create(event: { metadata: { namespace: string } }): Promise<void> } {
  return {
    create: (event) => api.create(`/api/v1/namespaces/${encodeURIComponent(event.metadata.namespace)}/events`, event),
  };
}
