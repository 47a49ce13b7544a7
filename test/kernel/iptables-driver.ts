// How a kernel test runs the iptables mode: as the real agent (KPROXY_KERNEL_DRIVER=process: bin/kproxy.js in the
// node namespace, ready when /healthz answers 200), or in-process (KPROXY_KERNEL_DRIVER=inproc: createIptablesProxy
// with its tools run through `ip netns exec`, state computed from the same manifest file by the CLI's own code),
// which needs no health server and shows apply-layer failures with their stack.
import { loadConfig } from '../../src/config/index.ts';
import { desiredStateFromManifests } from '../../src/cli/wiring.ts';
import { silentLogger } from '../../src/log.ts';
import { cleanupIptables, createIptablesProxy } from '../../modes/iptables/apply.ts';
import { compileFamilies } from '../../modes/iptables/compile.ts';
import { runCommand, type CommandRunner } from '../../kit/exec.ts';
import type { IptablesVariant } from '../../kit/iptables/variant.ts';
import { CLUSTER_CIDR, CLUSTER_CIDR6, runKproxyCleanup, startKproxy, type Cluster, type KproxyProcess } from '../harness/index.ts';

export interface ProxyDriver {
  readonly kind: 'process' | 'inproc';
  /** Start and wait until the first sync is done. */
  start(): Promise<void>;
  /** The manifest file changed (the process notices by itself; in-process syncs now). */
  changed(): Promise<void>;
  /** Die without any chance to clean up (SIGKILL). */
  kill(): Promise<void>;
  /** `kproxy --cleanup`. */
  cleanup(): Promise<void>;
}

export interface DriverOptions {
  readonly cluster: Cluster;
  readonly manifests: string;
  readonly variant: IptablesVariant;
}

function processDriver(options: DriverOptions): ProxyDriver {
  let proxy: KproxyProcess | undefined;
  const env = { KPROXY_IPTABLES_VARIANT: options.variant };
  return {
    kind: 'process',
    start: async () => {
      proxy = startKproxy(options.cluster, {
        mode: 'iptables', manifests: options.manifests, env,
        args: ['--min-sync-period', '0s', '--metrics-bind-address', '', '--log-format', 'json'],
      });
      await proxy.waitHealthy();
    },
    changed: async () => {},
    kill: async () => { await proxy?.stop('SIGKILL'); },
    cleanup: async () => {
      await proxy?.stop('SIGTERM');
      const result = await runKproxyCleanup(options.cluster, 'iptables');
      if (result.code !== 0) throw new Error(`kproxy --cleanup exited ${result.code}: ${result.output}`);
    },
  };
}

function inProcessDriver(options: DriverOptions): ProxyDriver {
  const run: CommandRunner = (cmd, args, input, commandOptions) => runCommand('ip', ['netns', 'exec', options.cluster.nodeNs, cmd, ...args], input, commandOptions);
  const log = silentLogger();
  const { config } = loadConfig({ 'manifests': options.manifests, 'hostname-override': 'node1', 'cluster-cidr': `${CLUSTER_CIDR},${CLUSTER_CIDR6}` });
  const modeOptions = { log, settings: config.settings, config: { variant: options.variant }, run };
  let proxy: Awaited<ReturnType<typeof createIptablesProxy>> | undefined;
  const syncNow = async (full: boolean): Promise<void> => {
    const { state } = await desiredStateFromManifests(config, log);
    await proxy?.sync(compileFamilies(state), { full });
  };
  return {
    kind: 'inproc',
    start: async () => {
      proxy = await createIptablesProxy(modeOptions);
      await syncNow(true);
    },
    changed: () => syncNow(false),
    kill: async () => { proxy = undefined; },
    cleanup: async () => {
      proxy = undefined;
      await cleanupIptables(modeOptions);
    },
  };
}

/**
 * In-process until the agent serves /healthz (src/main.ts attachServers); then switch this default to 'process'.
 */
const DEFAULT_DRIVER: 'process' | 'inproc' = 'process';

export function createDriver(options: DriverOptions): ProxyDriver {
  const kind = process.env.KPROXY_KERNEL_DRIVER ?? DEFAULT_DRIVER;
  return kind === 'process' ? processDriver(options) : inProcessDriver(options);
}
