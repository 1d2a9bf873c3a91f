/**
 * A stand-in for the kubelet, for end-to-end tests and benchmarks on a control
 * plane that has no kubelet. It is a test double: an HTTPS server on
 * 127.0.0.1 (self-signed certificate) that a Node object points the API server
 * at (see kubelet/node.ts), answering the kubelet endpoints the API server
 * proxies to, the way a v1.20 kubelet (with its CRI streaming server) answers
 * them — checked against pkg/kubelet/server/server.go and
 * pkg/kubelet/cri/streaming of Kubernetes v1.20.2:
 *
 * - `/exec/{ns}/{pod}/{container}?command=…&input=1&output=1&error=1&tty=1`
 *   (and `/exec/{ns}/{pod}/{uid}/{container}`): runs argv as a local process
 *   in the container's scratch directory; a pseudo-terminal (python3 pty) for
 *   tty=1, with resize events applied to it.
 * - `/attach/{ns}/{pod}/{container}`: attaches to the container's main
 *   process, which the test starts (`container(…).run(argv)`).
 * - `/portForward/{ns}/{pod}`: forwards to 127.0.0.1:<port> (this machine is
 *   the pod's network).
 * - `/containerLogs/{ns}/{pod}/{container}`: the container log the test
 *   appends to (and the main process writes), with follow, tail, timestamps,
 *   since and limitBytes.
 * - Upgrades: WebSocket with channel.k8s.io, base64.channel.k8s.io,
 *   v4.channel.k8s.io, v4.base64.channel.k8s.io for exec/attach ("", v4 and
 *   v4.base64 for port-forward). Not v2/v3, which a 1.20 kubelet speaks over
 *   SPDY only, and not v5: an offer with nothing it knows gets 403 Forbidden,
 *   as from a 1.20 kubelet, so kubectl 1.32 falls back to SPDY. SPDY/3.1 with
 *   X-Stream-Protocol-Version v4, v3, v2, channel.k8s.io (exec/attach) and
 *   portforward.k8s.io. A request that is not an upgrade gets the kubelet's
 *   500 "Upgrade request required".
 * - `requests`: every request as it arrived (path, query, offer, the protocol
 *   chosen, the status answered, resizes, the Status sent, forwarded ports),
 *   so a test can check what the API server (or a proxy before it) sent.
 *
 * Not implemented: authentication and authorisation of the caller (a kubelet
 * checks the API server's client certificate and asks for SubjectAccessReview;
 * the stand-in accepts anyone who reaches it, recording the certificate's
 * subject when one is presented), pods it was not told about (any namespace/pod
 * is accepted; the API server has already checked the pod and container),
 * container isolation (commands run as this user on this machine), `/run`,
 * `/pods`, `/stats`, `/metrics` and the other endpoints, previous container
 * logs, and the idle timeout of streams (the whole server has a lifetime cap
 * instead). Knowingly different: the 101 for a WebSocket without a
 * subprotocol carries no empty Sec-WebSocket-Protocol header; log responses
 * start before the first line; a port-forward passes half-closes on instead
 * of ending at the first one (see kubelet/port-forward.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { createCA, issueCertificate } from '@chaperone/shared/tls';
import {
  type ContainerCommand,
  startContainerCommand,
  type TerminalSize,
} from './kubelet/container-command.ts';
import { parseLogOptions, serveContainerLogs } from './kubelet/container-logs.ts';
import { ContainerState } from './kubelet/containers.ts';
import { parsePortParams, serveSpdyPortForward, serveWebSocketPortForward } from './kubelet/port-forward.ts';
import {
  type RemoteCommandTransport,
  runAttach,
  runExec,
  type StreamOptions,
  streamOptions,
} from './kubelet/remote-command.ts';
import type { SpdyFlowControl, SpdySessionOptions } from './kubelet/spdy-connection.ts';
import { SpdyRemoteCommand } from './kubelet/spdy-remote-command.ts';
import {
  acceptSpdyUpgrade,
  goHttpError,
  type HttpAnswer,
  offeredStreamProtocols,
  PORT_FORWARD_SPDY_PROTOCOLS,
  REMOTE_COMMAND_SPDY_PROTOCOLS,
  spdyHandshake,
} from './kubelet/spdy-upgrade.ts';
import type { ExecStatus } from './kubelet/status.ts';
import { handshakeProblem, isWebSocketRequest, offeredSubprotocols } from './kubelet/websocket-server.ts';
import {
  EXEC_WEBSOCKET_PROTOCOLS,
  negotiateWebSocketProtocol,
  PORT_FORWARD_WEBSOCKET_PROTOCOLS,
} from './kubelet/ws-channels.ts';
import { WebSocketRemoteCommand } from './kubelet/ws-remote-command.ts';

export type { ContainerState } from './kubelet/containers.ts';

export interface KubeletStandinOptions {
  /** The server stops itself (and everything it started) after this long; default 10 minutes. */
  readonly lifetimeMs?: number;
  /** Extra environment for the commands it runs (PATH and LANG come from this process). */
  readonly env?: Readonly<Record<string, string>>;
  /** SPDY flow control: 'none' as a kubelet (default), or 'spdy/3.1' to play a strict peer. */
  readonly spdyFlowControl?: SpdyFlowControl;
  /** Progress and problems, one line each. */
  readonly log?: (line: string) => void;
}

