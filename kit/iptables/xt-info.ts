// How big an iptables-legacy (x_tables) table is, without listing it: one getsockopt(IPT_SO_GET_INFO /
// IP6T_SO_GET_INFO) returns its entry count and blob size in microseconds, where any iptables-legacy command copies
// the whole table out of the kernel (≈ 1.7 CPU-seconds and 470 MB for a nat table of 10k services). The canary uses it
// to list a table only when it changed. Reads the table of the network namespace this process runs in.
import type { IPFamily } from '../../src/model/types.ts';
import { loadLibcFunctions, type LibcFunctions } from '../../src/util/ffi.ts';

/** A table's size as the kernel reports it; any change of its rules changes it (almost always). */
export interface TableSize {
  readonly entries: number;
  readonly bytes: number;
}

export interface TableSizeReader {
  /** undefined when the table cannot be read (not instantiated, no x_tables, no permission). */
  read(family: IPFamily, table: string): TableSize | undefined;
}

const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_RAW = 3;
const IPPROTO_RAW = 255;
const SOL_IP = 0;
const SOL_IPV6 = 41;
/** IPT_SO_GET_INFO and IP6T_SO_GET_INFO alike. */
const SO_GET_INFO = 64;
// struct ipt_getinfo: char name[32]; u32 valid_hooks; u32 hook_entry[5]; u32 underflow[5]; u32 num_entries; u32 size
const INFO_BYTES = 84;
const ENTRIES_AT = 76;
const BYTES_AT = 80;
const TABLE_NAME_MAX = 31;

type Calls = 'socket' | 'getsockopt' | 'close';

/** A reader, or undefined (with the reason) when the C library cannot be bound here. */
export async function openTableSizeReader(): Promise<{ reader?: TableSizeReader; error?: string }> {
  let libc: LibcFunctions<Calls>;
  try {
    libc = await loadLibcFunctions<Calls>('reading iptables-legacy table sizes', {
      socket: 'int socket(int, int, int)',
      getsockopt: 'int getsockopt(int, int, int, void *, uint32_t *)',
      close: 'int close(int)',
    });
  } catch (err) {
    return { error: err instanceof Error ? err.message : String(err) };
  }
  const info = Buffer.alloc(INFO_BYTES);
  const length = new Uint32Array(1);
  return {
    reader: {
      read(family, table) {
        if (table.length > TABLE_NAME_MAX) return undefined;
        const v6 = family === 'IPv6';
        const fd = Number(libc.call.socket(v6 ? AF_INET6 : AF_INET, SOCK_RAW, IPPROTO_RAW));
        if (fd < 0) return undefined;
        try {
          info.fill(0);
          info.write(table, 0, 'latin1');
          length[0] = INFO_BYTES;
          if (Number(libc.call.getsockopt(fd, v6 ? SOL_IPV6 : SOL_IP, SO_GET_INFO, info, length)) !== 0) return undefined;
          return { entries: info.readUInt32LE(ENTRIES_AT), bytes: info.readUInt32LE(BYTES_AT) };
        } finally {
          libc.call.close(fd);
        }
      },
    },
  };
}
