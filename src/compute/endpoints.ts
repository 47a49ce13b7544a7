// Gather the endpoints of one service port in one family from all of the service's EndpointSlices.
import type { Endpoint, IPFamily, Protocol } from '../model/types.ts';
import type { EndpointRecord, SliceRecord } from './records.ts';

/** A model Endpoint plus the hints topology needs (hints are not part of the model). */
export interface Candidate {
  readonly endpoint: Endpoint;
  readonly ready: boolean;
  readonly zoneHints?: readonly string[];
  readonly nodeHints?: readonly string[];
}

export interface PortSelector {
  readonly family: IPFamily;
  /** Service port name ("" for the unnamed single port); slice ports match by name AND protocol. */
  readonly portName: string;
  readonly protocol: Protocol;
  readonly nodeName: string;
}

function toCandidate(record: EndpointRecord, port: number, nodeName: string): Candidate {
  const endpoint: Endpoint = {
    ip: record.ip, port,
    ...(record.nodeName !== undefined ? { nodeName: record.nodeName } : {}),
    ...(record.zone !== undefined ? { zone: record.zone } : {}),
    local: record.nodeName !== undefined && record.nodeName === nodeName,
    ready: record.ready, serving: record.serving, terminating: record.terminating,
  };
  return {
    endpoint, ready: record.ready,
    ...(record.zoneHints !== undefined ? { zoneHints: record.zoneHints } : {}),
    ...(record.nodeHints !== undefined ? { nodeHints: record.nodeHints } : {}),
  };
}

const endpointKey = (ip: string, port: number): string => `${ip}:${port}`;

/** Between two copies of one endpoint: the local copy wins (as upstream), then the ready one. */
function prefer(candidate: Candidate, existing: Candidate): boolean {
  if (candidate.endpoint.local !== existing.endpoint.local) return candidate.endpoint.local;
  return candidate.ready && !existing.ready;
}

/**
 * Every endpoint for the port, deduplicated by ip:port across slices (an endpoint moving between slices shows
 * up twice for a while: the local copy wins, then the ready one, then the first in slice-name order), sorted by "ip:port".
 */
export function collectEndpoints(slices: Iterable<SliceRecord>, selector: PortSelector): Candidate[] {
  const byKey = new Map<string, Candidate>();
  for (const slice of slices) {
    if (slice.family !== selector.family) continue;
    for (const port of slice.ports) {
      if (port.name !== selector.portName || port.protocol !== selector.protocol) continue;
      for (const record of slice.endpoints) {
        const key = endpointKey(record.ip, port.port);
        const existing = byKey.get(key);
        if (existing === undefined || prefer(toCandidate(record, port.port, selector.nodeName), existing)) {
          byKey.set(key, toCandidate(record, port.port, selector.nodeName));
        }
      }
    }
  }
  const keys = [...byKey.keys()].sort();
  return keys.map((key) => byKey.get(key) as Candidate);
}
