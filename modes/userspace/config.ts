// Settings of the userspace relay, read from ModeOptions.config. Unknown or invalid values fall back to
// the defaults (and are reported) so that a typo never stops the relay.

export interface UserspaceConfig {
  /** Interface that carries service addresses that are not local (created and removed by kproxy). */
  readonly interfaceName: string;
  /** How long a connect() to one endpoint may take before the next endpoint is tried. */
  readonly connectTimeoutMs: number;
  /** How many endpoints one client connection may try before it is reset. */
  readonly maxConnectAttempts: number;
  /** Connections to an endpoint that left the service are closed after this long; undefined keeps them. */
  readonly drainGraceMs: number | undefined;
  /** Relayed TCP connections plus UDP flows at once, over all relay processes. */
  readonly maxConnections: number;
  /** A UDP flow with no datagram in either direction for this long is closed. */
  readonly udpIdleTimeoutMs: number;
  /** Relay processes (SO_REUSEPORT, host.ts); 0 relays in the control thread itself. */
  readonly workers: number;
  /** Move TCP bytes with splice(2) in a thread of each relay (splice.ts) instead of through Node's sockets. */
  readonly splice: boolean;
  /**
   * A TCP connection goes to the splice loop once this many of its bytes came in full-size reads (a bulk
   * stream); request/response traffic stays with Node, which answers sooner. 0 hands every connection over.
   */
  readonly spliceAfterBytes: number;
  /**
   * Bind listeners on a service address before the address is added to the interface (IP_FREEBIND), so a client
   * never finds the address without a listener. false: the address comes first, its listeners a moment later.
   */
  readonly freebind: boolean;
  /** How often the node's addresses are compared with the last sync's (NodePorts follow them); 0 = never. */
  readonly addressPollMs: number;
  /** At most this many log lines per reason and service in `logWindowMs`. */
  readonly logBurst: number;
  readonly logWindowMs: number;
}

export const defaultConfig: UserspaceConfig = {
  interfaceName: 'kproxy0',
  connectTimeoutMs: 3000,
  maxConnectAttempts: 3,
  drainGraceMs: undefined,
  maxConnections: 100_000,
  udpIdleTimeoutMs: 30_000,
  workers: 2,
  splice: true,
  spliceAfterBytes: 1024 * 1024,
  freebind: true,
  addressPollMs: 2000,
  logBurst: 5,
  logWindowMs: 10_000,
};

export interface ParsedConfig {
  readonly config: UserspaceConfig;
  /** One line per ignored setting. */
  readonly problems: readonly string[];
}

const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;

function readInt(raw: unknown, name: string, min: number, problems: string[]): number | undefined {
  if (raw === undefined) return undefined;
  const value = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw;
  if (typeof value === 'number' && Number.isInteger(value) && value >= min) return value;
  problems.push(`userspace setting ${name}=${String(raw)} ignored: expected an integer >= ${min}`);
  return undefined;
}

/** Accepts both bare keys ("workers") and prefixed ones ("userspace.workers"). */
export function parseConfig(raw: Readonly<Record<string, unknown>>): ParsedConfig {
  const problems: string[] = [];
  const get = (key: string): unknown => raw[`userspace.${key}`] ?? raw[key];
  const int = (key: keyof UserspaceConfig, min: number): number => {
    const fallback = defaultConfig[key];
    return readInt(get(key), key, min, problems) ?? (typeof fallback === 'number' ? fallback : min);
  };
  let interfaceName = defaultConfig.interfaceName;
  const ifname = get('interfaceName');
  if (ifname !== undefined) {
    if (typeof ifname === 'string' && IFNAME.test(ifname)) interfaceName = ifname;
    else problems.push(`userspace setting interfaceName=${String(ifname)} ignored: not a valid interface name`);
  }
  const bool = (key: 'splice' | 'freebind'): boolean => {
    const value = get(key);
    if (value === true || value === 'true') return true;
    if (value === false || value === 'false') return false;
    if (value !== undefined) problems.push(`userspace setting ${key}=${String(value)} ignored: expected true or false`);
    return defaultConfig[key];
  };
  const drainRaw = get('drainGraceMs');
  const drainGraceMs = drainRaw === 'keep' ? undefined : readInt(drainRaw, 'drainGraceMs', 0, problems);
  return {
    config: {
      interfaceName,
      connectTimeoutMs: int('connectTimeoutMs', 1),
      maxConnectAttempts: int('maxConnectAttempts', 1),
      drainGraceMs,
      maxConnections: int('maxConnections', 1),
      udpIdleTimeoutMs: int('udpIdleTimeoutMs', 1),
      workers: int('workers', 0),
      splice: bool('splice'),
      spliceAfterBytes: int('spliceAfterBytes', 0),
      freebind: bool('freebind'),
      addressPollMs: int('addressPollMs', 0),
      logBurst: int('logBurst', 1),
      logWindowMs: int('logWindowMs', 1),
    },
    problems,
  };
}
