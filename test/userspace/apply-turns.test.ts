// A relay that opens thousands of listeners keeps serving the ones it has: a listener joins its SO_REUSEPORT
// group (and gets its share of new connections) as soon as it is bound, but its process accepts only between
// turns of the event loop, so an apply gives it turns. Measured by order, not time: with the relay in this thread
// (workers: 0), a connection to a kept service made while a big apply runs is answered before the apply ends.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultConfig } from '../../modes/userspace/config.ts';
import { UserspaceProxy } from '../../modes/userspace/proxy.ts';
import { desiredState, fetchText, freePort, memoryLogger, nameServer } from './helpers.ts';
import type { ServiceSpec } from './helpers.ts';

const net2 = `127.${90 + (process.pid % 10)}`;
const noInterface = async (): Promise<string> => {
  throw new Error('the loopback relay must not touch interfaces');
};

test('connections to a kept service are answered while an apply opens 3000 listeners', async () => {
  const backend = await nameServer(`${net2}.255.1`, 'kept');
  const proxy = new UserspaceProxy({ config: { ...defaultConfig, workers: 0, addressPollMs: 0 }, log: memoryLogger(), runIp: noInterface });
  try {
    const port = await freePort(`${net2}.255.2`);
    const kept: ServiceSpec = { name: 'kept', clusterIP: `${net2}.255.2`, port, endpoints: [[`${net2}.255.1`, backend.port]] };
    await proxy.sync(desiredState([kept]), { full: true });
    assert.equal(await fetchText(kept.clusterIP, port), 'kept');
    const many: ServiceSpec[] = Array.from({ length: 3000 }, (_, i) =>
      ({ name: `s${i}`, clusterIP: `${net2}.${i >> 8}.${(i & 255) + 1}`, port, endpoints: [[`${net2}.255.1`, backend.port]] }));
    const order: string[] = [];
    const applied = proxy.sync(desiredState([kept, ...many]), { full: false }).then(() => void order.push('applied'));
    const answered = fetchText(kept.clusterIP, port).then((text) => void order.push(`answered ${text}`));
    await Promise.all([applied, answered]);
    assert.deepEqual(order, ['answered kept', 'applied']);
  } finally {
    await proxy.stop();
    backend.server.close();
  }
});