export type StandinRequestKind = 'exec' | 'attach' | 'portForward' | 'containerLogs' | 'other';

/** One request as it arrived and how it was answered, for tests to check what the API server sent. */
export interface StandinRequest {
  readonly at: Date;
  readonly method: string;
  /** The path and query exactly as received. */
  readonly url: string;
  readonly kind: StandinRequestKind;
  readonly namespace?: string;
  readonly pod?: string;
  readonly container?: string;
  readonly query: URLSearchParams;
  readonly transport: 'websocket' | 'spdy' | 'http';
  /** Offered subprotocols (WebSocket) or X-Stream-Protocol-Version values (SPDY). */
  readonly offered: readonly string[];
  /** What was chosen, once upgraded. */
  protocol?: string;
  /** The status answered (101 for an upgrade). */
  status?: number;
  /** Subject of the client certificate, when the caller presented one. */
  readonly clientCertificate?: string;
  /** Ports connected to (port-forward). */
  readonly forwardedPorts: number[];
  /** Terminal sizes the client sent (exec/attach), in order. */
  readonly resizes: TerminalSize[];
  /** The Status the session ended with (exec/attach), once it has. */
  result?: ExecStatus;
}

export interface KubeletStandin {
  readonly port: number;
  /** https://127.0.0.1:<port> */
  readonly url: string;
  /** PEM of the CA that signed its serving certificate. */
  readonly caCert: string;
  /** Every request so far, in order of arrival. */
  readonly requests: readonly StandinRequest[];
  /** The state of one container (created on first use): scratch dir, log, main process. */
  container(namespace: string, pod: string, container: string): ContainerState;
  stop(): Promise<void>;
}

const live = new Set<ContainerCommand>();
let exitHookInstalled = false;

/** Commands run in their own process group; if this process exits first they go with it. */
function track(command: ContainerCommand): void {
  live.add(command);
  void command.ended.then(() => live.delete(command));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
}

interface Route {
  readonly kind: StandinRequestKind;
  readonly namespace?: string;
  readonly pod?: string;
  readonly container?: string;
}

/** The kubelet's routes: exec/attach with 3 or 4 parameters (uid optional), portForward 2 or 3, containerLogs 3. */
export function routeOf(pathname: string): Route {
  const parts = pathname.split('/').slice(1);
  let segments: string[];
  try {
    segments = parts.map(decodeURIComponent);
  } catch {
    return { kind: 'other' };
  }
  const [head, namespace, pod] = segments;
  const n = segments.length;
  if ((head === 'exec' || head === 'attach') && (n === 4 || n === 5)) {
    return { kind: head, namespace, pod, container: segments[n - 1] };
  }
  if (head === 'portForward' && (n === 3 || n === 4)) return { kind: 'portForward', namespace, pod };
  if (head === 'containerLogs' && n === 4)
    return { kind: 'containerLogs', namespace, pod, container: segments[3] };
  return { kind: 'other' };
}

/** The transport, with what the session receives and answers noted in the request log. */
function observed(t: RemoteCommandTransport, entry: StandinRequest): RemoteCommandTransport {
  return {
    options: t.options,
    listen: (events) =>
      t.listen({
        ...events,
        resize: (size) => {
          entry.resizes.push(size);
          events.resize(size);
        },
      }),
    writeStdout: (d) => t.writeStdout(d),
    writeStderr: (d) => t.writeStderr(d),
    onDrain: (cb) => t.onDrain(cb),
    finish: (status) => {
      entry.result = status;
      t.finish(status);
    },
  };
}

