// iptables-legacy serialises every user of the machine through one lock file (/run/xtables.lock), although its
// tables live per network namespace. A test or benchmark process only programs namespaces it created itself, so it
// takes a lock file of its own: suites and benchmarks running side by side then never wait on each other's restores.
// Imported for its side effect by every module that runs iptables in a namespace; children inherit the variable.
import { rmSync } from 'node:fs';

const own = `/run/kproxy-xtables-${process.pid}.lock`;
if (process.env['XTABLES_LOCKFILE'] === undefined) {
  process.env['XTABLES_LOCKFILE'] = own;
  process.on('exit', () => rmSync(own, { force: true }));
}
