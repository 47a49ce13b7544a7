// Entry point of one relay thread: a Relay driven by messages from the control thread.
import { parentPort, workerData } from 'node:worker_threads';
import type { FromWorker, ToWorker, WorkerInit } from './host.ts';
import { Relay } from './relay.ts';

const init = workerData as WorkerInit;
const port = parentPort;
if (!port) throw new Error('relay-worker.ts runs only as a worker thread');

const post = (m: FromWorker): void => port.postMessage(m);
const relay = new Relay({
  config: init.config,
  reusePort: init.count > 1,
  maxConnections: Math.ceil(init.config.maxConnections / init.count),
  counters: new Int32Array(init.counters),
  log: (level, obj, msg) => post({ type: 'log', level, obj, msg }),
});

port.on('message', (m: ToWorker) => {
  const reply = (p: Promise<unknown>): void => {
    p.then(
      (value) => post({ type: 'reply', id: m.id, value }),
      (err: unknown) => post({ type: 'reply', id: m.id, value: undefined, error: err instanceof Error ? err.message : String(err) }),
    );
  };
  if (m.type === 'apply') reply(relay.apply(m.input));
  else if (m.type === 'stats') reply(Promise.resolve(relay.stats()));
  else reply(relay.close().then(() => port.close()));
});
