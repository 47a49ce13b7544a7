// Prints the iptables variant ("legacy" or "nft") the image's `iptables*` commands should run: the one the kproxy
// of this container programs. That kproxy is PID 1; its command line, config file and environment give its
// settings, resolved by kproxy's own configuration code (a forced --iptables-variant / iptables.variant /
// KPROXY_IPTABLES_VARIANT wins), and otherwise the variant is detected exactly as kproxy detects it (the one that
// already holds more rules). Used by image/iptables-wrapper.sh.
import { readFileSync } from 'node:fs';
import { parseCommandLine } from '../src/cli/parse.ts';
import { readConfigFile, resolveConfig } from '../src/config/index.ts';
import { runCommand } from '../kit/exec.ts';
import { detectVariant, type IptablesVariant } from '../kit/iptables/variant.ts';

/** NUL-separated /proc file as a list; empty when unreadable. */
function procList(path: string): string[] {
  try {
    return readFileSync(path, 'utf8').split('\0').filter((part) => part !== '');
  } catch {
    return [];
  }
}

/** The variant a kproxy running as `pid` was told to use; undefined when none was forced or it is not kproxy. */
async function forcedVariant(pid: number): Promise<IptablesVariant | undefined> {
  const argv = procList(`/proc/${pid}/cmdline`);
  const script = argv.findIndex((arg) => arg.endsWith('/bin/kproxy.js'));
  if (script < 0) return undefined;
  const env = Object.fromEntries(procList(`/proc/${pid}/environ`).map((entry) => {
    const at = entry.indexOf('=');
    return [entry.slice(0, at), entry.slice(at + 1)];
  }));
  try {
    const command = await parseCommandLine(argv.slice(script + 1));
    if (command.kind !== 'run') return undefined;
    const path = command.flags.config;
    const file = typeof path === 'string' && path !== '' ? readConfigFile(path).config : undefined;
    return resolveConfig({ flags: command.flags, ...(file && { file }), env }).config.settings.iptablesVariant;
  } catch {
    // A command line or config kproxy itself would refuse: nothing forced, detect.
    return undefined;
  }
}

process.stdout.write(`${await forcedVariant(1) ?? await detectVariant(runCommand)}\n`);
