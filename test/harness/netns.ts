// Network namespaces owned by this test process, and the cleanup that removes them on every exit path.
// Names carry the owner's PID ("kpt<pid><letter>-…"), so a sweep can tell stale namespaces of dead runs from
// namespaces of runs still alive, and never touches a namespace it did not create.
import { execFileSync } from 'node:child_process';
import { run, runSyncQuiet, type RunOptions, type RunResult } from './run.ts';
import './xtables-lock.ts';

const OWN_PATTERN = /^kpt(\d+)[a-z]+-/;
const ownedNamespaces = new Set<string>();
const ownedPids = new Set<number>();
let handlersInstalled = false;
let prefixCounter = 0;

/** A fresh name prefix for one topology, unique per process and per call, e.g. "kpt1234a". */
export function uniquePrefix(): string {
  let n = prefixCounter++;
  let suffix = '';
  do {
    suffix = String.fromCharCode(97 + (n % 26)) + suffix;
    n = Math.floor(n / 26) - 1;
  } while (n >= 0);
  return `kpt${process.pid}${suffix}`;
}

export function listNamespaces(): string[] {
  let text = '';
  try {
    text = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  } catch {
    return [];
  }
  return text.split('\n').map((line) => line.split(' ')[0] ?? '').filter((name) => name !== '');
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function pidsIn(ns: string): number[] {
  try {
    return execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' })
      .split('\n').filter((l) => l.trim() !== '').map(Number);
  } catch {
    return [];
  }
}

/** Kill every process inside one of our namespaces (only our own processes can be there), then delete it. */
function destroyNamespaceSync(ns: string): void {
  for (const pid of pidsIn(ns)) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
  }
  runSyncQuiet('ip', ['netns', 'del', ns]);
}

/** Delete namespaces left behind by harness runs whose process is dead. */
export function sweepStaleNamespaces(): string[] {
  const swept: string[] = [];
  for (const ns of listNamespaces()) {
    const match = OWN_PATTERN.exec(ns);
    if (!match || pidAlive(Number(match[1]))) continue;
    destroyNamespaceSync(ns);
    swept.push(ns);
  }
  return swept;
}

/** Kill our processes and delete our namespaces. Synchronous so that it can run in a process 'exit' handler. */
export function cleanupAllSync(): void {
  for (const pid of ownedPids) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
  }
  ownedPids.clear();
  for (const ns of ownedNamespaces) destroyNamespaceSync(ns);
  ownedNamespaces.clear();
}

function installExitHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', cleanupAllSync);
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const) {
    process.once(signal, () => {
      cleanupAllSync();
      process.exit(code);
    });
  }
}

export function trackPid(pid: number | undefined): void {
  if (pid !== undefined) ownedPids.add(pid);
}

export function untrackPid(pid: number | undefined): void {
  if (pid !== undefined) ownedPids.delete(pid);
}

export async function addNamespace(ns: string): Promise<void> {
  installExitHandlers();
  ownedNamespaces.add(ns); // before creation: an interrupted add is still cleaned up
  await run('ip', ['netns', 'add', ns]);
  await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
}

export async function deleteNamespace(ns: string): Promise<void> {
  destroyNamespaceSync(ns);
  ownedNamespaces.delete(ns);
}

/** Run a command inside a namespace. */
export function nsRun(ns: string, cmd: string, args: readonly string[], options?: RunOptions): Promise<RunResult> {
  return run('ip', ['netns', 'exec', ns, cmd, ...args], options);
}

/** Set sysctls inside a namespace ("key=value" pairs). */
export async function sysctl(ns: string, ...settings: string[]): Promise<void> {
  await nsRun(ns, 'sysctl', ['-qw', ...settings]);
}
