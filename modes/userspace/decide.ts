// Which endpoints a client may reach through one listener (pure; shared by the relay and the tracer).
import type { Cidr } from '../../src/util/ip.ts';
import { cidrContains, parseCidr } from '../../src/util/ip.ts';
import type { ListenerRoute, RelayEndpoint } from './table.ts';

export type ClientScope = 'internal' | 'external';

export type Decision =
  | { readonly kind: 'forward'; readonly endpoints: readonly RelayEndpoint[] }
  | { readonly kind: 'reject' }
  | { readonly kind: 'drop' };

const parsed = new WeakMap<readonly string[], readonly Cidr[]>();

/** CIDR lists are parsed once per table (the arrays are shared by every listener that uses them). */
export function cidrsOf(texts: readonly string[]): readonly Cidr[] {
  let cidrs = parsed.get(texts);
  if (!cidrs) {
    cidrs = texts.map((t) => parseCidr(t)).filter((c): c is Cidr => c !== undefined);
    parsed.set(texts, cidrs);
  }
  return cidrs;
}

export interface ClassifyOptions {
  readonly internalCidrs: readonly string[];
  /** The node's own addresses (a connection from the node itself is internal). */
  readonly isNodeAddress: (ip: string) => boolean;
}

export function classifyClient(clientIp: string, options: ClassifyOptions): ClientScope {
  if (options.isNodeAddress(clientIp)) return 'internal';
  return cidrsOf(options.internalCidrs).some((c) => cidrContains(c, clientIp)) ? 'internal' : 'external';
}

export function decide(route: ListenerRoute, clientIp: string, scope: ClientScope): Decision {
  const endpoints = scope === 'internal' ? route.internal : route.external;
  const whenEmpty = scope === 'internal' ? route.internalEmpty : route.externalEmpty;
  // A service without any endpoint refuses everyone at once, whatever its source ranges (the kernel modes REJECT).
  if (endpoints.length === 0 && whenEmpty === 'reject') return { kind: 'reject' };
  if (route.sourceRanges.length > 0 && !cidrsOf(route.sourceRanges).some((c) => cidrContains(c, clientIp))) {
    return { kind: 'drop' };
  }
  return endpoints.length > 0 ? { kind: 'forward', endpoints } : { kind: whenEmpty };
}
