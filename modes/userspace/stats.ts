// Per-service counters of the relay, and how the counters of several relay processes add up.

export interface ServiceStats {
  /** TCP connections being relayed plus open UDP flows. */
  active: number;
  /** Client connections / UDP flows that reached an endpoint. */
  relayed: number;
  /** Of the relayed TCP connections, those whose bytes moved with splice(2) (splice.ts). */
  spliced: number;
  /** Reset or dropped at once: no endpoints, source not allowed, connection limit. */
  refused: number;
  /** Every endpoint tried failed (connect refused or timed out). */
  failed: number;
  /** Bytes received from clients and sent to them. */
  bytesIn: number;
  bytesOut: number;
}

export interface RelayStats {
  listeners: number;
  active: number;
  services: Record<string, ServiceStats>;
}

export const emptyServiceStats = (): ServiceStats => ({
  active: 0, relayed: 0, spliced: 0, refused: 0, failed: 0, bytesIn: 0, bytesOut: 0,
});

export function mergeStats(parts: readonly RelayStats[]): RelayStats {
  const services: Record<string, ServiceStats> = {};
  let listeners = 0;
  let active = 0;
  for (const part of parts) {
    listeners = Math.max(listeners, part.listeners);
    active += part.active;
    for (const [key, s] of Object.entries(part.services)) {
      const sum = (services[key] ??= emptyServiceStats());
      sum.active += s.active;
      sum.relayed += s.relayed;
      sum.spliced += s.spliced;
      sum.refused += s.refused;
      sum.failed += s.failed;
      sum.bytesIn += s.bytesIn;
      sum.bytesOut += s.bytesOut;
    }
  }
  return { listeners, active, services };
}
