// The name of the Node this proxy runs on, as kube-proxy derives it.
import { hostname } from 'node:os';

export interface NodeNameOptions {
  /** --hostname-override / hostnameOverride from the config file. */
  readonly hostnameOverride?: string;
  /** Defaults to process.env (NODE_NAME is read from it). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Defaults to os.hostname(). */
  readonly hostname?: () => string;
}

/** --hostname-override, else $NODE_NAME, else the host name; trimmed and lower-cased as upstream does. */
export function resolveNodeName(options: NodeNameOptions = {}): string {
  const env = options.env ?? process.env;
  const candidates = [options.hostnameOverride, env.NODE_NAME, (options.hostname ?? hostname)()];
  for (const candidate of candidates) {
    const name = candidate?.trim().toLowerCase();
    if (name) return name;
  }
  return '';
}
