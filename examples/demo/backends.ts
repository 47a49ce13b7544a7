// Demo backends: small HTTP servers on 127.0.20.x:8080 that answer with their name, and UDP echoes on
// 127.0.20.x:5353 that prefix replies with it. Run alone with `node examples/demo/backends.ts`.
import dgram from 'node:dgram';
import http from 'node:http';

export interface Backend {
  readonly name: string;
  readonly ip: string;
}

/** hello-4 is not in the manifest at first: add it while the demo runs. */
export const DEMO_BACKENDS: readonly Backend[] = [1, 2, 3, 4].map((n) => ({ name: `hello-${n}`, ip: `127.0.20.${n}` }));
export const HTTP_PORT = 8080;
export const UDP_PORT = 5353;

export interface RunningBackends {
  close(): Promise<void>;
}

export async function startBackends(backends: readonly Backend[] = DEMO_BACKENDS): Promise<RunningBackends> {
  const closers: (() => Promise<void>)[] = [];
  try {
    for (const { name, ip } of backends) {
      const server = http.createServer((req, res) => {
        res.setHeader('content-type', 'text/plain');
        res.end(`${name} (you came from ${req.socket.remoteAddress}:${req.socket.remotePort})\n`);
      });
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: ip, port: HTTP_PORT }, resolve);
      });
      closers.push(() => new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }));
      const udp = dgram.createSocket('udp4');
      udp.on('message', (msg, rinfo) => udp.send(`${name}: ${msg.toString()}`, rinfo.port, rinfo.address));
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind({ address: ip, port: UDP_PORT }, resolve);
      });
      closers.push(() => new Promise((resolve) => udp.close(() => resolve())));
    }
  } catch (err) {
    for (const close of closers) await close();
    throw err;
  }
  return {
    async close() {
      for (const close of closers) await close();
    },
  };
}

if (import.meta.main) {
  const running = await startBackends();
  console.log(`demo backends: ${DEMO_BACKENDS.map((b) => `${b.name} http://${b.ip}:${HTTP_PORT}/`).join(', ')}`);
  const stop = (): void => void running.close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
