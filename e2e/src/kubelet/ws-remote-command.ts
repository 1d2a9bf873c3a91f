/**
 * exec/attach over WebSocket, as the kubelet's createWebSocketStreams does it
 * (pkg/kubelet/cri/streaming/remotecommand/websocket.go, v1.20): after the
 * handshake an empty message on the lowest writable channel (stdout, else
 * stderr, else the error channel) tells the client the session is up; stdin
 * arrives on channel 0, resize events on channel 4; output goes out on 1 and 2;
 * at the end the Status on channel 3 (JSON for v4, text for older protocols),
 * then a close frame. There is no way for the client to end stdin except by
 * closing the connection: v4 has no half-close (v5's channel 255 is a
 * channel this kubelet does not have, so such messages are ignored).
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import {
  ClientEventQueue,
  type ClientEvents,
  type RemoteCommandTransport,
  ResizeDecoder,
  type StreamOptions,
} from './remote-command.ts';
import { type ExecStatus, statusJson, statusText } from './status.ts';
import { ServerWebSocket } from './websocket-server.ts';
import { decodeChannelMessage, encodeChannelMessage, isBase64Protocol, isV4Protocol } from './ws-channels.ts';

/** x/net/websocket's default limit on a received message. */
const MAX_MESSAGE_BYTES = 32 << 20;
const STDIN = 0;
const STDOUT = 1;
const STDERR = 2;
const ERROR = 3;
const RESIZE = 4;

export class WebSocketRemoteCommand implements RemoteCommandTransport {
  readonly options: StreamOptions;
  readonly #ws: ServerWebSocket;
  readonly #base64: boolean;
  readonly #v4: boolean;
  readonly #resize = new ResizeDecoder();
  readonly #events = new ClientEventQueue();
  #finished = false;

  constructor(socket: Duplex, req: IncomingMessage, head: Buffer, protocol: string, options: StreamOptions) {
    this.options = options;
    this.#base64 = isBase64Protocol(protocol);
    this.#v4 = isV4Protocol(protocol);
    this.#ws = new ServerWebSocket(socket, req, head, protocol, {
      maxMessageBytes: MAX_MESSAGE_BYTES,
      onMessage: (m) => this.#message(m.data),
      onClose: () => {
        if (!this.#finished) this.#events.disconnected();
      },
    });
    const first = options.stdout ? STDOUT : options.stderr ? STDERR : ERROR;
    this.#send(first, Buffer.alloc(0));
  }

  listen(events: ClientEvents): void {
    this.#events.listen(events);
  }

  writeStdout(data: Buffer): boolean {
    return this.options.stdout ? this.#send(STDOUT, data) : true;
  }

  writeStderr(data: Buffer): boolean {
    return this.options.stderr ? this.#send(STDERR, data) : true;
  }

  onDrain(callback: () => void): void {
    if (this.#ws.closed) callback();
    else this.#ws.socket.once('drain', callback);
  }

  finish(status: ExecStatus): void {
    if (this.#finished) return;
    this.#finished = true;
    const payload = this.#v4 ? statusJson(status) : statusText(status);
    if (payload !== undefined) this.#send(ERROR, Buffer.from(payload));
    this.#ws.close();
  }

  #send(channel: number, data: Buffer): boolean {
    return this.#ws.send(encodeChannelMessage(channel, data, this.#base64));
  }

  #message(message: Buffer): void {
    const m = decodeChannelMessage(message, this.#base64);
    if (!m) return;
    if (m.channel === STDIN && this.options.stdin) this.#events.stdin(m.data);
    else if (m.channel === RESIZE) for (const size of this.#resize.push(m.data)) this.#events.resize(size);
  }
}
