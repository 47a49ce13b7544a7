// Endpoint choice: round robin per service, ClientIP session affinity with an expiry. The clock is injected so
// that tests can move time. Only a service's key and affinity matter here, so the same Balancer can answer for
// relay processes that hold their own copy of the table (see decider.ts).
import type { ListenerRoute } from './table.ts';

interface Stickiness {
  endpointId: string;
  expiresAt: number;
}

/** What the choice depends on: the service and its affinity timeout. */
export type BalanceKey = Pick<ListenerRoute, 'serviceKey' | 'affinityTimeoutMs'>;

export interface Identified {
  readonly id: string;
}

/** Where endpoint choices are made: a local Balancer, or the one of relay host 0 asked over a socket. */
export interface Chooser {
  /** The endpoints in the order a new client should try them (the first is the choice). */
  order<T extends Identified>(route: BalanceKey, endpoints: readonly T[], clientIp: string): T[] | Promise<T[]>;
  /** A connection to `endpoint` succeeded (affinity remembers it). */
  chosen(route: BalanceKey, clientIp: string, endpoint: Identified): void;
  /** Forget expired stickiness and that of services that are gone. */
  sweep(liveServices: ReadonlySet<string>): void;
}

/** `endpoints` starting at index `start`, the others after it in order (they are the fallbacks). */
export function rotate<T>(endpoints: readonly T[], start: number): T[] {
  const at = endpoints.length === 0 ? 0 : ((start % endpoints.length) + endpoints.length) % endpoints.length;
  return at === 0 ? [...endpoints] : [...endpoints.slice(at), ...endpoints.slice(0, at)];
}

export interface BalancerOptions {
  readonly now?: () => number;
}

export class Balancer implements Chooser {
  readonly #now: () => number;
  readonly #counters = new Map<string, number>();
  readonly #sticky = new Map<string, Stickiness>();

  constructor(options: BalancerOptions = {}) {
    this.#now = options.now ?? Date.now;
  }

  /** Index in `endpoints` where a new client connection starts. */
  start(route: BalanceKey, endpoints: readonly Identified[], clientIp: string): number {
    if (route.affinityTimeoutMs !== undefined) {
      const sticky = this.#sticky.get(`${route.serviceKey}|${clientIp}`);
      if (sticky && sticky.expiresAt > this.#now()) {
        const at = endpoints.findIndex((e) => e.id === sticky.endpointId);
        if (at >= 0) return at;
      }
    }
    const counter = this.#counters.get(route.serviceKey) ?? 0;
    this.#counters.set(route.serviceKey, (counter + 1) % 0x40000000);
    const at = endpoints.length === 0 ? 0 : counter % endpoints.length;
    // Pin the client now, not after its connect succeeded: its other connections opened meanwhile must follow.
    const first = endpoints[at];
    if (first) this.chosen(route, clientIp, first);
    return at;
  }

  order<T extends Identified>(route: BalanceKey, endpoints: readonly T[], clientIp: string): T[] {
    return rotate(endpoints, this.start(route, endpoints, clientIp));
  }

  chosen(route: BalanceKey, clientIp: string, endpoint: Identified): void {
    if (route.affinityTimeoutMs === undefined) return;
    this.#sticky.set(`${route.serviceKey}|${clientIp}`, {
      endpointId: endpoint.id,
      expiresAt: this.#now() + route.affinityTimeoutMs,
    });
  }

  sweep(liveServices: ReadonlySet<string>): void {
    const now = this.#now();
    for (const [key, s] of this.#sticky) {
      if (s.expiresAt <= now || !liveServices.has(key.slice(0, key.lastIndexOf('|')))) this.#sticky.delete(key);
    }
    for (const key of this.#counters.keys()) if (!liveServices.has(key)) this.#counters.delete(key);
  }
}
