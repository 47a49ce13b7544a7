// Composition root. `main(args)` is what bin/kproxy.js calls: parse the command line, then run the proxy,
// or one of the offline commands (plan, trace). Everything is wired here and nowhere else.
import { writeFileSync } from 'node:fs';
import { effectiveYaml, loadConfig } from './config/index.ts';
import type { ProxyConfig } from './config/types.ts';
import { asKproxyError, ConfigError } from './errors.ts';
import { firstLineOf } from './util/errors.ts';
import { createLogger, type AppLogger } from './log.ts';
import type { ModeOptions, ProxyMode } from './model/mode.ts';
import type { ClusterSource } from './model/source.ts';
import { loadMode, modesDirFromEnvironment, type LoadModeOptions } from './modes.ts';
import { FULL_SYNC_PERIOD_MS, SyncLoop, systemClock } from './sync/index.ts';
import { parseCommandLine } from './cli/parse.ts';
import { plan } from './cli/plan.ts';
import { trace } from './cli/trace.ts';
import { computeOptionsOf, createSource, createStore, nodeNameFor } from './cli/wiring.ts';
import { nodeEventsFor, startServers, type Attachment } from './attachments.ts';
import type { NodeEvents } from './events/node-events.ts';
import { tapClusterEvents } from './health/tap.ts';
import { applyStartupSettings } from './startup/index.ts';

export interface MainIO {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
}

const processIO: MainIO = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};

/** Runs kproxy; resolves to the exit status. User errors are printed as one line, never as a stack trace. */
export async function main(args: readonly string[], io: MainIO = processIO): Promise<number> {
  let log: AppLogger | undefined;
  try {
    const command = await parseCommandLine(args);
    if (command.kind === 'print') {
      io.stdout(command.output.endsWith('\n') ? command.output : `${command.output}\n`);
      return 0;
    }
    const { config, warnings } = loadConfig(command.flags);
    log = createLogger(config.log);
    for (const warning of warnings) log.warn({}, warning);
    if (config.writeConfigTo !== undefined) {
      writeEffectiveConfig(config.writeConfigTo, config);
      log.info({ file: config.writeConfigTo }, 'Wrote configuration');
      return 0;
    }
    const modes: LoadModeOptions = { modesDir: modesDirFromEnvironment() };
    if (command.kind === 'plan') {
      io.stdout(await plan({ config, renderMode: command.flags['proxy-mode'] !== undefined, format: command.format, log, modes }));
      return 0;
    }
    if (command.kind === 'trace') {
      io.stdout(await trace({ config, request: command.trace, format: command.format, log, modes }));
      return 0;
    }
    return await runProxy({ config, log, modes });
  } catch (err) {
    const known = asKproxyError(err);
    if (known) {
      io.stderr(`kproxy: ${known.oneLine()}\n`);
      return known.exitCode;
    }
    log?.error({ err }, 'Unexpected error');
    io.stderr(`kproxy: unexpected error: ${firstLineOf(err)}\n`);
    return 1;
  }
}

/** --write-config-to: the effective configuration as a KubeProxyConfiguration, as kube-proxy writes it. */
function writeEffectiveConfig(path: string, config: ProxyConfig): void {
  try {
    writeFileSync(path, effectiveYaml(config.effective));
  } catch (err) {
    throw new ConfigError({ field: '--write-config-to', value: path, reason: `cannot be written (${(err as NodeJS.ErrnoException).code ?? String(err)})`, cause: err });
  }
}

export interface RunOptions {
  readonly config: ProxyConfig;
  readonly log: AppLogger;
  readonly modes?: LoadModeOptions;
  /** Resolves when the proxy should shut down; SIGTERM/SIGINT by default. */
  readonly shutdownSignal?: Promise<string>;
  /** Longest a graceful shutdown may take before giving up on stragglers. */
  readonly shutdownTimeoutMs?: number;
}