function writeRaw(socket: Duplex, answer: HttpAnswer): void {
  const reason: Record<number, string> = {
    400: 'Bad Request',
    403: 'Forbidden',
    404: 'Not Found',
    405: 'Method Not Allowed',
    500: 'Internal Server Error',
  };
  const body = Buffer.from(answer.body);
  const lines = [
    `HTTP/1.1 ${answer.status} ${reason[answer.status] ?? ''}`,
    ...answer.headers.map(([k, v]) => `${k}: ${v}`),
    'Connection: close',
    `Content-Length: ${body.length}`,
    '',
    '',
  ];
  socket.end(Buffer.concat([Buffer.from(lines.join('\r\n')), body]));
}

export async function startKubeletStandin(opts: KubeletStandinOptions = {}): Promise<KubeletStandin> {
  const log = opts.log ?? (() => {});
  const spdy: SpdySessionOptions = {
    flowControl: opts.spdyFlowControl ?? 'none',
    onError: (err) => log(`SPDY session ended early: ${err.message}`),
  };
  const root = mkdtempSync(join(tmpdir(), 'chaperone-kubelet-'));
  const ca = createCA({ commonName: 'chaperone-standin-kubelet-ca' });
  const serving = issueCertificate({
    ca,
    commonName: 'standin-kubelet',
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1'],
  });
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    LANG: process.env.LANG ?? 'C.UTF-8',
    ...opts.env,
  };
  const containers = new Map<string, ContainerState>();
  const requests: StandinRequest[] = [];
  const sockets = new Set<Socket>();
  const commands = new Set<ContainerCommand>();
  const trackHere = (c: ContainerCommand) => {
    commands.add(c);
    track(c);
    void c.ended.then(() => commands.delete(c));
  };
  const container = (namespace: string, pod: string, name: string): ContainerState => {
    const key = `${namespace}/${pod}/${name}`;
    let c = containers.get(key);
    if (!c) {
      c = new ContainerState({ namespace, pod, container: name }, root, env, trackHere);
      containers.set(key, c);
    }
    return c;
  };

  const record = (
    req: IncomingMessage,
    route: Route,
    transport: StandinRequest['transport'],
  ): StandinRequest => {
    const url = new URL(req.url ?? '/', 'https://standin');
    const peer = (req.socket as TLSSocket).getPeerCertificate?.();
    const entry: StandinRequest = {
      at: new Date(),
      method: req.method ?? '',
      url: req.url ?? '',
      kind: route.kind,
      ...(route.namespace !== undefined ? { namespace: route.namespace } : {}),
      ...(route.pod !== undefined ? { pod: route.pod } : {}),
      ...(route.container !== undefined ? { container: route.container } : {}),
      query: url.searchParams,
      transport,
      offered:
        transport === 'websocket'
          ? offeredSubprotocols(req)
          : transport === 'spdy'
            ? offeredStreamProtocols(req)
            : [],
      forwardedPorts: [],
      resizes: [],
      ...(peer?.subject
        ? { clientCertificate: String(peer.subject.CN ?? JSON.stringify(peer.subject)) }
        : {}),
    };
    requests.push(entry);
    return entry;
  };

  /** Plain HTTP requests: logs, and the errors for everything else. */
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'https://standin');
    const route = routeOf(url.pathname);
    const entry = record(req, route, 'http');
    const answer = (a: HttpAnswer) => {
      entry.status = a.status;
      res.writeHead(a.status, Object.fromEntries(a.headers));
      res.end(a.body);
    };
    if (route.kind === 'other') {
      answer(goHttpError(404, '404 page not found'));
      return;
    }
    if (route.kind === 'containerLogs') {
      if (req.method !== 'GET') {
        answer(goHttpError(405, '405: Method Not Allowed'));
        return;
      }
      const options = parseLogOptions(url.searchParams);
      if ('status' in options) {
        answer({ status: options.status, headers: [], body: options.body });
        return;
      }
      entry.status = 200;
      serveContainerLogs(req, res, container(route.namespace!, route.pod!, route.container!), options);
      return;
    }
    const problem = checkStreamingRequest(req, route, url.searchParams);
    answer(problem ?? goHttpError(500, 'Upgrade request required'));
  };

  /** Upgrades: exec, attach, port-forward. */
  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => {});
    const url = new URL(req.url ?? '/', 'https://standin');
    const route = routeOf(url.pathname);
    const ws = isWebSocketRequest(req);
    const entry = record(req, route, ws ? 'websocket' : 'spdy');
    const refuse = (a: HttpAnswer) => {
      entry.status = a.status;
      writeRaw(socket, a);
    };
    if (route.kind === 'other' || route.kind === 'containerLogs') {
      refuse(
        route.kind === 'other'
          ? goHttpError(404, '404 page not found')
          : goHttpError(500, 'not an upgrade endpoint'),
      );
      return;
    }
    const problem = checkStreamingRequest(req, route, url.searchParams);
    if (problem) {
      refuse(problem);
      return;
    }
    const target = {
      namespace: route.namespace!,
      pod: route.pod!,
      onForward: (port: number) => entry.forwardedPorts.push(port),
    };
    if (ws) {
      const bad = handshakeProblem(req);
      if (bad) {
        refuse({ status: bad.status, headers: [], body: bad.text });
        return;
      }
      const supported =
        route.kind === 'portForward' ? PORT_FORWARD_WEBSOCKET_PROTOCOLS : EXEC_WEBSOCKET_PROTOCOLS;
      const protocol = negotiateWebSocketProtocol(offeredSubprotocols(req), supported);
      if (protocol === undefined) {
        // x/net/websocket's answer to a failed handshake, as the kubelet's proxy passes it on.
        refuse({ status: 403, headers: [], body: '' });
        return;
      }
      entry.status = 101;
      entry.protocol = protocol;
      if (route.kind === 'portForward') {
        serveWebSocketPortForward(
          socket,
          req,
          head,
          protocol,
          parsePortParams(url.searchParams) as number[],
          target,
        );
        return;
      }
      const options = streamOptions(url.searchParams) as StreamOptions;
      void runSession(
        observed(new WebSocketRemoteCommand(socket, req, head, protocol, options), entry),
        route,
        url.searchParams,
      );
      return;
    }
    const supported =
      route.kind === 'portForward' ? PORT_FORWARD_SPDY_PROTOCOLS : REMOTE_COMMAND_SPDY_PROTOCOLS;
    const handshake = spdyHandshake(req, supported);
    if ('answer' in handshake) {
      refuse(handshake.answer);
      return;
    }
    entry.status = 101;
    entry.protocol = handshake.protocol;
    acceptSpdyUpgrade(socket, handshake.protocol);
    if (route.kind === 'portForward') {
      serveSpdyPortForward(socket, head, target, spdy);
      return;
    }
    const options = streamOptions(url.searchParams) as StreamOptions;
    SpdyRemoteCommand.open(socket, head, handshake.protocol, options, spdy).then(
      (t) => runSession(observed(t, entry), route, url.searchParams),
      (err: Error) => log(`${route.kind} ${route.namespace}/${route.pod}: ${err.message}`),
    );
  };

  /** The checks the kubelet makes before it proxies to the streaming server. */
  const checkStreamingRequest = (
    req: IncomingMessage,
    route: Route,
    query: URLSearchParams,
  ): HttpAnswer | undefined => {
    if (req.method !== 'GET' && req.method !== 'POST') return goHttpError(405, '405: Method Not Allowed');
    if (route.kind === 'portForward') {
      if (!isWebSocketRequest(req)) return undefined;
      const ports = parsePortParams(query);
      return typeof ports === 'string' ? goHttpError(400, ports) : undefined;
    }
    const options = streamOptions(query);
    if ('error' in options) return goHttpError(400, options.error);
    if (route.kind === 'attach' && !container(route.namespace!, route.pod!, route.container!).running) {
      return goHttpError(
        500,
        `rpc error: code = Unknown desc = container "${route.container}" is not running`,
      );
    }
    return undefined;
  };

  const runSession = async (t: RemoteCommandTransport, route: Route, query: URLSearchParams) => {
    const c = container(route.namespace!, route.pod!, route.container!);
    if (route.kind === 'attach') {
      await runAttach(t, c);
      return;
    }
    const argv = query.getAll('command');
    const command = startContainerCommand({
      argv,
      cwd: c.workDir,
      env: c.env,
      tty: t.options.tty,
      stdin: t.options.stdin,
    });
    trackHere(command);
    await runExec(t, argv, command);
  };

  const server: Server = createServer(
    { key: serving.key, cert: serving.cert, requestCert: true, rejectUnauthorized: false },
    onRequest,
  );
  server.on('upgrade', onUpgrade);
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  server.on('tlsClientError', () => {});
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  log(`stand-in kubelet on https://127.0.0.1:${port} (scratch ${root})`);

  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      clearTimeout(lifetime);
      for (const c of commands) c.kill('SIGKILL');
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
      await Promise.all([...commands].map((c) => c.ended));
      rmSync(root, { recursive: true, force: true });
    })();
    return stopped;
  };
  const lifetime = setTimeout(
    () => {
      log(`stand-in kubelet on port ${port} reached its lifetime; stopping`);
      void stop();
    },
    opts.lifetimeMs ?? 10 * 60_000,
  );
  lifetime.unref();

  return {
    port,
    url: `https://127.0.0.1:${port}`,
    caCert: ca.cert,
    requests,
    container,
    stop,
  };
}
