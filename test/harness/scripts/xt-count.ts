// Watches how many entries an iptables-legacy table holds in the kernel, without listing it: one getsockopt
// (IPT_SO_GET_INFO / IP6T_SO_GET_INFO) per poll returns the table's entry count and blob size, in microseconds
// even at 500k rules (iptables-save of such a table takes seconds of CPU, which would skew a benchmark). Run it
// inside the namespace to watch. Prints "<epoch ms> <entries> <bytes>" at start and on every change; exits when
// its stdin closes. A table the kernel has not instantiated yet reads as 0 entries.
//   xt-count.ts ipv4|ipv6 TABLE [INTERVAL_MS]
import koffi from 'koffi';

const [family = 'ipv4', table = 'nat', interval = '10'] = process.argv.slice(2);
const v6 = family === 'ipv6';
const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_RAW = 3;
const IPPROTO_RAW = 255;
const SOL_IP = 0;
const SOL_IPV6 = 41;
const SO_GET_INFO = 64; // IPT_SO_GET_INFO and IP6T_SO_GET_INFO alike
// struct ipt_getinfo: char name[32]; u32 valid_hooks; u32 hook_entry[5]; u32 underflow[5]; u32 num_entries; u32 size
const INFO_BYTES = 84;
const NUM_ENTRIES_AT = 76;
const SIZE_AT = 80;

const libc = koffi.load('libc.so.6');
const socket = libc.func('int socket(int, int, int)');
const getsockopt = libc.func('int getsockopt(int, int, int, void *, uint32_t *)');

const fd = Number(socket(v6 ? AF_INET6 : AF_INET, SOCK_RAW, IPPROTO_RAW));
if (fd < 0) {
  process.stderr.write(`xt-count: socket() failed (errno ${koffi.errno()})\n`);
  process.exit(1);
}
const info = Buffer.alloc(INFO_BYTES);
const length = new Uint32Array(1);

function read(): string {
  info.fill(0);
  info.write(table, 0, 'latin1');
  length[0] = INFO_BYTES;
  if (Number(getsockopt(fd, v6 ? SOL_IPV6 : SOL_IP, SO_GET_INFO, info, length)) !== 0) return '0 0';
  return `${info.readUInt32LE(NUM_ENTRIES_AT)} ${info.readUInt32LE(SIZE_AT)}`;
}

let last = '';
const poll = (): void => {
  const now = read();
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
