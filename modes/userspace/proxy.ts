// The running userspace mode: compile the table for this node, put service addresses on kproxy's interface,
// hand the table to the relay processes, then take away addresses nobody listens on any more.
import type { Logger, ProxyMode, ServiceTraffic, SyncReport, SyncRequest } from '../../src/model/mode.ts';
import type { DesiredState } from '../../src/model/types.ts';
import type { UserspaceConfig } from './config.ts';
import { inProcessHost, processHost } from './host.ts';
import type { ProcessHost, RelayHost } from './host.ts';
import { ensureAddresses, hostAddresses, runIp } from './interface.ts';
import type { IpRunner } from './interface.ts';
import type { LogSink } from './rate-log.ts';
import type { RelayStats } from './stats.ts';
import { compile } from './table.ts';
import type { ListenerTable } from './table.ts';

const isLoopback = (ip: string): boolean => ip.startsWith('127.') || ip === '::1';

/** Service addresses that must live on kproxy's interface: not loopback, not already on another interface. */
export function interfaceAddresses(table: ListenerTable, local: ReadonlySet<string>): string[] {
  const out = new Set<string>();
  for (const l of table.listeners) {
    // NodePorts listen on the node's own addresses: never invent one.
    if (l.route.frontend === 'NodePort' || isLoopback(l.ip) || local.has(l.ip)) continue;
    out.add(l.ip);
  }
  return [...out].sort();
}

export interface UserspaceProxyOptions {
  readonly config: UserspaceConfig;
  readonly log: Logger;
  /** Replaces `ip` (tests); the interface is touched only when some address needs it. */
  readonly runIp?: IpRunner;
}

export class UserspaceProxy implements ProxyMode {
  readonly name = 'userspace' as const;
  readonly #config: UserspaceConfig;
  readonly #log: Logger;
  readonly #run: IpRunner;
  readonly #host: RelayHost;
  readonly #processes: ProcessHost | undefined;
  #lastAddresses: string | undefined;
  /** Whether this process ever needed the interface: until then it is left alone (the demo never needs it). */
  #ownsAddresses = false;

  constructor(options: UserspaceProxyOptions) {
    this.#config = options.config;
    this.#log = options.log;
    this.#run = options.runIp ?? runIp;
    const log = options.log;
    const sink: LogSink = (level, obj, msg) => log[level](obj, msg);
    if (options.config.workers > 0) this.#host = this.#processes = processHost(options.config, sink);
    else this.#host = inProcessHost(options.config, sink);
  }

  async sync(state: DesiredState, request: SyncRequest): Promise<SyncReport> {
    const name = this.#config.interfaceName;
    const local = hostAddresses(name);
    const table = compile(state, { localAddresses: local });
    const addresses = interfaceAddresses(table, new Set(local));
    const addressKey = addresses.join(',');
    if (addresses.length > 0) this.#ownsAddresses = true;
    const touchInterface = this.#ownsAddresses && (request.full || addressKey !== this.#lastAddresses);
    let added = 0;
    if (touchInterface) {
      const change = await ensureAddresses({ name, addresses, removeOthers: false, run: this.#run });
      added = change.added;
      if (change.created) this.#log.info({ interface: name, type: change.created }, 'created the relay interface');
    }
    const nodeAddresses = [...local, ...addresses];
    const result = await this.#host.apply({ table, nodeAddresses });
    let removed = 0;
    if (touchInterface) {
      removed = (await ensureAddresses({ name, addresses, removeOthers: true, run: this.#run })).removed;
      this.#lastAddresses = addressKey;
    }
    for (const c of table.conflicts) {
      this.#log.warn({ listener: c.key, kept: c.kept, dropped: c.dropped }, 'two services claim one listener');
    }
    if (result.failed.length > 0) {
      const first = result.failed[0];
      throw new Error(`${result.failed.length} userspace listener(s) could not open, first ${first?.key}: ${first?.error}`);
    }
    return {
      full: request.full,
      stats: {
        listeners: table.listeners.length,
        listenersOpened: result.opened,
        listenersClosed: result.closed,
        listenersUpdated: result.updated,
        addressesAdded: added,
        addressesRemoved: removed,
      },
    };
  }

  /** Process ids of the relay processes (none when the relay runs in this thread). */
  relayPids(): number[] {
    return this.#processes?.pids() ?? [];
  }

  /** Active connections and byte counters per service, summed over the relay processes. */
  async trafficStats(): Promise<Readonly<Record<string, ServiceTraffic>>> {
    return (await this.stats()).services;
  }

  stats(): Promise<RelayStats> {
    return this.#host.stats();
  }

  /** Closes every listener and relayed connection; the interface and its addresses stay for the next start. */
  async stop(): Promise<void> {
    await this.#host.close();
  }
}
