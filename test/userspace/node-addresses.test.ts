// NodePorts follow the node's addresses: an address that appears after a sync gets its listeners within a
// poll period, without a new desired state (loopback: the address source is replaced, the sockets are real).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultConfig } from '../../modes/userspace/config.ts';
import { UserspaceProxy } from '../../modes/userspace/proxy.ts';
import { desiredState, fetchText, freePort, memoryLogger, nameServer, sleep } from './helpers.ts';

const net3 = `127.89.${process.pid % 250}`;
const VIP = `${net3}.1`;
const BACKEND = `${net3}.11`;
const LATE = `${net3}.7`;

const noInterface = async (): Promise<string> => {
  throw new Error('the loopback relay must not touch interfaces');
};

async function waitFor(what: string, check: () => Promise<boolean>, ms: number): Promise<number> {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > ms) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(25);
  }
  return Date.now() - start;
}

for (const workers of [0, 2]) {
  test(`a node address that appears after the sync gets the NodePort listener, and loses it when it goes (workers: ${workers})`, async () => {
    const { server, port: backendPort } = await nameServer(BACKEND, 'late');
    let addresses: string[] = [];
    const log = memoryLogger();
    const proxy = new UserspaceProxy({
      config: { ...defaultConfig, workers, addressPollMs: 100 },
      log,
      runIp: noInterface,
      readAddresses: () => addresses,
    });
    try {
      const nodePort = await freePort(LATE);
      const port = await freePort(VIP);
      const state = desiredState([{ name: 'np', clusterIP: VIP, port, nodePort, endpoints: [[BACKEND, backendPort]] }],
        { nodePortAddresses: [`${net3}.0/24`] });
      const report = await proxy.sync(state, { full: true });
      assert.equal(report.stats?.listeners, 1, 'only the ClusterIP: no node address yet');
      assert.equal(await fetchText(LATE, nodePort), 'ERR:ECONNREFUSED');
      addresses = [LATE, '10.0.0.5'];
      const took = await waitFor('NodePort on the new address', async () => (await fetchText(LATE, nodePort)) === 'late', 3000);
      assert.ok(took < 3000);
      assert.ok(log.lines.some((l) => l.msg === 'node addresses changed; re-applying the listeners'));
      assert.equal(await fetchText(VIP, port), 'late', 'the other listeners stay');
      addresses = ['10.0.0.5'];
      await waitFor('NodePort gone with its address', async () => (await fetchText(LATE, nodePort)) === 'ERR:ECONNREFUSED', 3000);
    } finally {
      await proxy.stop();
      server.close();
    }
  });
}

test('addressPollMs 0: no poll (the next sync picks the address up)', async () => {
  const { server, port: backendPort } = await nameServer(BACKEND, 'late');
  let addresses: string[] = [];
  const proxy = new UserspaceProxy({
    config: { ...defaultConfig, workers: 0, addressPollMs: 0 },
    log: memoryLogger(),
    runIp: noInterface,
    readAddresses: () => addresses,
  });
  try {
    const nodePort = await freePort(LATE);
    const state = desiredState([{ name: 'np', clusterIP: VIP, port: await freePort(VIP), nodePort, endpoints: [[BACKEND, backendPort]] }],
      { nodePortAddresses: [`${net3}.0/24`] });
    await proxy.sync(state, { full: true });
    addresses = [LATE];
    await sleep(300);
    assert.equal(await fetchText(LATE, nodePort), 'ERR:ECONNREFUSED');
    await proxy.sync(state, { full: false });
    assert.equal(await fetchText(LATE, nodePort), 'late');
  } finally {
    await proxy.stop();
    server.close();
  }
});
