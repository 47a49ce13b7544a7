// The running userspace mode: compile the table for this node, hand it to the relay processes, put the service
// addresses on kproxy's interface, then close the listeners nobody needs any more. In that order, a client never
// finds a service address without a listener: a new address gets its listeners first (bound with IP_FREEBIND
// before the address exists), and an address that goes is removed before its listeners close.
import type { Logger, ProxyMode, ServiceTraffic, SyncReport, SyncRequest } from '../../src/model/mode.ts';
import type { DesiredState } from '../../src/model/types.ts';
import type { UserspaceConfig } from './config.ts';
import { inProcessHost, processHost } from './host.ts';
import type { ProcessHost, RelayHost } from './host.ts';
import { ensureAddresses, hostAddresses, presentAddresses, runIp } from './interface.ts';
import type { IpRunner } from './interface.ts';
import type { LogSink } from './rate-log.ts';
import type { RelayStats } from './stats.ts';
import { compile } from './table.ts';
import type { ListenerTable } from './table.ts';
import { isLoopback } from '../../src/util/ip.ts';


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
  /** The node's addresses apart from those on interface `except` (tests replace it). */
  readonly readAddresses?: (except: string) => string[];
}

/** A set of addresses as one comparable string. */
const addressSetKey = (addresses: readonly string[]): string => [...new Set(addresses)].sort().join(',');

export class UserspaceProxy implements ProxyMode {
  readonly name = 'userspace' as const;
  readonly #config: UserspaceConfig;
  readonly #log: Logger;
  readonly #run: IpRunner;
  readonly #host: RelayHost;
  readonly #processes: ProcessHost | undefined;
  readonly #readAddresses: (except: string) => string[];
  #lastAddresses: string | undefined;
  /** The last desired state and the node addresses it was applied with: a change of address re-applies it. */
  #lastState: DesiredState | undefined;
  #lastLocal = '';
  #addressPoll: NodeJS.Timeout | undefined;
  #resyncQueued = false;
  #stopped = false;
  /** Syncs (the agent's and those after an address change) run one after another. */
  #queue: Promise<unknown> = Promise.resolve();
  /** Whether this process ever needed the interface: until then it is left alone (the demo never needs it). */
  #ownsAddresses = false;

  constructor(options: UserspaceProxyOptions) {
    this.#config = options.config;
    this.#log = options.log;
    this.#run = options.runIp ?? runIp;
    this.#readAddresses = options.readAddresses ?? hostAddresses;
    const log = options.log;
    const sink: LogSink = (level, obj, msg) => log[level](obj, msg);
    if (options.config.workers > 0) this.#host = this.#processes = processHost(options.config, sink);
    else this.#host = inProcessHost(options.config, sink);
  }

  sync(state: DesiredState, request: SyncRequest): Promise<SyncReport> {
    const run = this.#queue.then(() => this.#sync(state, request));
    this.#queue = run.catch(() => undefined);
    this.#watchAddresses();
    return run;
  }

  /**
   * NodePorts listen on the node's addresses as they were at the last sync. An address that comes later (a link
   * that comes up after the agent) would wait for the next full resync: a cheap poll notices it sooner.
   */
  #watchAddresses(): void {
    if (this.#addressPoll || this.#config.addressPollMs <= 0 || this.#stopped) return;
    this.#addressPoll = setInterval(() => this.#checkAddresses(), this.#config.addressPollMs);
    this.#addressPoll.unref();
  }

  #checkAddresses(): void {
    const state = this.#lastState;
    if (!state || this.#resyncQueued || this.#stopped) return;
    const now = addressSetKey(this.#readAddresses(this.#config.interfaceName));
    if (now === this.#lastLocal) return;
    this.#log.info({ before: this.#lastLocal, now }, 'node addresses changed; re-applying the listeners');
    this.#resyncQueued = true;
    const run = this.#queue.then(() => {
      this.#resyncQueued = false;
      // A newer state from the agent may have been applied meanwhile: re-apply the latest.
      return this.#stopped || !this.#lastState ? undefined : this.#sync(this.#lastState, { full: false });
    });
    this.#queue = run.catch((err: unknown) =>
      this.#log.warn({ err: err instanceof Error ? err.message : String(err) }, 'listeners after an address change failed'));
  }

  async #sync(state: DesiredState, request: SyncRequest): Promise<SyncReport> {
    const name = this.#config.interfaceName;
    const local = this.#readAddresses(name);
    this.#lastState = state;
    this.#lastLocal = addressSetKey(local);
    const table = compile(state, { localAddresses: local });
    const addresses = interfaceAddresses(table, new Set(local));
    const addressKey = addresses.join(',');
    if (addresses.length > 0) this.#ownsAddresses = true;
    const touchInterface = this.#ownsAddresses && (request.full || addressKey !== this.#lastAddresses);
    const present = touchInterface ? new Set(await presentAddresses(name, this.#run)) : undefined;
    const pendingAddresses = present ? addresses.filter((ip) => !present.has(ip)) : [];
    const nodeAddresses = [...local, ...addresses];
    // 1. Every relay process listens on every frontend; on addresses still to come, bound with IP_FREEBIND.
    let result = await this.#host.apply({ table, nodeAddresses, pendingAddresses });
    // 2. The addresses: new ones now have listeners; those that go still have theirs (closed in 4).
    let added = 0;
    let removed = 0;
    if (touchInterface) {
      const change = await ensureAddresses({ name, addresses, removeOthers: true, run: this.#run });
      if (change.created) this.#log.info({ interface: name, type: change.created }, 'created the relay interface');
      ({ added, removed } = change);
      this.#lastAddresses = addressKey;
    }
    // 3. Without IP_FREEBIND (libc could not load) listeners on new addresses could not bind before them: now they can.
    if (pendingAddresses.length > 0 && result.failed.length > 0) result = await this.#host.apply({ table, nodeAddresses });
    // 4. Listeners of frontends that left (their addresses are gone by now) close with their connections.
    const closed = result.stale > 0 ? (await this.#host.prune()).closed : 0;
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
        listenersClosed: closed,
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
    this.#stopped = true;
    clearInterval(this.#addressPoll);
    await this.#queue;
    await this.#host.close();
  }
}
