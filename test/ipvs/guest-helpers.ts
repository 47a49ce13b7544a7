// Helpers for the tests that run inside the VM (*.guest.ts).
import { execFileSync } from 'node:child_process';

/** The IPVS tables as `ipvsadm -S -n` prints them (a namespace's when `ns` is given), one rule a line. */
export function ipvsadmSave(ns?: string): string[] {
  const command = ns === undefined ? ['ipvsadm', '-S', '-n'] : ['ip', 'netns', 'exec', ns, 'ipvsadm', '-S', '-n'];
  const text = execFileSync(command[0] as string, command.slice(1), { encoding: 'utf8' });
  return text.split('\n').map((line) => line.trim()).filter((line) => line !== '');
}
