// The IPVS netlink client against the real IPVS of the VM's kernel, cross-checked with ipvsadm (which reads the
// same tables through its own library). Runs in the VM only (test/ipvs/vm.test.ts boots it), in the VM's own
// network namespace: that kernel exists for this test run alone.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { IpvsClient, IpvsRequestError } from '../../modes/ipvs/netlink/client.ts';
import { hostNetmask, SVC_FLAG, type AddressService, type Destination, type FwmarkService, type IpvsRequest } from '../../modes/ipvs/netlink/ipvs.ts';
import { ipvsadmSave } from './guest-helpers.ts';

let client: IpvsClient;
before(async () => {
  client = await IpvsClient.open();
});
after(() => client.close());
// Each test starts from empty tables, whatever the one before left.
beforeEach(() => {
  assert.deepEqual(client.execute(client.services().map((svc) => ({ op: 'delete-service', service: svc }))), []);
});

const service = (over: Partial<AddressService> = {}): AddressService => ({
  family: 'IPv4', protocol: 'TCP', address: '10.96.0.1', port: 80,
  scheduler: 'rr', flags: 0, timeout: 0, netmask: hostNetmask(over.family ?? 'IPv4'), ...over,
});
const destination = (address: string, port: number, weight = 1): Destination =>
  ({ address, port, forwarding: 'masquerade', weight, upperThreshold: 0, lowerThreshold: 0 });

function refusal(run: () => void): string {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof IpvsRequestError, String(error));
    return error.code;
  }
  assert.fail('the kernel accepted the request');
}

test('resolves the IPVS family and reads its version', () => {
  const info = client.info();
  assert.equal(info.version, '1.2.1');
  assert.ok(info.connectionTableSize > 0);
});

test('a service round-trips through the kernel, and ipvsadm sees the same', () => {
  const svc = service();
  client.perform({ op: 'add-service', service: svc });
  assert.deepEqual(client.services(), [svc]);
  assert.deepEqual(ipvsadmSave(), ['-A -t 10.96.0.1:80 -s rr']);
  client.perform({ op: 'delete-service', service: svc });
  assert.deepEqual(client.services(), []);
});

test('errors come back as errno codes: EEXIST, ESRCH, ENOENT', () => {
  const svc = service({ port: 81 });
  client.perform({ op: 'add-service', service: svc });
  assert.equal(refusal(() => client.perform({ op: 'add-service', service: svc })), 'EEXIST');
  client.perform({ op: 'add-destination', service: svc, destination: destination('10.244.1.2', 8080) });
  assert.equal(refusal(() => client.perform({ op: 'add-destination', service: svc, destination: destination('10.244.1.2', 8080) })), 'EEXIST');
  assert.equal(refusal(() => client.perform({ op: 'delete-destination', service: svc, destination: { address: '10.244.1.9', port: 8080 } })), 'ENOENT');
  assert.equal(refusal(() => client.perform({ op: 'update-destination', service: svc, destination: destination('10.244.1.9', 8080) })), 'ENOENT');
  const missing = service({ port: 82 });
  assert.equal(refusal(() => client.perform({ op: 'delete-service', service: missing })), 'ESRCH');
  assert.equal(refusal(() => client.perform({ op: 'update-service', service: missing })), 'ESRCH');
  assert.equal(refusal(() => client.perform({ op: 'add-destination', service: missing, destination: destination('10.244.1.2', 1) })), 'ESRCH');
  assert.equal(refusal(() => client.perform({ op: 'add-service', service: service({ port: 83, scheduler: 'no-such' }) })), 'ENOENT');
  client.perform({ op: 'delete-service', service: svc });
});

test('destinations: add, dump with counters, change weight, delete', () => {
  const svc = service({ address: '10.96.0.2', port: 443, scheduler: 'wrr' });
  client.perform({ op: 'add-service', service: svc });
  client.perform({ op: 'add-destination', service: svc, destination: destination('10.244.1.2', 8443, 3) });
  client.perform({ op: 'add-destination', service: svc, destination: destination('10.244.1.3', 8443, 1) });
  const dumped = client.destinations(svc).sort((a, b) => a.address.localeCompare(b.address));
  assert.deepEqual(dumped.map(({ address, port, weight, forwarding, family }) => ({ address, port, weight, forwarding, family })), [
    { address: '10.244.1.2', port: 8443, weight: 3, forwarding: 'masquerade', family: 'IPv4' },
    { address: '10.244.1.3', port: 8443, weight: 1, forwarding: 'masquerade', family: 'IPv4' },
  ]);
  assert.equal(dumped[0]?.activeConnections, 0);
  client.perform({ op: 'update-destination', service: svc, destination: destination('10.244.1.3', 8443, 0) });
  assert.deepEqual(ipvsadmSave(), [
    '-A -t 10.96.0.2:443 -s wrr',
    '-a -t 10.96.0.2:443 -r 10.244.1.2:8443 -m -w 3',
    '-a -t 10.96.0.2:443 -r 10.244.1.3:8443 -m -w 0',
  ]);
  client.perform({ op: 'delete-destination', service: svc, destination: { address: '10.244.1.2', port: 8443 } });
  assert.deepEqual(client.destinations(svc).map((d) => d.address), ['10.244.1.3']);
  client.perform({ op: 'delete-service', service: svc });
});

