/**
 * The agent-facing listeners: HTTPS (or plain HTTP when explicitly enabled)
 * on each loopback address. Upgrade requests (WebSocket exec and friends) go
 * through the same pipeline as ordinary requests; the response is written
 * onto the raw socket.
 */
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { KeyPairPem } from '@chaperone/shared';
import { type Handler, newContext } from './context.ts';

export interface KubeServerOptions {
  readonly hosts: readonly string[];
  readonly port: number;
  /** Omit for plain HTTP. */
  readonly tls?: KeyPairPem;
  readonly handler: Handler;
}

export interface KubeServers {
  readonly servers: readonly Server[];
  /** The port actually bound (useful with port 0). */
  readonly port: number;
  close(): Promise<void>;
}

function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, ipv6Only: host.includes(':') }, () => {
      server.off('error', reject);
      const addr = server.address();
      resolve(typeof addr === 'object' && addr ? addr.port : port);
    });
  });
}

export async function startKubeServers(opts: KubeServerOptions): Promise<KubeServers> {
  const servers: Server[] = [];
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    void opts.handler(newContext(req, res));
  };
  const onUpgrade = (req: IncomingMessage, socket: Socket) => {
    socket.on('error', () => {});
    const res = new ServerResponse(req);
    res.assignSocket(socket);
    res.shouldKeepAlive = false;
    res.once('finish', () => socket.end());
    void opts.handler(newContext(req, res));
  };
  let port = opts.port;
  for (const host of opts.hosts) {
    const server = opts.tls
      ? createHttpsServer({ cert: opts.tls.cert, key: opts.tls.key, minVersion: 'TLSv1.2' }, onRequest)
      : createHttpServer(onRequest);
    server.keepAliveTimeout = 65_000;
    server.headersTimeout = 70_000;
    server.requestTimeout = 0; // watches and log streams are long-lived
    server.on('upgrade', onUpgrade);
    server.on('clientError', (_err, socket: Socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
      else socket.destroy();
    });
    try {
      port = await listen(server, host, port);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // No IPv6 on this host: serve IPv4 only.
      if (host.includes(':') && (code === 'EADDRNOTAVAIL' || code === 'EAFNOSUPPORT')) continue;
      await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
      throw err;
    }
    servers.push(server);
  }
  return {
    servers,
    port,
    close: async () => {
      await Promise.all(
        servers.map(
          (s) =>
            new Promise<void>((resolve) => {
              s.close(() => resolve());
              s.closeAllConnections();
            }),
        ),
      );
    },
  };
}
