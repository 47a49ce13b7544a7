// Endpoint choice: round robin per service, ClientIP session affinity with an expiry. The clock is injected so
// that tests can move time.
import type { ListenerRoute, RelayEndpoint } from './table.ts';

interface Stickiness {
  endpointId: string;
  expiresAt: number;
}

/** Slots of the round-robin counters; services that hash to one slot share a counter (still a fair spread). */
export const COUNTER_SLOTS = 4096;

export function counterSlot(serviceKey: string): number {
  let hash = 0;
  for (let i = 0; i < serviceKey.length; i++) hash = (hash * 31 + serviceKey.charCodeAt(i)) >>> 0;
  return hash % COUNTER_SLOTS;
}

export interface BalancerOptions {
  readonly now?: () => number;
  /**
   * Round-robin counters; relay threads pass one array over a SharedArrayBuffer so that round robin is exact
   * over all threads, not per thread.
   */
  readonly counters?: Int32Array;
}

export class Balancer {
  readonly #now: () => number;
  readonly #counters: Int32Array;
  readonly #sticky = new Map<string, Stickiness>();

  constructor(options: BalancerOptions = {}) {
    this.#now = options.now ?? Date.now;
    this.#counters = options.counters ?? new Int32Array(COUNTER_SLOTS);
  }

  /** The endpoints in the order a new client connection should try them (the first is the choice). */
  order(route: ListenerRoute, endpoints: readonly RelayEndpoint[], clientIp: string): RelayEndpoint[] {
    let start = -1;
    if (route.affinityTimeoutMs !== undefined) {
      const sticky = this.#sticky.get(`${route.serviceKey}|${clientIp}`);
      if (sticky && sticky.expiresAt > this.#now()) start = endpoints.findIndex((e) => e.id === sticky.endpointId);
    }
    if (start < 0) {
      const counter = Atomics.add(this.#counters, counterSlot(route.serviceKey), 1) >>> 0;
      start = counter % endpoints.length;
    }
    return start === 0 ? [...endpoints] : [...endpoints.slice(start), ...endpoints.slice(0, start)];
  }

  /** A connection to `endpoint` succeeded: with affinity, the client sticks to it (timeout restarts). */
  chosen(route: ListenerRoute, clientIp: string, endpoint: RelayEndpoint): void {
    if (route.affinityTimeoutMs === undefined) return;
    this.#sticky.set(`${route.serviceKey}|${clientIp}`, {
      endpointId: endpoint.id,
      expiresAt: this.#now() + route.affinityTimeoutMs,
    });
  }

  /** Forget expired stickiness and that of services that are gone. */
  sweep(liveServices: ReadonlySet<string>): void {
    const now = this.#now();
    for (const [key, s] of this.#sticky) {
      if (s.expiresAt <= now || !liveServices.has(key.slice(0, key.lastIndexOf('|')))) this.#sticky.delete(key);
    }
  }
}
