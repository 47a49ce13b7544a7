// `kproxy trace`: what the chosen mode's rules do with one packet, computed from --manifests or the cluster (one list).
import { UsageError } from '../errors.ts';
import type { ProxyConfig } from '../config/types.ts';
import type { Logger } from '../model/mode.ts';
import type { Packet } from '../model/trace.ts';
import type { Protocol } from '../model/types.ts';
import { loadMode, type LoadModeOptions } from '../modes.ts';
import { joinHostPort, normalizeIP } from '../util/ip.ts';
import { formatVerdict } from './format-state.ts';
import type { OutputFormat, TraceRequest } from './parse.ts';
import { desiredStateOnce } from './wiring.ts';

export interface TraceOptions {
  readonly config: ProxyConfig;
  readonly request: TraceRequest;
  readonly format: OutputFormat;
  readonly log: Logger;
  readonly modes?: LoadModeOptions;
}

/** "IP:PORT[/PROTO]" or "[IPv6]:PORT[/PROTO]"; protocol defaults to TCP. */
export function parseDestination(text: string): { ip: string; port: number; protocol: Protocol } {
  const match = /^(?:\[([^\]]+)\]|([^:[\]/]+)):(\d{1,5})(?:\/([A-Za-z]+))?$/.exec(text.trim());
  const ip = normalizeIP(match?.[1] ?? match?.[2] ?? '');
  const port = Number(match?.[3]);
  if (!match || ip === undefined || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new UsageError(`invalid --dst ${JSON.stringify(text)}: expected IP:PORT[/PROTO], e.g. 10.96.0.10:80/TCP or [fd00::10]:53/UDP`);
  }
  const protocol = (match[4] ?? 'TCP').toUpperCase();
  if (protocol !== 'TCP' && protocol !== 'UDP' && protocol !== 'SCTP') {
    throw new UsageError(`invalid --dst ${JSON.stringify(text)}: protocol must be TCP, UDP or SCTP`);
  }
  return { ip, port, protocol };
}

export function packetOf(request: TraceRequest): Packet {
  const src = normalizeIP(request.src);
  if (src === undefined) throw new UsageError(`invalid --src ${JSON.stringify(request.src)}: expected an IP address`);
  const dst = parseDestination(request.dst);
  return { src, dst: dst.ip, port: dst.port, protocol: dst.protocol, from: request.from ?? 'pod' };
}

export async function trace(options: TraceOptions): Promise<string> {
  const packet = packetOf(options.request);
  const mode = await loadMode(options.config.mode, options.modes ?? {});
  const { state } = await desiredStateOnce(options.config, options.log);
  const verdict = mode.trace(state, packet);
  if (options.format === 'json') return `${JSON.stringify({ mode: mode.name, packet, verdict }, null, 2)}\n`;
  const dst = joinHostPort(packet.dst, packet.port);
  return formatVerdict({ mode: mode.name, protocol: packet.protocol, src: packet.src, dst, from: packet.from, verdict });
}
