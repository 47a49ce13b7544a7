// Small HTTP server helpers shared by the health, health-check node port and metrics servers.
import type { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ListenError } from '../errors.ts';

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

/**
 * "0.0.0.0:10256", "[::]:10256", ":10256" (all addresses) or "10256" → host and port.
 * Throws one clear line on anything else.
 */
export function parseBindAddress(text: string, flag: string): ListenAddress {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d+)$/.exec(text.trim()) ?? /^()()(\d+)$/.exec(text.trim());
  const port = Number(match?.[3]);
  if (!match || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`${flag} ${JSON.stringify(text)}: expected HOST:PORT, [IPv6]:PORT or :PORT`);
  }
  const host = match[1] ?? match[2] ?? '';
  return { host: host === '' ? '::' : host, port };
}

export type Handler = (request: IncomingMessage, response: ServerResponse) => void;

export interface RunningServer {
  /** The port actually bound (useful with port 0). */
  readonly port: number;
  readonly host: string;
  close(): Promise<void>;
}

/**
 * Errors a listening server emits later (EMFILE when accepting a connection, …) are transient: the server keeps
 * listening. Without a listener, Node would turn such an 'error' event into an exception that ends the agent.
 */
export function ignoreLaterErrors(server: EventEmitter): void {
  server.removeAllListeners('error');
  server.on('error', () => undefined);
}

/** Listen on `address` with `handler`; rejects with a one-line ListenError when the port cannot be bound. */
export async function listen(address: ListenAddress, handler: Handler, what: string): Promise<RunningServer> {
  const server: Server = createServer(handler);
  // Health checkers open many short connections; don't let idle ones pile up.
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => reject(new ListenError(`${what}: cannot listen on ${address.host}:${address.port}: ${error.code ?? error.message}`, { cause: error })));
    // '::' also accepts IPv4 when the host has IPv6; fall back to 0.0.0.0 when it has not.
    server.listen({ host: address.host, port: address.port, ipv6Only: false }, () => resolve());
  }).catch(async (error: Error) => {
    if (address.host !== '::') throw error;
    await new Promise<void>((resolve, reject) => {
      server.removeAllListeners('error');
      server.once('error', () => reject(error));
      server.listen({ host: '0.0.0.0', port: address.port }, () => resolve());
    });
  });
  ignoreLaterErrors(server);
  server.unref();
  const bound = server.address() as AddressInfo;
  return {
    port: bound.port,
    host: bound.address,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

export function send(response: ServerResponse, status: number, contentType: string, body: string, headers: Record<string, string> = {}): void {
  response.writeHead(status, { 'Content-Type': contentType, 'X-Content-Type-Options': 'nosniff', ...headers });
  response.end(body);
}

/** The path of a request without its query string. */
export function pathOf(request: IncomingMessage): string {
  return (request.url ?? '/').split('?')[0] ?? '/';
}
