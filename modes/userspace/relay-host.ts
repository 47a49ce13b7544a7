// Entry point of one relay process (forked by host.ts): a Relay driven by messages from the control process.
// Host 0 also answers the other hosts' endpoint choices (decider.ts). It exits when its parent goes away.
import { Balancer } from './balancer.ts';
import type { Chooser } from './balancer.ts';
import { RemoteChooser, serveDecisions } from './decider.ts';
import type { FromHost, HostInit, ToHost } from './host.ts';
import type { LogSink } from './rate-log.ts';
import { Relay } from './relay.ts';

const send = process.send?.bind(process);
if (!send) throw new Error('relay-host.ts runs only as a child process of kproxy (an IPC channel is needed)');
// The parent died or closed the channel: never outlive it.
process.on('disconnect', () => process.exit(0));

const READY_TIMEOUT_MS = 5000;
// Started by boot.ts: argv[1] is this module's URL, argv[2] the HostInit.
const init = JSON.parse(process.argv[2] ?? '{}') as HostInit;
const post = (m: FromHost): void => void send(m, undefined, {}, () => undefined);
const log: LogSink = (level, obj, msg) => post({ type: 'log', level, obj, msg });

// Endpoint choices: host 0 makes them for everyone; the others open no listener before they can ask it.
let chooser: Chooser;
let remote: RemoteChooser | undefined;
let ready: Promise<unknown>;
if (init.index === 0) {
  const balancer = new Balancer();
  chooser = balancer;
  ready = init.count <= 1 ? Promise.resolve() : serveDecisions(balancer, init.deciderPath).catch((err: unknown) =>
    log('error', { err: err instanceof Error ? err.message : String(err) }, 'cannot answer the other relay processes; each decides alone'));
} else {
  chooser = remote = new RemoteChooser({ path: init.deciderPath });
  ready = remote.ready(READY_TIMEOUT_MS).then((ok) => {
    if (!ok) log('warn', {}, 'relay host 0 does not answer yet; this relay process decides alone until it does');
  });
}

const relay = new Relay({
  config: init.config,
  reusePort: init.count > 1,
  maxConnections: Math.ceil(init.config.maxConnections / init.count),
  chooser,
  log,
});

process.on('message', (m: ToHost) => {
  const reply = (p: Promise<unknown>): void => {
    p.then(
      (value) => post({ type: 'reply', id: m.id, value }),
      (err: unknown) => post({ type: 'reply', id: m.id, value: undefined, error: err instanceof Error ? err.message : String(err) }),
    );
  };
  if (m.type === 'apply') reply(ready.then(() => relay.apply(m.input)));
  else if (m.type === 'prune') reply(relay.prune());
  else if (m.type === 'stats') reply(Promise.resolve(relay.stats()));
  else {
    remote?.close();
    void relay.close().then(() => {
      send({ type: 'reply', id: m.id, value: undefined } satisfies FromHost, undefined, {}, () => process.exit(0));
    });
  }
});
post({ type: 'ready' });
