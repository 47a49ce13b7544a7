// Watches how many entries an iptables-legacy table holds in the kernel, without listing it: the kit's table-size
// reader (kit/iptables/xt-info.ts, one getsockopt per poll) returns the table's entry count and blob size in
// microseconds even at 500k rules (iptables-save of such a table takes seconds of CPU, which would skew a
// benchmark). Run it inside the namespace to watch. Prints "<epoch ms> <entries> <bytes>" at start and on every
// change; exits when its stdin closes. A table the kernel has not instantiated yet reads as 0 entries.
//   xt-count.ts ipv4|ipv6 TABLE [INTERVAL_MS]
import { openTableSizeReader } from '../../../kit/iptables/xt-info.ts';

const [family = 'ipv4', table = 'nat', interval = '10'] = process.argv.slice(2);
const { reader, error } = await openTableSizeReader();
if (reader === undefined) {
  process.stderr.write(`xt-count: ${error ?? 'cannot read table sizes'}\n`);
  process.exit(1);
}
const ipFamily = family === 'ipv6' ? 'IPv6' : 'IPv4';

let last = '';
const poll = (): void => {
  const size = reader.read(ipFamily, table);
  const now = size === undefined ? '0 0' : `${size.entries} ${size.bytes}`;
  if (now !== last) {
    last = now;
    process.stdout.write(`${Date.now()} ${now}\n`);
  }
};
poll();
setInterval(poll, Number(interval));
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
