// Composition root. `main(args)` is what bin/kproxy.js calls: parse the command line, then run the proxy,
// or one of the offline commands (plan, trace). Everything is wired here and nowhere else.
import { loadConfig } from './config/index.ts';
import type { ProxyConfig } from './config/types.ts';
import { KproxyError } from './errors.ts';
import { createLogger, type AppLogger } from './log.ts';
import type { ModeModule, ModeOptions, ProxyMode } from './model/mode.ts';
import type { InvalidObject, SyncObserver } from './model/observe.ts';
import type { ClusterSource } from './model/source.ts';
import { loadMode, modesDirFromEnvironment, type LoadModeOptions } from './modes.ts';
import { SyncLoop, systemClock } from './sync/index.ts';
import type { ClusterStore } from './store/cluster-store.ts';
import { parseCommandLine } from './cli/parse.ts';
import { plan } from './cli/plan.ts';
import { trace } from './cli/trace.ts';
import { computeOptionsOf, createSource, createStore, nodeNameFor } from './cli/wiring.ts';

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
    const modes: LoadModeOptions = { modesDir: modesDirFromEnvironment() };
    if (command.kind === 'plan') {
      io.stdout(await plan({ config, renderMode: command.flags.proxyMode !== undefined, format: command.format, log, modes }));
      return 0;
    }
    if (command.kind === 'trace') {
      io.stdout(await trace({ config, request: command.trace, format: command.format, log, modes }));
      return 0;
    }
    return await runProxy({ config, log, modes });
  } catch (err) {
    if (err instanceof KproxyError) {
      io.stderr(`kproxy: ${err.oneLine()}\n`);
      return err.exitCode;
    }
    log?.error({ err }, 'Unexpected error');
    io.stderr(`kproxy: unexpected error: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}\n`);
    return 1;
  }
}

/**
 * Something attached to a running proxy besides the sync loop, e.g. the health server (src/health) and the
 * metrics server (src/metrics). It may observe syncs and skipped objects; it is stopped on shutdown.
 */
export interface Attachment {
  readonly name: string;
  readonly observer?: SyncObserver;
  readonly onInvalid?: (invalid: InvalidObject) => void;
  readonly onStale?: (isStale: boolean, reason?: string) => void;
  stop(): Promise<void>;
}

export interface AttachContext {
  readonly config: ProxyConfig;
  readonly log: AppLogger;
  readonly store: ClusterStore;
  readonly loop: SyncLoop;
  readonly mode: ModeModule;
}

/**
 * ATTACH POINT for servers and observers. The health server (config.healthzBindAddress) and the metrics server
 * (config.metricsBindAddress) are created here and returned; runProxy wires their observer/onInvalid hooks
 * and stops them on shutdown. Empty bind addresses mean "disabled".
 */
async function attachServers(_context: AttachContext): Promise<Attachment[]> {
  const attachments: Attachment[] = [];
  // Health (src/health): a ProxyHealth observer + startHealthServer({ bindAddress: config.healthzBindAddress, health })
  //   when config.healthzBindAddress !== '' → attachments.push({ name: 'health', observer: health, onStale, stop }).
  // Metrics (src/metrics): a ProxyMetrics observer + startMetricsServer({ bindAddress: config.metricsBindAddress, ... })
  //   when config.metricsBindAddress !== '' → attachments.push({ name: 'metrics', observer: metrics, onInvalid, stop }).
  // (The config turns an empty address or port 0 into '' = disabled.)
  return attachments;
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
  const modeOptions: ModeOptions = { log: log.child({ mode: mode.name }), config: config.modeSettings };

  if (config.cleanup) {
    await mode.cleanup(modeOptions);
    log.info({ mode: mode.name }, `Cleaned up ${mode.name} proxy rules`);
    return 0;
  }

  log.info({ mode: mode.name }, `Using ${mode.name} proxier`);
  const shutdown = options.shutdownSignal ?? waitForSignal(log);
  const nodeName = nodeNameFor(config, log);
  log.info({ node: nodeName, source: config.manifests ?? config.master ?? config.kubeconfig ?? 'in-cluster' }, 'Starting');

  const attachments: Attachment[] = [];
  const store = createStore(computeOptionsOf(config, nodeName), log, {
    onInvalid: (invalid) => attachments.forEach((a) => a.onInvalid?.(invalid)),
    onStale: (isStale, reason) => attachments.forEach((a) => a.onStale?.(isStale, reason)),
  });
  const proxier: ProxyMode = await mode.create(modeOptions);
  const loop = new SyncLoop({
    clock: systemClock, log, proxier,
    snapshot: () => store.snapshot(), isReady: () => store.hasSynced,
    minSyncPeriodMs: config.minSyncPeriodMs, syncPeriodMs: config.syncPeriodMs,
  });
  let source: ClusterSource | undefined;
  try {
    for (const attachment of await attachServers({ config, log, store, loop, mode })) {
      attachments.push(attachment);
      if (attachment.observer) loop.addObserver(attachment.observer);
    }
    store.onChange(() => loop.requestSync());
    source = await createSource(config, nodeName, log);
    log.info({ source: source.description }, 'Watching cluster objects');
    await source.start(store);
    loop.start();
    // Timers, watchers and signal handlers do not keep Node alive on their own: hold it until shutdown.
    const keepAlive = setInterval(() => undefined, 1 << 30);
    const signal = await shutdown.finally(() => clearInterval(keepAlive));
    log.info({ signal }, 'Shutting down; programmed rules stay in place');
  } finally {
    await stopAll({ source, loop, proxier, attachments, log, timeoutMs: options.shutdownTimeoutMs ?? 5000 });
  }
  return 0;
}

interface StopInput {
  readonly source: ClusterSource | undefined;
  readonly loop: SyncLoop;
  readonly proxier: ProxyMode;
  readonly attachments: readonly Attachment[];
  readonly log: AppLogger;
  readonly timeoutMs: number;
}

/** Stop in order (no new input, finish the sync in progress, stop the mode, then servers), within a deadline. */
async function stopAll(input: StopInput): Promise<void> {
  const steps = async (): Promise<void> => {
    await input.source?.stop();
    await input.loop.stop();
    await input.proxier.stop();
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
