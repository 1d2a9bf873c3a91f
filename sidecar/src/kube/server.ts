/**
 * The agent-facing listeners: HTTPS (or plain HTTP when explicitly enabled)
 * on each loopback address, speaking HTTP/1.1 through AgentConnection. Upgrade
 * requests (WebSocket exec and friends) go through the same pipeline as
 * ordinary requests and are answered, never tunnelled, by this version.
 */
import { createServer as createNetServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import type { KeyPairPem } from '@chaperone/shared/tls';
import { listen } from '../listen.ts';
import { type Handler, newContext } from './context.ts';
import { AgentConnection } from './http1/agent-connection.ts';
import { statusBody } from './status.ts';

export interface KubeServerOptions {
  readonly hosts: readonly string[];
  readonly port: number;
  /** Omit for plain HTTP. */
  readonly tls?: KeyPairPem;
  readonly handler: Handler;
  /** Idle keep-alive connections (and requests that never finish arriving) are closed after this long. */
  readonly idleTimeoutMs?: number;
}

export interface KubeServers {
  readonly servers: readonly Server[];
  /** The port actually bound (useful with port 0). */
  readonly port: number;
  close(): Promise<void>;
}

export async function startKubeServers(opts: KubeServerOptions): Promise<KubeServers> {
  const servers: Server[] = [];
  const sockets = new Set<Socket>();
  const connOpts = {
    idleTimeoutMs: opts.idleTimeoutMs ?? 65_000,
    maxBufferedBytes: 1 << 20,
    errorBody: (code: number, message: string) =>
      JSON.stringify(
        statusBody(
          code,
          code === 431 ? 'RequestHeaderFieldsTooLarge' : 'BadRequest',
          `chaperone: ${message}`,
        ),
      ),
  };
  const onConnection = (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    new AgentConnection(socket, (req, res) => void opts.handler(newContext(req, res)), connOpts);
  };
  let port = opts.port;
  for (const host of opts.hosts) {
    const server: Server = opts.tls
      ? createTlsServer(
          {
            cert: opts.tls.cert,
            key: opts.tls.key,
            minVersion: 'TLSv1.2',
            ALPNProtocols: ['http/1.1'],
          },
          onConnection,
        )
      : createNetServer(onConnection);
    if (opts.tls) server.on('tlsClientError', (_err, socket: Socket) => socket.destroy());
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
      const closing = servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
      for (const socket of sockets) socket.destroy();
      await Promise.all(closing);
    },
  };
}
