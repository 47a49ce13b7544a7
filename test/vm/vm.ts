// Boots the test VM (Debian's stock kernel under qemu, software emulation: no KVM needed) and runs one bash
// script in it as root. The guest sees this machine's whole filesystem read-only with a tmpfs overlay (so the
// checkout, node_modules and the host's tools are there, at the same paths) and has no network card: whatever
// a script does to the kernel stays in the VM. One folder is shared writable: `/kproxy-vm` in the guest,
// `outDir` here; the script leaves its results there.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Where the guest finds the output folder. */
export const GUEST_OUT = '/kproxy-vm';
/** Printed on the console by the job wrapper; the host takes the boot time from it. */
const STARTED_MARK = 'kproxy-vm: job started';

export interface VmOptions {
  /** Bash script body, run as root in the guest with `set -euo pipefail` in `cwd`. */
  readonly script: string;
  /** Working directory in the guest (a host path: the guest sees the same tree). Default: the checkout. */
  readonly cwd?: string;
  /** Extra environment for the script. */
  readonly env?: Readonly<Record<string, string>>;
  /** The VM is killed after this long; the result then says timedOut. */
  readonly timeoutMs: number;
  readonly memoryMiB?: number;
  readonly cpus?: number;
  /** Each console line as it arrives (progress for long suites). */
  readonly onLine?: (line: string) => void;
}

export interface VmResult {
  /** The script's exit status; undefined when it never finished (kernel panic, timeout, qemu failure). */
  readonly exitCode: number | undefined;
  readonly timedOut: boolean;
  /** Everything the guest printed on its serial console (kernel messages and the script's output). */
  readonly console: string;
  /** Host folder the guest wrote into (GUEST_OUT there). Removed by dispose(). */
  readonly outDir: string;
  /** From starting qemu to the script's first line. */
  readonly bootMs: number | undefined;
  readonly totalMs: number;
  dispose(): void;
}

/** The cached boot kit (test/vm/kit.sh builds it when missing; that needs root and apt). */
export function vmKit(): string {
  const run = spawnSync('bash', [join(repoRoot, 'test/vm/kit.sh')], { encoding: 'utf8' });
  const dir = run.stdout.trim().split('\n').pop() ?? '';
  if (run.status !== 0 || dir === '' || !existsSync(join(dir, 'ready'))) {
    throw new Error(`test/vm/kit.sh failed: ${(run.stderr || run.stdout).trim().split('\n').pop() ?? ''}`);
  }
  return dir;
}

/** The plain ELF kernel when kit.sh could unpack it (boots ~10 s faster under emulation), else the bzImage. */
function bootImage(kit: string): string {
  const elf = join(kit, 'vmlinux');
  return existsSync(elf) ? elf : join(kit, 'vmlinuz');
}

/** Missing host tools, as one line; undefined when the VM can run. */
export function vmPrerequisiteProblem(): string | undefined {
  if (process.getuid?.() !== 0) return 'the VM tests need root (qemu shares / with the guest, kit.sh uses apt)';
  const missing = ['qemu-system-x86_64', 'busybox', 'depmod'].filter((tool) =>
    spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0);
  return missing.length === 0 ? undefined
    : `missing ${missing.join(', ')}: apt-get install qemu-system-x86 busybox-static kmod (.ci/run does)`;
}

const running = new Set<ChildProcess>();
let exitHookInstalled = false;
function killRunningVms(): void {
  for (const child of running) {
    if (child.pid !== undefined && child.exitCode === null) {
      try { process.kill(child.pid, 'SIGKILL'); } catch { /* already gone */ }
    }
  }
}
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', killRunningVms);
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const) {
    process.once(signal, () => { killRunningVms(); process.exit(code); });
  }
}

function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

function jobScript(options: VmOptions): string {
  const env = Object.entries({ KPROXY_IN_VM: '1', ...options.env })
    .map(([key, value]) => `export ${key}=${shellQuote(value)}`);
  return [
    '#!/bin/bash',
    `echo '${STARTED_MARK}'`,
    `export PATH=${shellQuote(join(repoRoot, 'node_modules/.bin'))}:"$PATH"`,
    ...env,
    `cd ${shellQuote(options.cwd ?? repoRoot)}`,
    'set -euo pipefail',
    options.script,
    '',
  ].join('\n');
}

/** Boot the VM, run the script, power off. Never throws for a failing script: read exitCode. */
export async function runInVm(options: VmOptions): Promise<VmResult> {
  const kit = vmKit();
  const outDir = mkdtempSync(join(tmpdir(), 'kproxy-vm-'));
  writeFileSync(join(outDir, 'job.sh'), jobScript(options), { mode: 0o755 });
  const args = [
    '-accel', 'tcg,thread=multi', '-cpu', 'max', '-smp', String(options.cpus ?? 2), '-m', String(options.memoryMiB ?? 1536),
    '-display', 'none', '-monitor', 'none', '-serial', 'stdio', '-no-reboot', '-nic', 'none',
    '-kernel', bootImage(kit), '-initrd', join(kit, 'initramfs.cpio.gz'),
    '-append', 'console=ttyS0 quiet loglevel=3 panic=-1 mitigations=off',
    '-device', 'virtio-rng-pci',
    '-virtfs', 'local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap',
    '-virtfs', `local,path=${outDir},mount_tag=kpout,security_model=none`,
    '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04',
  ];
  installExitHook();
  const started = performance.now();
  let bootMs: number | undefined;
  let timedOut = false;
  const output: string[] = [];
  let partial = '';
  const child = spawn('qemu-system-x86_64', args, { stdio: ['pipe', 'pipe', 'pipe'] });
  running.add(child);
  const onText = (text: string): void => {
    output.push(text);
    const lines = (partial + text).split('\n');
    partial = lines.pop() ?? '';
    for (const raw of lines) {
      const line = raw.replace(/\r$/, '');
      if (bootMs === undefined && line.includes(STARTED_MARK)) bootMs = performance.now() - started;
      options.onLine?.(line);
    }
  };
  child.stdout.setEncoding('utf8').on('data', onText);
  child.stderr.setEncoding('utf8').on('data', onText);
  const timer = setTimeout(() => {
    timedOut = true;
    if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
  }, options.timeoutMs);
  await new Promise<void>((resolve) => {
    child.once('close', () => resolve());
    child.once('error', (error) => { output.push(`qemu failed to start: ${error.message}\n`); resolve(); });
  });
  clearTimeout(timer);
  running.delete(child);
  const exitFile = join(outDir, 'exit-code');
  const exitCode = existsSync(exitFile) ? Number(readFileSync(exitFile, 'utf8').trim()) : undefined;
  return {
    exitCode: timedOut ? undefined : exitCode,
    timedOut,
    console: output.join(''),
    outDir,
    bootMs,
    totalMs: performance.now() - started,
    dispose: () => rmSync(outDir, { recursive: true, force: true }),
  };
}
