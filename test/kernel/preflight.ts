// Real-kernel tests need root and the netfilter tools. In CI they must run, so a missing piece is a loud failure;
// a developer without root sets KPROXY_NO_KERNEL_TESTS=1 to skip them (and only then).
import { execFileSync } from 'node:child_process';

export const KERNEL_TESTS_DISABLED = process.env.KPROXY_NO_KERNEL_TESTS === '1';

/** Options for describe(): skipped only when the developer opted out. */
export const kernelSuite = { skip: KERNEL_TESTS_DISABLED ? 'KPROXY_NO_KERNEL_TESTS=1' : false } as const;

function hasTool(tool: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Throws one clear line naming what is missing. */
export function requireKernelTools(tools: readonly string[]): void {
  const problems: string[] = [];
  if (process.getuid?.() !== 0) problems.push('not running as root (network namespaces need CAP_NET_ADMIN)');
  const missing = ['ip', ...tools].filter((tool) => !hasTool(tool));
  if (missing.length > 0) problems.push(`missing tools: ${missing.join(', ')} (apt-get install iptables conntrack iproute2)`);
  if (problems.length > 0) {
    throw new Error(`real-kernel tests cannot run: ${problems.join('; ')}. Set KPROXY_NO_KERNEL_TESTS=1 to skip them on a developer machine.`);
  }
}

/** Poll `check` until it returns true (or a truthy value); throws the last failure after timeoutMs. */
export async function eventually<T>(check: () => Promise<T>, what: string, timeoutMs = 5000, intervalMs = 100): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as NonNullable<T>;
      last = new Error('condition false');
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not reached within ${timeoutMs} ms (${(last as Error).message})`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
