/**
 * Port forwarding as a 1.20 kubelet does it
 * (pkg/kubelet/cri/streaming/portforward, httpstream.go and websocket.go),
 * with this machine as the pod's network: a forwarded connection goes to
 * 127.0.0.1:<port>.
 *
 * SPDY (`portforward.k8s.io`): for each connection the client opens an error
 * stream and a data stream with headers `streamType`, `port` and `requestID`
 * (a missing requestID is derived from the stream id: the error stream's id,
 * the data stream's id − 2). A stream without a valid port or type is refused.
 * When both streams of a request are there the port is dialled; a dial failure
 * is written on the error stream. When only one arrives, the error stream gets
 * "timed out waiting for streams" after 30 s. At the end both streams are
 * closed.
 *
 * WebSocket (v4.channel.k8s.io, `port=` query parameters): two channels per
 * port, data (2i) and error (2i+1), each starting with the port as 2 bytes
 * little-endian; one connection per port, dialled at once; the WebSocket
 * closes when every forwarded connection has ended.
 *
 * Unlike the runtimes of that era, which tear the connection down as soon as
 * one direction ends, a half-close is passed on (FIN ↔ TCP end) and the
 * forward ends when both directions have.
 */
import type { IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { SpdyServerConnection, type SpdySessionOptions, type SpdyStream } from './spdy-connection.ts';
import { STREAM_CREATION_TIMEOUT_MS } from './spdy-remote-command.ts';
import { ServerWebSocket } from './websocket-server.ts';
import { decodeChannelMessage, encodeChannelMessage, isBase64Protocol } from './ws-channels.ts';

export interface ForwardTarget {
  readonly namespace: string;
  readonly pod: string;
  /** Called for every forwarded connection, for the request log. */
  onForward?(port: number): void;
}

function forwardError(port: number, target: ForwardTarget, err: NodeJS.ErrnoException): string {
  const why = err.code === 'ECONNREFUSED' ? 'connect: connection refused' : err.message;
  return `error forwarding port ${port} to pod ${target.namespace}/${target.pod}, uid : failed to dial ${port}: dial tcp4 127.0.0.1:${port}: ${why}`;
}

/** `port=` query values as NewV4Options reads them: comma-separated allowed, each 1–65535. */
export function parsePortParams(query: URLSearchParams): number[] | string {
  const values = query.getAll('port');
  if (values.length === 0) return 'query parameter "port" is required';
  const ports: number[] = [];
  for (const v of values) {
    if (v === '') return 'query parameter "port" cannot be empty';
    for (const p of v.split(',')) {
      if (!/^\d+$/.test(p) || Number(p) > 65535) return `unable to parse "${v}" as a port`;
      if (Number(p) < 1) return `port "${v}" must be > 0`;
      ports.push(Number(p));
    }
  }
  return ports;
}

/**
 * Pipes one TCP connection to a byte channel. With `halfClose` each direction
 * ends on its own and the forward is done when both have; without it (a
 * WebSocket channel cannot half-close) the TCP end finishes it.
 */
function pipeTcp(
  port: number,
  io: { write(d: Buffer): boolean; end(): void; onDrain(cb: () => void): void; halfClose: boolean },
  target: ForwardTarget,
  onError: (message: string) => void,
  onDone: () => void,
): { data(d: Buffer): void; end(): void; abort(): void } {
  const tcp: Socket = connect({ host: '127.0.0.1', port });
  let clientEnded = false;
  let tcpEnded = false;
  let done = false;
  const finish = () => {
    if (done) return;
    done = true;
    tcp.destroy();
    onDone();
  };
  target.onForward?.(port);
  tcp.on('data', (d: Buffer) => {
    if (!io.write(d)) {
      tcp.pause();
      io.onDrain(() => tcp.resume());
    }
  });
  tcp.on('end', () => {
    tcpEnded = true;
    io.end();
    if (clientEnded || !io.halfClose) finish();
  });
  tcp.on('error', (err) => {
    if (!done) onError(forwardError(port, target, err));
    finish();
  });
  tcp.on('close', finish);
  return {
    data: (d) => {
      if (!tcp.destroyed) tcp.write(d);
    },
    end: () => {
      clientEnded = true;
      if (!tcp.destroyed) tcp.end();
      if (tcpEnded) finish();
    },
    abort: finish,
  };
}

/** Runs a SPDY port-forward session on an upgraded socket. */
export function serveSpdyPortForward(
  socket: Duplex,
  head: Buffer,
  target: ForwardTarget,
  session: SpdySessionOptions,
): SpdyServerConnection {
  const pairs = new Map<string, { error?: SpdyStream; data?: SpdyStream; timer: NodeJS.Timeout }>();
  const conn = new SpdyServerConnection(socket, head, {
    ...session,
    onStream: (stream) => {
      const portText = stream.header('port');
      if (!portText) return '"port" header is required';
      if (!/^\d+$/.test(portText) || Number(portText) > 65535)
        return `unable to parse "${portText}" as a port`;
      if (Number(portText) < 1) return `port "${portText}" must be > 0`;
      const type = stream.header('streamtype');
      if (!type) return '"streamType" header is required';
      if (type !== 'error' && type !== 'data') return `invalid stream type "${type}"`;
      const requestId = stream.header('requestid') ?? String(type === 'error' ? stream.id : stream.id - 2);
      let pair = pairs.get(requestId);
      if (!pair) {
        const timer = setTimeout(() => {
          pairs.delete(requestId);
          pair?.error?.write(Buffer.from(`(conn, request=${requestId}) timed out waiting for streams`));
        }, STREAM_CREATION_TIMEOUT_MS);
        timer.unref();
        pair = { timer };
        pairs.set(requestId, pair);
      }
      if (pair[type]) {
        pair.error?.write(
          Buffer.from(`error processing stream for request ${requestId}: ${type} stream already assigned`),
        );
        return undefined;
      }
      pair[type] = stream;
      const { error, data } = pair;
      if (error && data) {
        clearTimeout(pair.timer);
        pairs.delete(requestId);
        queueMicrotask(() => forwardPair(Number(data.header('port')), error, data));
      }
      return undefined;
    },
  });

  const forwardPair = (port: number, error: SpdyStream, data: SpdyStream) => {
    const done = () => {
      data.end();
      error.end();
    };
    const tcp = pipeTcp(
      port,
      {
        write: (d) => data.write(d),
        end: () => data.end(),
        onDrain: (cb) => conn.onDrain(cb),
        halfClose: true,
      },
      target,
      (message) => error.write(Buffer.from(message)),
      done,
    );
    data.onData = (d) => tcp.data(d);
    data.onEnd = () => tcp.end();
    data.onReset = () => tcp.abort();
  };
  return conn;
}

/** Runs a WebSocket port-forward session (v4.channel.k8s.io or the base64 variant). */
export function serveWebSocketPortForward(
  socket: Duplex,
  req: IncomingMessage,
  head: Buffer,
  protocol: string,
  ports: readonly number[],
  target: ForwardTarget,
): void {
  const base64 = isBase64Protocol(protocol);
  const forwards: ReturnType<typeof pipeTcp>[] = [];
  let open = ports.length;
  const ws: ServerWebSocket = new ServerWebSocket(socket, req, head, protocol, {
    maxMessageBytes: 32 << 20,
    onMessage: (m) => {
      const msg = decodeChannelMessage(m.data, base64);
      if (!msg || msg.channel % 2 !== 0) return;
      forwards[msg.channel / 2]?.data(msg.data);
    },
    onClose: () => {
      for (const f of forwards) f.abort();
    },
  });
  ports.forEach((port, i) => {
    const portBytes = Buffer.alloc(2);
    portBytes.writeUInt16LE(port);
    ws.send(encodeChannelMessage(2 * i, portBytes, base64));
    ws.send(encodeChannelMessage(2 * i + 1, portBytes, base64));
    forwards.push(
      pipeTcp(
        port,
        {
          write: (d) => ws.send(encodeChannelMessage(2 * i, d, base64)),
          end: () => {},
          halfClose: false,
          onDrain: (cb) => (ws.socket.writableNeedDrain ? ws.socket.once('drain', cb) : queueMicrotask(cb)),
        },
        target,
        (message) => ws.send(encodeChannelMessage(2 * i + 1, Buffer.from(message), base64)),
        () => {
          if (--open === 0) ws.close();
        },
      ),
    );
  });
}
