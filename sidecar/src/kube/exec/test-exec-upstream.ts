/**
 * For tests: a stand-in for the API server's exec and attach endpoints (no
 * kubelet can run in a unit test), built on the `ws` package — an independent
 * WebSocket implementation, so the sidecar's own codec is checked against
 * another one. Two flavours:
 *
 * - version 4: an API server before 1.30, which hands the upgrade to the
 *   kubelet: it picks the first offered protocol a kubelet speaks
 *   (channel.k8s.io, base64.channel.k8s.io, v4.channel.k8s.io,
 *   v4.base64.channel.k8s.io) and answers a v5-only offer with 403;
 * - version 5: an API server from 1.30, which picks v5 when offered.
 *
 * Like a kubelet it first sends an empty stdout message, then runs a scripted
 * "command" (see `run`), writes the Status on channel 3 and closes. It also
 * serves pod reads (GET …/pods/{name}): from `podSpecs` (whole specs), else
 * `pods` (container names), else — the pods `missing`, `nosuch` and `gone`
 * excepted, which are not found — an injected-looking pod with the
 * containers `app` and `chaperone-sidecar`; and Secret reads
 * (GET …/secrets/{name}) from `secrets`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { createCA, issueCertificate } from '@chaperone/shared/tls';
import { type WebSocket, WebSocketServer } from 'ws';

const KUBELET_PROTOCOLS = [
  'channel.k8s.io',
  'base64.channel.k8s.io',
  'v4.channel.k8s.io',
  'v4.base64.channel.k8s.io',
];

export const SUCCESS = '{"metadata":{},"status":"Success"}';

export function exitStatus(code: number): string {
  return JSON.stringify({
    metadata: {},
    status: 'Failure',
    message: `command terminated with non-zero exit code: error executing command, exit code ${code}`,
    reason: 'NonZeroExitCode',
    details: { causes: [{ reason: 'ExitCode', message: String(code) }] },
  });
}

export interface SeenSession {
  readonly url: URL;
  readonly headers: IncomingMessage['headers'];
  readonly protocol: string;
  /** Every message the sidecar sent, as [channel, payload]. */
  readonly received: [number, Buffer][];
  /** The close code the sidecar sent, once it did. */
  closeCode?: number;
  /** Output bytes the stand-in has handed to its socket (flood). */
  sent: number;
}

export interface FakeExecUpstream {
  readonly url: string;
  readonly ca: string;
  readonly sessions: SeenSession[];
  /** Plain HTTP requests (pod reads), as "METHOD path". */
  readonly requests: string[];
  /** Pods by name: their container names. */
  readonly pods: Map<string, string[]>;
  /** Pods by name: their whole spec (before `pods`). */
  readonly podSpecs: Map<string, object>;
  /** Secrets by name: their `data` (base64 values), or the HTTP status a read of them gets. */
  readonly secrets: Map<string, Record<string, string> | number>;
  close(): Promise<void>;
}

/** Pods the stand-in does not have. */
const NOT_FOUND = new Set(['missing', 'nosuch', 'gone']);

const frame = (channel: number, data: Buffer | string) =>
  Buffer.concat([Buffer.from([channel]), typeof data === 'string' ? Buffer.from(data) : data]);

