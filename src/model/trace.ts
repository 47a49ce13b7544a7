// The packet tracer's vocabulary, shared by every mode and by the packet-flow table.
import type { Protocol } from './types.ts';

export type PacketOrigin = 'pod' | 'node' | 'external';

export interface Packet {
  readonly src: string;
  readonly dst: string;
  readonly port: number;
  readonly protocol: Protocol;
  readonly from: PacketOrigin;
}

/** One backend the packet may reach, and whether it arrives with the node's address as its source. */
export interface Reach {
  /** "ip:port" ("[ip]:port" for IPv6). */
  readonly endpoint: string;
  readonly masquerade: boolean;
}

export type Verdict =
  /** Not service traffic: the proxy leaves it alone. */
  | { readonly kind: 'untouched' }
  | { readonly kind: 'forward'; readonly reaches: readonly Reach[] }
  /** Refused at once (ICMP unreachable / TCP reset). */
  | { readonly kind: 'reject' }
  /** Silently dropped. */
  | { readonly kind: 'drop' };