/** The `kproxy` run command: program the node from the source until told to stop. Resolves to the exit status. */
export async function runProxy(options: RunOptions): Promise<number> {
  const { config, log } = options;
  const mode = await loadMode(config.mode, options.modes ?? {});
  const modeOptions: ModeOptions = { log: log.child({ mode: mode.name }), settings: config.settings, config: config.modeSettings };

  if (config.cleanup) {
    await mode.cleanup(modeOptions);
    log.info({ mode: mode.name }, `Cleaned up ${mode.name} proxy rules`);
    return 0;
  }
  const startup = applyStartupSettings(config, mode, { log });
  if (config.initOnly) {
    log.info({ mode: mode.name }, 'Applied the start-up settings (--init-only)');
    return 0;
  }

  log.info({ mode: mode.name }, `Using ${mode.name} proxier`);
  const shutdown = options.shutdownSignal ?? waitForSignal(log);
  const nodeName = nodeNameFor(config, log);
  log.info({ node: nodeName, source: config.manifests ?? config.master ?? config.kubeconfig ?? 'in-cluster' }, 'Starting');

  const { attachments, metrics } = await startServers(config, log);
  const compute = { ...computeOptionsOf(config, nodeName), conntrackTcpLiberal: startup.tcpBeLiberal ?? config.conntrack.tcpBeLiberal };
  const store = createStore(compute, log, {
    onInvalid: (invalid) => attachments.forEach((a) => a.onInvalid?.(invalid)),
  });
  let proxier: ProxyMode | undefined;
  let loop: SyncLoop | undefined;
  let source: ClusterSource | undefined;
  let events: NodeEvents | undefined;
  // The cluster is read while the mode starts (its tool probes take a while, the first list too): the store fills
  // meanwhile, and the loop, made once the mode is ready, hears of what came in before it existed.
  let changedEarly = false;
  let onStoreChange = (): void => { changedEarly = true; };
  store.onChange(() => onStoreChange());
  const sourceStarted = (async (): Promise<ClusterSource> => {
    const started = await createSource(config, nodeName, log, {
      ...(metrics && { onRestart: (kind) => metrics.informerRestarted(kind) }),
    });
    source = started;
    log.info({ source: started.description }, 'Watching cluster objects');
    await started.start(tapClusterEvents(store, ...attachments.flatMap((a) => (a.tap ? [a.tap] : []))));
    return started;
  })();
  sourceStarted.catch(() => undefined); // awaited below; a failure must not count as unhandled in the meantime
  try {
    // The loop is built after the proxier; a drift the mode sees before then is covered by the first (full) sync.
    const requestFullSync = (reason: string): void => loop?.requestFullSync(reason);
    proxier = await mode.create({ ...modeOptions, requestFullSync, ...(metrics && { metrics: metrics.modeMetrics }) });
    if (metrics && proxier.trafficStats) metrics.useTrafficStats(proxier.trafficStats.bind(proxier));
    if (metrics && proxier.netfilterCounters) metrics.useNetfilterCounters(proxier.netfilterCounters.bind(proxier));
    loop = new SyncLoop({
      clock: systemClock, log, proxier,
      snapshot: () => store.snapshot(), isReady: () => store.hasSynced,
      minSyncPeriodMs: config.minSyncPeriodMs, syncPeriodMs: config.syncPeriodMs,
      ...(mode.resync === 'hourly' && { resyncPeriodMs: FULL_SYNC_PERIOD_MS, fullSyncPeriodMs: FULL_SYNC_PERIOD_MS }),
      observers: attachments.flatMap((a) => (a.observer ? [a.observer] : [])),
    });
    const syncLoop = loop;
    onStoreChange = () => syncLoop.requestSync();
    if (changedEarly) syncLoop.requestSync();
    const started = await sourceStarted;
    events = nodeEventsFor(started, nodeName, log);
    if (events) loop.addObserver(events);
    events?.starting();
    loop.start();
    // Timers, watchers and signal handlers do not keep Node alive on their own: hold it until shutdown.
    const keepAlive = setInterval(() => undefined, 1 << 30);
    const signal = await shutdown.finally(() => clearInterval(keepAlive));
    log.info({ signal }, 'Shutting down; programmed rules stay in place');
  } finally {
    source ??= await sourceStarted.catch(() => undefined);
    await stopAll({ source, loop, proxier, events, attachments, log, timeoutMs: options.shutdownTimeoutMs ?? 5000 });
  }
  return 0;
}

interface StopInput {
  readonly source: ClusterSource | undefined;
  readonly loop: SyncLoop | undefined;
  readonly proxier: ProxyMode | undefined;
  readonly events: NodeEvents | undefined;
  readonly attachments: readonly Attachment[];
  readonly log: AppLogger;
  readonly timeoutMs: number;
}

/** Stop in order (no new input, finish the sync in progress, stop the mode, then servers), within a deadline. */
async function stopAll(input: StopInput): Promise<void> {
  const steps = async (): Promise<void> => {
    await input.source?.stop();
    await input.loop?.stop();
    await input.proxier?.stop();
    await input.events?.flushed();
    await Promise.all(input.attachments.map((a) => a.stop()));
  };
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'timeout'>((resolve) => { timer = setTimeout(() => resolve('timeout'), input.timeoutMs); });
  const result = await Promise.race([steps().then(() => 'done' as const), deadline]).catch((err: unknown) => {
    input.log.error({ err }, 'Error while shutting down');
    return 'error' as const;
  });
  clearTimeout(timer);
  if (result === 'timeout') input.log.warn({ timeoutMs: input.timeoutMs }, 'Shutdown took too long; exiting anyway');
}

function waitForSignal(log: AppLogger): Promise<string> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      // A second signal while shutting down: leave at once.
      process.once('SIGTERM', () => process.exit(1));
      process.once('SIGINT', () => process.exit(1));
      log.debug({ signal }, 'Signal received');
      resolve(signal);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}
