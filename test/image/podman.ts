// podman for the image tests, through tools/image/podman.sh (this machine's storage, runtime and limits): the
// image built from a clean checkout, and containers that are always removed, even when a test dies.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { run, type RunResult } from '../harness/run.ts';

export const PODMAN = fileURLToPath(new URL('../../tools/image/podman.sh', import.meta.url));
const BUILD = fileURLToPath(new URL('../../tools/image/build.sh', import.meta.url));

/** Set by developers without podman; CI never sets it. */
export const imageTestsDisabled = process.env.KPROXY_NO_IMAGE_TESTS === '1';

/** One line saying what is missing, or undefined when podman can run here. */
export function podmanMissing(): string | undefined {
  const probe = spawnSync('podman', ['--version'], { encoding: 'utf8' });
  return probe.status === 0 ? undefined
    : 'podman is not installed: apt-get install podman buildah runc uidmap mmdebstrap (.ci/run does), or KPROXY_NO_IMAGE_TESTS=1 to skip';
}

export function podman(args: readonly string[], timeoutMs = 120_000): Promise<RunResult> {
  return run(PODMAN, args, { allowFailure: true, timeoutMs });
}

export interface BuiltImage {
  readonly tag: string;
  readonly seconds: number;
  readonly megabytes: number;
  readonly layers: number;
  /** build.sh's own summary line. */
  readonly summary: string;
}

/** tools/image/build.sh: the image from a clean copy of the checkout. */
export async function buildImage(): Promise<BuiltImage> {
  const result = await run('bash', [BUILD], { allowFailure: true, timeoutMs: 15 * 60_000 });
  if (result.code !== 0) throw new Error(`tools/image/build.sh failed:\n${result.stderr.trim().split('\n').slice(-25).join('\n')}`);
  const tag = result.stdout.trim().split('\n').pop() ?? '';
  const summary = result.stderr.split('\n').find((line) => line.startsWith(`image ${tag}:`)) ?? '';
  const figures = /built in (\d+) s, (\d+) MB, (\d+) layers/.exec(summary);
  if (!figures) throw new Error(`tools/image/build.sh printed no summary:\n${result.stderr}`);
  return { tag, summary, seconds: Number(figures[1]), megabytes: Number(figures[2]), layers: Number(figures[3]) };
}

const liveContainers = new Set<string>();
let exitHook = false;
/** Remove a container by name, synchronously (exit paths). */
function removeNow(name: string): void {
  spawnSync(PODMAN, ['rm', '--force', '--time', '0', name], { stdio: 'ignore' });
  liveContainers.delete(name);
}
function installExitHook(): void {
  if (exitHook) return;
  exitHook = true;
  process.on('exit', () => { for (const name of [...liveContainers]) removeNow(name); });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => { for (const name of [...liveContainers]) removeNow(name); process.exit(130); });
  }
}

export interface Container {
  readonly name: string;
  readonly child: ChildProcess;
  /** stdout + stderr so far. */
  output(): string;
  /** Resolves with the container's exit status (podman run's). */
  readonly exited: Promise<number>;
  /** The exit status once it exited. */
  exitCode(): number | undefined;
  exec(command: readonly string[]): Promise<RunResult>;
  /** Send a signal to the container's PID 1 (podman kill). */
  signal(signal: string): Promise<void>;
  /** Remove it (force); safe to call twice. */
  remove(): Promise<void>;
}

/** `podman run --name NAME RUN_ARGS IMAGE ARGS` in the foreground of a child process. */
export function startContainer(name: string, runArgs: readonly string[], image: string, args: readonly string[]): Container {
  installExitHook();
  liveContainers.add(name);
  const child = spawn(PODMAN, ['run', '--name', name, ...runArgs, image, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => { output += d.toString(); });
  child.stderr?.on('data', (d: Buffer) => { output += d.toString(); });
  let exitCode: number | undefined;
  const exited = new Promise<number>((resolve) => child.once('exit', (code, signal) => {
    exitCode = code ?? (signal ? 128 : -1);
    resolve(exitCode);
  }));
  return {
    name, child, exited,
    exitCode: () => exitCode,
    output: () => output,
    exec: (command) => podman(['exec', name, ...command], 60_000),
    async signal(signal) {
      const result = await podman(['kill', '--signal', signal, name]);
      if (result.code !== 0) throw new Error(`podman kill ${name}: ${result.stderr.trim()}`);
    },
    async remove() {
      if (!liveContainers.has(name)) return;
      await podman(['rm', '--force', '--time', '0', name]);
      liveContainers.delete(name);
    },
  };
}
