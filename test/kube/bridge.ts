// Makes the test apiserver (on the root namespace's loopback) reachable at the same 127.0.0.1:<port> inside
// node namespaces, so a proxy running there (kproxy or the upstream kube-proxy) uses the unchanged kubeconfig: the
// serving certificate names 127.0.0.1, and the node namespace gains no address, link or route of ours.
//
// The two halves meet on a Unix socket, which crosses network namespaces; nothing is routed and the root namespace
// gets nothing but a socket file. The root half listens on the socket and connects each stream to the apiserver; a
// namespace half (one small Node process per namespace) listens on 127.0.0.1:<port> and connects each stream to the
// socket. Chosen over a control-plane namespace joined to each node by a veth pair: that needs an address (and a
// certificate naming it) in every node namespace, and the test process itself, in the root namespace, could no
// longer reach the apiserver. Cost, measured: see test/harness/README.md ("Against a real control plane").
import type { ChildProcess } from 'node:child_process';
import { connect, createServer as createNetServer, type Server, type Socket } from 'node:net';

/** How the bridge starts a process in a namespace (the caller owns its PID: cluster.spawn does). */
export type SpawnInNamespace = (cmd: string, args: readonly string[]) => ChildProcess;

function pipeBoth(a: Socket, b: Socket): void {
  a.on('error', () => b.destroy());
  b.on('error', () => a.destroy());
  a.pipe(b).pipe(a);
}

// The namespace half, inline so it needs no TypeScript stripping; it exits when its stdin (our pipe) closes.
const NAMESPACE_HALF = `const net = require('node:net');
  const [socketPath, port] = process.argv.slice(1);
  net.createServer((a) => { const b = net.connect(socketPath);
    a.setNoDelay(true);
    a.on('error', () => b.destroy()); b.on('error', () => a.destroy()); a.pipe(b).pipe(a);
  }).listen(Number(port), '127.0.0.1', () => process.stdout.write('ready\\n'));
  process.stdin.resume(); process.stdin.on('end', () => process.exit(0));`;

export class ApiserverBridge {
  readonly port: number;
  readonly socketPath: string;
  private readonly root: Server;
  private readonly halves = new Set<ChildProcess>();
  private readonly sockets: Set<Socket>;

  private constructor(port: number, socketPath: string, root: Server, sockets: Set<Socket>) {
    this.port = port;
    this.socketPath = socketPath;
    this.root = root;
    this.sockets = sockets;
  }

  /** Listen on `socketPath` (root namespace) and forward every stream to 127.0.0.1:`port`. */
  static async open(port: number, socketPath: string): Promise<ApiserverBridge> {
    const sockets = new Set<Socket>();
    const root = createNetServer((inbound) => {
      const outbound = connect({ host: '127.0.0.1', port, noDelay: true });
      for (const socket of [inbound, outbound]) {
        sockets.add(socket);
        socket.once('close', () => sockets.delete(socket));
      }
      pipeBoth(inbound, outbound);
    });
    await new Promise<void>((resolve, reject) => { root.once('error', reject); root.listen(socketPath, resolve); });
    return new ApiserverBridge(port, socketPath, root, sockets);
  }

  /** Start the namespace half: 127.0.0.1:<port> inside the namespace reaches the apiserver once this resolves. */
  async into(spawnInNs: SpawnInNamespace): Promise<ChildProcess> {
    const child = spawnInNs(process.execPath, ['-e', NAMESPACE_HALF, this.socketPath, String(this.port)]);
    this.halves.add(child);
    child.once('exit', () => this.halves.delete(child));
    await new Promise<void>((resolve, reject) => {
      let seen = '';
      child.stdout?.on('data', (data: Buffer) => { seen += data.toString(); if (seen.includes('ready')) resolve(); });
      child.once('exit', (code) => reject(new Error(`namespace half of the apiserver bridge exited (${code})`)));
    });
    return child;
  }

  /** Stop every namespace half (by PID) and the root half. */
  async close(): Promise<void> {
    for (const child of this.halves) if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
    this.halves.clear();
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => { this.root.close(() => resolve()); });
  }
}