test('IPv6, UDP and SCTP services with their destinations', () => {
  const v6 = service({ family: 'IPv6', address: 'fd00:96::a', port: 53, protocol: 'UDP' });
  const sctp = service({ address: '10.96.0.3', port: 3868, protocol: 'SCTP' });
  client.perform({ op: 'add-service', service: v6 });
  client.perform({ op: 'add-service', service: sctp });
  client.perform({ op: 'add-destination', service: v6, destination: destination('fd00:244:1::2', 5353) });
  client.perform({ op: 'add-destination', service: sctp, destination: destination('10.244.1.4', 3868) });
  const byAddress = new Map(client.services().map((s) => ['address' in s ? s.address : '', s]));
  assert.deepEqual(byAddress.get('fd00:96::a'), v6);
  assert.deepEqual(byAddress.get('10.96.0.3'), sctp);
  const [d6] = client.destinations(v6);
  assert.equal(d6?.address, 'fd00:244:1::2');
  assert.equal(d6?.family, 'IPv6');
  const saved = ipvsadmSave();
  assert.ok(saved.includes('-A -u [fd00:96::a]:53 -s rr'), saved.join('\n'));
  assert.ok(saved.includes('-a -u [fd00:96::a]:53 -r [fd00:244:1::2]:5353 -m -w 1'), saved.join('\n'));
  assert.ok(saved.some((line) => line.startsWith('-A --sctp-service 10.96.0.3:3868')), saved.join('\n'));
  client.perform({ op: 'delete-service', service: v6 });
  client.perform({ op: 'delete-service', service: sctp });
});

test('persistence (session affinity), scheduler flags and a scheduler change', () => {
  const svc = service({ address: '10.96.0.4', scheduler: 'sh', flags: SVC_FLAG.persistent | SVC_FLAG.sched1 | SVC_FLAG.sched2, timeout: 10800 });
  client.perform({ op: 'add-service', service: svc });
  assert.deepEqual(client.services(), [svc]);
  const [line] = ipvsadmSave();
  assert.equal(line, '-A -t 10.96.0.4:80 -s sh -p 10800 -b sh-fallback,sh-port');
  const changed = { ...svc, scheduler: 'lc', flags: 0, timeout: 0 };
  client.perform({ op: 'update-service', service: changed });
  assert.deepEqual(client.services(), [changed]);
  assert.deepEqual(ipvsadmSave(), ['-A -t 10.96.0.4:80 -s lc']);
  client.perform({ op: 'delete-service', service: changed });
});

test('a firewall-mark service takes marked packets: add, dump, destinations', () => {
  const marked: FwmarkService = { family: 'IPv4', fwmark: 0x20000001, scheduler: 'rr', flags: 0, timeout: 0, netmask: hostNetmask('IPv4') };
  client.perform({ op: 'add-service', service: marked });
  client.perform({ op: 'add-destination', service: marked, destination: destination('10.244.1.3', 8080) });
  assert.deepEqual(client.services(), [marked]);
  assert.deepEqual(client.destinations(marked).map((d) => `${d.address}:${d.port}`), ['10.244.1.3:8080']);
  assert.deepEqual(ipvsadmSave(), ['-A -f 536870913 -s rr', '-a -f 536870913 -r 10.244.1.3:8080 -m -w 1']);
  assert.equal(refusal(() => client.perform({ op: 'add-service', service: marked })), 'EEXIST');
  client.perform({ op: 'delete-service', service: marked });
  assert.equal(refusal(() => client.perform({ op: 'delete-service', service: marked })), 'ESRCH');
});

test('connection timeouts: set and read back', () => {
  const before = client.timeouts();
  client.perform({ op: 'set-timeouts', timeouts: { tcp: 901, tcpFin: 121, udp: 301 } });
  assert.deepEqual(client.timeouts(), { tcp: 901, tcpFin: 121, udp: 301 });
  client.perform({ op: 'set-timeouts', timeouts: before });
});

test('a batch of 3000 requests goes out in few datagrams; only the refused ones come back, in order', () => {
  const services = Array.from({ length: 1000 }, (_, i) => service({ address: `10.97.${i >> 8}.${i & 255}`, port: 80 }));
  const requests: IpvsRequest[] = services.flatMap((svc, i) => [
    { op: 'add-service', service: svc } as const,
    { op: 'add-destination', service: svc, destination: destination(`10.244.${i >> 8}.${i & 255}`, 8080) } as const,
    { op: 'add-destination', service: svc, destination: destination(`10.245.${i >> 8}.${i & 255}`, 8080) } as const,
  ]);
  // Two refusals in the middle: a duplicate service and a destination of a service that does not exist.
  requests.splice(1500, 0, { op: 'add-service', service: services[3] as AddressService });
  requests.splice(2500, 0, { op: 'add-destination', service: service({ address: '10.98.0.1' }), destination: destination('10.244.9.9', 1) });
  const before = { ...client.counters };
  const failures = client.execute(requests);
  const datagrams = client.counters.datagrams - before.datagrams;
  assert.equal(client.counters.messages - before.messages, requests.length);
  assert.ok(datagrams <= 10, `${datagrams} datagrams for ${requests.length} requests`);
  assert.deepEqual(failures.map((f) => [f.index, f.code]), [[1500, 'EEXIST'], [2500, 'ESRCH']]);
  // The dump spans many datagrams; every service and destination is there.
  const dumped = client.services();
  assert.equal(dumped.length, 1000);
  assert.equal(client.destinations(services[999] as AddressService).length, 2);
  const expected = services.flatMap((svc, i) => [
    `-A -t ${svc.address}:80 -s rr`,
    `-a -t ${svc.address}:80 -r 10.244.${i >> 8}.${i & 255}:8080 -m -w 1`,
    `-a -t ${svc.address}:80 -r 10.245.${i >> 8}.${i & 255}:8080 -m -w 1`,
  ]);
  assert.deepEqual(ipvsadmSave().sort(), expected.sort(), 'every byte of every request reached the kernel as meant');
  const failuresOfDelete = client.execute(services.map((svc) => ({ op: 'delete-service', service: svc })));
  assert.deepEqual(failuresOfDelete, []);
  assert.deepEqual(client.services(), []);
});