export async function startFakeExecUpstream(version: 4 | 5): Promise<FakeExecUpstream> {
  const ca = createCA({ commonName: 'fake-api' });
  const leaf = issueCertificate({ ca, commonName: 'api', ipAddresses: ['127.0.0.1'] });
  const sessions: SeenSession[] = [];
  const requests: string[] = [];
  const pods = new Map<string, string[]>();
  const podSpecs = new Map<string, object>();
  const secrets = new Map<string, Record<string, string> | number>();
  const speaks = version === 5 ? ['v5.channel.k8s.io', ...KUBELET_PROTOCOLS] : KUBELET_PROTOCOLS;
  const choose = (offered: Iterable<string>) => {
    for (const p of offered) if (speaks.includes(p)) return p;
    return undefined;
  };
  const wss = new WebSocketServer({
    noServer: true,
    handleProtocols: (offered) => choose(offered) ?? false,
  });

  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    requests.push(`${req.method} ${req.url}`);
    const secret = /^\/api\/v1\/namespaces\/[^/]+\/secrets\/([^/?]+)$/.exec(req.url ?? '');
    if (secret) {
      const found = secrets.get(decodeURIComponent(secret[1] as string)) ?? 404;
      res.setHeader('content-type', 'application/json');
      res.statusCode = typeof found === 'number' ? found : 200;
      res.end(
        typeof found === 'number'
          ? JSON.stringify({
              kind: 'Status',
              status: 'Failure',
              code: found,
              message: `secret read: ${found}`,
            })
          : JSON.stringify({ kind: 'Secret', data: found }),
      );
      return;
    }
    const m = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/?]+)$/.exec(req.url ?? '');
    const name = m ? decodeURIComponent(m[2] as string) : '';
    const spec =
      podSpecs.get(name) ??
      (pods.has(name)
        ? { containers: (pods.get(name) as string[]).map((c) => ({ name: c })) }
        : m && !NOT_FOUND.has(name)
          ? { containers: [{ name: 'app' }, { name: 'chaperone-sidecar' }] }
          : undefined);
    res.setHeader('content-type', 'application/json');
    if (spec === undefined) {
      res.statusCode = 404;
      res.end(
        JSON.stringify({
          kind: 'Status',
          status: 'Failure',
          reason: 'NotFound',
          message: `pods "${name}" not found`,
          code: 404,
        }),
      );
      return;
    }
    res.end(JSON.stringify({ kind: 'Pod', spec }));
  };

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(req.url ?? '/', 'https://api');
    const pod = /\/pods\/([^/]+)\//.exec(url.pathname)?.[1];
    if (pod === 'missing') {
      const body = JSON.stringify({
        kind: 'Status',
        apiVersion: 'v1',
        status: 'Failure',
        message: 'pods "missing" not found',
        reason: 'NotFound',
        code: 404,
      });
      socket.end(
        `HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
      return;
    }
    const offered = String(req.headers['sec-websocket-protocol'] ?? '')
      .split(',')
      .map((s) => s.trim());
    if (choose(offered) === undefined) {
      // What a kubelet's golang.org/x/net/websocket handshake answers.
      socket.end('HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => run(ws, req, url));
  };

  const run = (ws: WebSocket, req: IncomingMessage, url: URL) => {
    const seen: SeenSession = { url, headers: req.headers, protocol: ws.protocol, received: [], sent: 0 };
    sessions.push(seen);
    const argv = url.searchParams.getAll('command');
    const finish = (status: string) => {
      ws.send(frame(3, status));
      ws.close(1000);
    };
    ws.on('close', (code) => {
      seen.closeCode = code;
    });
    ws.on('message', (data: Buffer, isBinary) => {
      const ch = isBinary ? (data[0] as number) : (data[0] as number) - 48;
      const payload = isBinary ? data.subarray(1) : Buffer.from(data.subarray(1).toString(), 'base64');
      seen.received.push([ch, Buffer.from(payload)]);
      // `cat` and `sh` (a shell that only echoes) return their input until it ends.
      if (argv[0] === 'cat' || argv[0] === 'sh' || url.pathname.endsWith('/attach')) {
        if (ch === 0) ws.send(frame(1, payload));
        if (ch === 255 && payload[0] === 0) finish(SUCCESS);
      }
      if (argv[0] === 'sizes') {
        if (ch === 4) {
          const s = JSON.parse(payload.toString()) as { Width: number; Height: number };
          ws.send(frame(1, `size ${s.Width}x${s.Height}\n`));
        }
        if (ch === 0 && payload.includes('q')) finish(SUCCESS);
      }
    });
    // A kubelet announces the streams with an empty message on the first output channel.
    ws.send(frame(1, Buffer.alloc(0)));
    switch (argv[0]) {
      case 'echo':
        ws.send(frame(1, `${argv.slice(1).join(' ')}\n`));
        finish(SUCCESS);
        break;
      case 'warn':
        ws.send(frame(2, `${argv.slice(1).join(' ')}\n`));
        finish(SUCCESS);
        break;
      case 'exit':
        finish(exitStatus(Number(argv[1])));
        break;
      case 'late': {
        // `late <ms>`: prints a line, then takes <ms> to exit; meanwhile it reads nothing (a close from
        // the other end waits), so its status is already on the way when the close comes.
        ws.send(frame(1, 'done\n'));
        const socket = (ws as unknown as { _socket: import('node:net').Socket })._socket;
        socket.pause();
        setTimeout(() => {
          ws.send(frame(3, SUCCESS));
          socket.resume();
        }, Number(argv[1]));
        break;
      }
      case 'flood': {
        // Writes `argv[1]` bytes as fast as its socket takes them (never more than 1 MiB waiting), then succeeds.
        const total = Number(argv[1]);
        const chunk = frame(1, Buffer.alloc(64 * 1024, 0x61));
        const pump = () => {
          while (seen.sent < total) {
            if (ws.bufferedAmount > 1 << 20) {
              setTimeout(pump, 5);
              return;
            }
            ws.send(chunk);
            seen.sent += chunk.length - 1;
          }
          finish(SUCCESS);
        };
        pump();
        break;
      }
      case 'cat':
      case 'sh':
      case 'sizes':
      case undefined:
        break;
      default:
        finish(
          JSON.stringify({
            metadata: {},
            status: 'Failure',
            message: `executable file not found: ${argv[0]}`,
            reason: 'InternalError',
          }),
        );
    }
  };

  const server: Server = createServer({ cert: leaf.cert, key: leaf.key }, onRequest);
  server.on('upgrade', onUpgrade);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    ca: ca.cert,
    sessions,
    requests,
    pods,
    podSpecs,
    secrets,
    close: async () => {
      for (const c of wss.clients) c.terminate();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}
