// `npm run demo`: the demo backends plus kproxy in userspace mode on the demo manifests. No root, no cluster.
// Usage: node examples/demo/run.ts [MANIFESTS] (default: examples/demo/manifests, watched for edits)
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { DEMO_BACKENDS, HTTP_PORT, startBackends } from './backends.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const manifests = process.argv[2] ?? fileURLToPath(new URL('./manifests/', import.meta.url));

let backends;
try {
  backends = await startBackends();
} catch (err) {
  console.error(`demo: cannot start the backends (${err instanceof Error ? err.message : String(err)}); is another demo running?`);
  process.exit(1);
}

const kproxy = spawn(
  process.execPath,
  [`${root}bin/kproxy.js`, '--proxy-mode', 'userspace', '--manifests', manifests, '--log-format', 'text',
    '--healthz-bind-address', '127.0.0.1:10256', '--metrics-bind-address', '127.0.0.1:10249'],
  { stdio: 'inherit' },
);

console.log(`
kproxy demo: backends ${DEMO_BACKENDS.map((b) => b.name).join(', ')} on 127.0.20.1-4:${HTTP_PORT}; manifests in ${manifests}
  curl http://127.0.10.1:${HTTP_PORT}/      round robin over hello-1..3
  curl http://127.0.10.2:${HTTP_PORT}/      ClientIP affinity: always the same backend
  echo hi | nc -u -w1 127.0.10.3 5353     UDP echo (if you have nc)
  Edit the manifest (e.g. add 127.0.20.4 to the hello endpoints) and kproxy follows. Ctrl-C stops everything.
`);

let stopping = false;
const stop = (signal: NodeJS.Signals): void => {
  if (stopping) return;
  stopping = true;
  kproxy.kill(signal);
};
process.on('SIGINT', () => stop('SIGINT'));
process.on('SIGTERM', () => stop('SIGTERM'));
kproxy.on('exit', (code, signal) => {
  void backends.close().then(() => process.exit(code ?? (signal ? 0 : 1)));
});
