/**
 * exec/attach over SPDY, as the kubelet's createHTTPStreamStreams does it
 * (pkg/kubelet/cri/streaming/remotecommand/httpstream.go, v1.20): the client
 * opens one stream per channel, named by the `streamType` header (error,
 * stdin, stdout, stderr, resize); the session starts once every expected
 * stream has been answered — error + each requested stdio stream + resize
 * when there is a TTY and the version has resizing (v3, v4) — or fails after
 * 30 s. Streams of other types are accepted but not counted.
 *
 * stdin ends when the client half-closes its stream (FIN) — SPDY can, unlike
 * WebSocket v4. The Status goes on the error stream: JSON for v4, the error
 * text for v1–v3. Then every stream still open is reset and the session closed.
 * v1 (channel.k8s.io) keeps the 1.0 kubelet's quirks: the stdin stream's
 * server side is closed at once and the error stream is reset as soon as the
 * streams are set up, so a v1 client never sees an error.
 */
import type { Duplex } from 'node:stream';
import {
  ClientEventQueue,
  type ClientEvents,
  type RemoteCommandTransport,
  ResizeDecoder,
  type StreamOptions,
} from './remote-command.ts';
import { SpdyServerConnection, type SpdySessionOptions, type SpdyStream } from './spdy-connection.ts';
import { type ExecStatus, statusJson, statusText } from './status.ts';

/** remotecommand.DefaultStreamCreationTimeout. */
export const STREAM_CREATION_TIMEOUT_MS = 30_000;

const STREAM_TYPES = ['error', 'stdin', 'stdout', 'stderr', 'resize'] as const;
type StreamType = (typeof STREAM_TYPES)[number];

export class SpdyRemoteCommand implements RemoteCommandTransport {
  readonly options: StreamOptions;
  readonly protocol: string;
  readonly #conn: SpdyServerConnection;
  readonly #streams: Partial<Record<StreamType, SpdyStream>>;
  readonly #events: ClientEventQueue;
  #finished = false;

  private constructor(
    conn: SpdyServerConnection,
    streams: Partial<Record<StreamType, SpdyStream>>,
    events: ClientEventQueue,
    protocol: string,
    options: StreamOptions,
  ) {
    this.#conn = conn;
    this.#streams = streams;
    this.#events = events;
    this.protocol = protocol;
    this.options = options;
  }

  /**
   * Runs the SPDY session on an upgraded socket and resolves once the client
   * has opened every stream the session needs; rejects (and closes) when it
   * does not within the stream-creation timeout, or leaves.
   */
  static open(
    socket: Duplex,
    head: Buffer,
    protocol: string,
    options: StreamOptions,
    session: SpdySessionOptions,
  ): Promise<SpdyRemoteCommand> {
    const resizes = protocol === 'v3.channel.k8s.io' || protocol === 'v4.channel.k8s.io';
    const expected =
      1 +
      Number(options.stdin) +
      Number(options.stdout) +
      Number(options.stderr) +
      Number(options.tty && resizes);
    const streams: Partial<Record<StreamType, SpdyStream>> = {};
    const events = new ClientEventQueue();
    const resize = new ResizeDecoder();
    let counted = 0;
    let settled = false;
    let opened: SpdyRemoteCommand | undefined;
    return new Promise((resolve, reject) => {
      const fail = (why: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        conn.close();
        reject(new Error(why));
      };
      const timer = setTimeout(
        () => fail('timed out waiting for client to create streams'),
        STREAM_CREATION_TIMEOUT_MS,
      );
      timer.unref();
      const conn = new SpdyServerConnection(socket, head, {
        ...session,
        onStream: (stream) => {
          const type = stream.header('streamtype') as StreamType | undefined;
          if (!type || !STREAM_TYPES.includes(type)) return undefined;
          streams[type] = stream;
          if (type === 'stdin') {
            stream.onData = (d) => events.stdin(d);
            // A reset ends the kubelet's read of stdin as a FIN does.
            stream.onEnd = () => events.stdinEnd();
            stream.onReset = () => events.stdinEnd();
          } else if (type === 'resize') {
            stream.onData = (d) => {
              for (const size of resize.push(d)) events.resize(size);
            };
          }
          // Counted once the SYN_REPLY is out, which the connection sends right after this returns.
          queueMicrotask(() => {
            if (settled || ++counted < expected) return;
            settled = true;
            clearTimeout(timer);
            opened = new SpdyRemoteCommand(conn, streams, events, protocol, options);
            if (protocol === 'channel.k8s.io') {
              streams.stdin?.end();
              streams.error?.reset();
            }
            resolve(opened);
          });
          return undefined;
        },
        onClose: () => {
          if (!settled) fail('the client left before creating its streams');
          else if (opened && !opened.#finished) events.disconnected();
        },
      });
    });
  }

  listen(events: ClientEvents): void {
    this.#events.listen(events);
  }

  writeStdout(data: Buffer): boolean {
    return this.options.stdout && this.#streams.stdout ? this.#streams.stdout.write(data) : true;
  }

  writeStderr(data: Buffer): boolean {
    return this.options.stderr && this.#streams.stderr ? this.#streams.stderr.write(data) : true;
  }

  onDrain(callback: () => void): void {
    this.#conn.onDrain(callback);
  }

  finish(status: ExecStatus): void {
    if (this.#finished) return;
    this.#finished = true;
    const payload = this.protocol === 'v4.channel.k8s.io' ? statusJson(status) : statusText(status);
    if (payload !== undefined) this.#streams.error?.write(Buffer.from(payload));
    this.#conn.close();
  }
}
