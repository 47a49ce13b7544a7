// The order of a userspace sync: every relay process listens on a service address before the address is added
// (bound with IP_FREEBIND), and an address is removed before its listeners close, so a client never finds a
// service address without a listener. The relay is real (its sockets are read back from the kernel's tables,
// /proc/net/{tcp,udp}{,6}); `ip` is replaced by a recorder that looks at those tables at every address change,
// so no root is needed and no address is really added (nothing here sends a packet).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { defaultConfig } from '../../modes/userspace/config.ts';
import { OWNER_ALIAS } from '../../modes/userspace/interface.ts';
import type { IpRunner } from '../../modes/userspace/interface.ts';
import { UserspaceProxy } from '../../modes/userspace/proxy.ts';
import { desiredState, memoryLogger } from './helpers.ts';
import type { ServiceSpec } from './helpers.ts';

/** "ip:port" of the sockets listening (TCP) or bound (UDP) in this network namespace, with their count. */
function boundSockets(protocol: 'tcp' | 'udp'): Map<string, number> {
  const out = new Map<string, number>();
  for (const v6 of [false, true]) {
    let text = '';
    try {
      text = readFileSync(`/proc/net/${protocol}${v6 ? '6' : ''}`, 'utf8');
    } catch {
      continue; // no IPv6 here
    }
    for (const line of text.split('\n').slice(1)) {
      const [, local, , state] = line.trim().split(/\s+/);
      if (!local || (protocol === 'tcp' && state !== '0A')) continue; // 0A: LISTEN
      const [hex = '', portHex = '0'] = local.split(':');
      // The address is in 32-bit words of host order (little-endian here).
      const bytes = (hex.match(/.{8}/g) ?? []).flatMap((w) => (w.match(/../g) ?? []).reverse().map((b) => Number.parseInt(b, 16)));
      const ip = v6
        ? Array.from({ length: 8 }, (_, i) => (((bytes[2 * i] ?? 0) << 8) | (bytes[2 * i + 1] ?? 0)).toString(16)).join(':')
        : bytes.join('.');
      const key = `${ip}:${Number.parseInt(portHex, 16)}`;
      out.set(key, (out.get(key) ?? 0) + 1);
    }
  }
  return out;
}

/** The full form /proc prints (fd00:0:0:0:0:0:0:1). */
const expand = (ip: string): string => {
  if (!ip.includes(':')) return ip;
  const [head = '', tail = ''] = ip.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  return [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right].map((g) => Number.parseInt(g, 16).toString(16)).join(':');
};

interface AddressEvent {
  readonly op: 'add' | 'del';
  readonly ip: string;
  /** Sockets on the service's address:port at that moment (TCP: every relay process; UDP: relay 0). */
  readonly tcp: number;
  readonly udp: number;
}

/** An `ip` that keeps kproxy's interface in memory and notes, at each address change, what listens there. */
function recordingIp(port: number): { run: IpRunner; events: AddressEvent[] } {
  const present = new Set<string>();
  const events: AddressEvent[] = [];
  const run: IpRunner = async (args, stdin) => {
    if (args.join(' ').startsWith('-j link show')) return JSON.stringify([{ ifalias: OWNER_ALIAS }]);
    if (args.join(' ').startsWith('-j addr show')) {
      return JSON.stringify([{ addr_info: [...present].map((local) => ({ local, prefixlen: local.includes(':') ? 128 : 32 })) }]);
    }
    if (args[0] !== '-batch') throw new Error(`unexpected ip ${args.join(' ')}`);
    const tcp = boundSockets('tcp');
    const udp = boundSockets('udp');
    for (const line of (stdin ?? '').trim().split('\n')) {
      const [, op, cidr = ''] = line.split(' ');
      const ip = cidr.split('/')[0] ?? '';
      const key = `${expand(ip)}:${port}`;
      events.push({ op: op === 'add' ? 'add' : 'del', ip, tcp: tcp.get(key) ?? 0, udp: udp.get(key) ?? 0 });
      if (op === 'add') present.add(ip);
      else present.delete(ip);
    }
    return '';
  };
  return { run, events };
}

const PORT = 20_000 + (process.pid % 20_000);
// Addresses this machine does not have (bound with IP_FREEBIND only; no packet is ever sent to them).
const A = '10.255.71.1';
const B = '10.255.71.2';
const A6 = 'fd00:71::a';
const backend: readonly [string, number] = ['10.255.72.1', 8080];
const service = (name: string, clusterIP: string, protocol: 'TCP' | 'UDP' = 'TCP'): ServiceSpec =>
  ({ name: `${name}-${protocol.toLowerCase()}`, clusterIP, port: PORT, protocol, endpoints: [backend] });
const both = (name: string, ip: string): ServiceSpec[] => [service(name, ip), service(name, ip, 'UDP')];

for (const workers of [0, 2]) {
  test(`listeners before their address, the address gone before its listeners (workers: ${workers})`, async () => {
    const { run, events } = recordingIp(PORT);
    const proxy = new UserspaceProxy({ config: { ...defaultConfig, workers, addressPollMs: 0 }, log: memoryLogger(), runIp: run, readAddresses: () => [] });
    const relays = Math.max(1, workers);
    try {
      await proxy.sync(desiredState([...both('a', A), service('a6', A6)]), { full: true });
      assert.deepEqual(events, [
        { op: 'add', ip: A, tcp: relays, udp: 1 },
        { op: 'add', ip: A6, tcp: relays, udp: 0 },
      ], 'every relay process listened on each address before it was added');
      events.length = 0;
      await proxy.sync(desiredState(both('b', B)), { full: false });
      assert.deepEqual(events, [
        { op: 'add', ip: B, tcp: relays, udp: 1 },
        { op: 'del', ip: A, tcp: relays, udp: 1 },
        { op: 'del', ip: A6, tcp: relays, udp: 0 },
      ], 'A and A6 still had their listeners when they were removed');
      assert.equal(boundSockets('tcp').get(`${A}:${PORT}`), undefined, 'then their listeners closed');
      assert.equal(boundSockets('udp').get(`${A}:${PORT}`), undefined);
      assert.equal(boundSockets('tcp').get(`${B}:${PORT}`), relays);
    } finally {
      await proxy.stop();
    }
  });
}

test('freebind: false (or no libc): the address comes first, its listeners right after it, in the same sync', async () => {
  const { run, events } = recordingIp(PORT);
  const proxy = new UserspaceProxy({ config: { ...defaultConfig, workers: 0, freebind: false, addressPollMs: 0 }, log: memoryLogger(), runIp: run,
    readAddresses: () => [] });
  try {
    // Without the address the relay cannot bind; this recorder never really adds it, so the sync reports that.
    await assert.rejects(proxy.sync(desiredState([service('a', A)]), { full: true }), /EADDRNOTAVAIL/);
    assert.deepEqual(events, [{ op: 'add', ip: A, tcp: 0, udp: 0 }]);
  } finally {
    await proxy.stop();
  }
});
