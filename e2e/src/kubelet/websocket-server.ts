/**
 * The server side of a WebSocket connection, the way the kubelet's streaming
 * server (golang.org/x/net/websocket under k8s.io/apiserver's wsstream) runs
 * one: the opening handshake with a subprotocol chosen from the client's offer,
 * whole messages out, pings answered, and a close frame before the socket ends.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import {
  encodeWebSocketFrame,
  encodeWebSocketHeader,
  WebSocketDecoder,
  WebSocketFrameError,
  WS_OPCODE,
} from './websocket-frames.ts';

const ACCEPT_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 §4.2.2). */
export function webSocketAccept(key: string): string {
  return createHash('sha1')
    .update(key + ACCEPT_GUID)
    .digest('base64');
}

/** Whether the request asks for a WebSocket (wsstream.IsWebSocketRequest). */
export function isWebSocketRequest(req: IncomingMessage): boolean {
  return (
    (req.headers.upgrade ?? '').toLowerCase() === 'websocket' &&
    /(^|,)\s*upgrade\s*($|,)/.test((req.headers.connection ?? '').toLowerCase())
  );
}

/** The subprotocols offered, in the client's order (comma-separated, any number of header lines). */
export function offeredSubprotocols(req: IncomingMessage): string[] {
  const lines = req.headersDistinct['sec-websocket-protocol'] ?? [];
  return lines.flatMap((l) => l.split(',').map((p) => p.trim())).filter((p) => p !== '');
}

/**
 * Checks the handshake the way x/net/websocket does; returns the answer to send
 * when it is not acceptable.
 */
export function handshakeProblem(req: IncomingMessage): { status: number; text: string } | undefined {
  if (req.method !== 'GET') return { status: 405, text: 'bad method' };
  if (!req.headers['sec-websocket-key']) return { status: 400, text: 'mismatch challenge/response' };
  if (req.headers['sec-websocket-version'] !== '13') return { status: 400, text: 'bad protocol version' };
  return undefined;
}

export interface ServerWebSocketOptions {
  /** Largest message accepted from the client. */
  maxMessageBytes: number;
  onMessage(message: { binary: boolean; data: Buffer }): void;
  /** The connection is gone (close frame, socket end or protocol error). Called once. */
  onClose(): void;
}

export class ServerWebSocket {
  readonly #socket: Duplex;
  readonly #opts: ServerWebSocketOptions;
  readonly #decoder: WebSocketDecoder;
  #closed = false;

  /** Writes the 101 answer and starts reading. `head` is what followed the request headers. */
  constructor(
    socket: Duplex,
    req: IncomingMessage,
    head: Buffer,
    protocol: string,
    opts: ServerWebSocketOptions,
  ) {
    this.#socket = socket;
    this.#opts = opts;
    this.#decoder = new WebSocketDecoder({ maxMessageBytes: opts.maxMessageBytes });
    const lines = [
      'HTTP/1.1 101 Switching Protocols',
      'Upgrade: websocket',
      'Connection: Upgrade',
      `Sec-WebSocket-Accept: ${webSocketAccept(String(req.headers['sec-websocket-key']))}`,
    ];
    // x/net/websocket writes the header even for the empty protocol; no client accepts that, so leave it out.
    if (protocol !== '') lines.push(`Sec-WebSocket-Protocol: ${protocol}`);
    socket.write(`${lines.join('\r\n')}\r\n\r\n`);
    socket.on('data', (chunk: Buffer) => this.#receive(chunk));
    socket.on('end', () => this.#gone());
    socket.on('close', () => this.#gone());
    socket.on('error', () => this.#gone());
    if (head.length > 0) this.#receive(head);
  }

  get socket(): Duplex {
    return this.#socket;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Sends one message as a single frame: text for a string, binary for bytes
   * (given as parts, which are written as they are, not copied together).
   */
  send(data: string | Buffer | readonly Buffer[]): boolean {
    if (this.#closed) return false;
    if (typeof data === 'string')
      return this.#socket.write(encodeWebSocketFrame(WS_OPCODE.text, Buffer.from(data)));
    const parts = Buffer.isBuffer(data) ? [data] : data;
    const length = parts.reduce((n, p) => n + p.length, 0);
    this.#socket.cork();
    this.#socket.write(encodeWebSocketHeader(WS_OPCODE.binary, length));
    for (const p of parts) if (p.length > 0) this.#socket.write(p);
    this.#socket.uncork();
    return !this.#socket.writableNeedDrain;
  }

  /** Sends a close frame and ends the socket. */
  close(code = 1000, reason = ''): void {
    if (this.#closed) return;
    const payload = Buffer.alloc(2 + Buffer.byteLength(reason));
    payload.writeUInt16BE(code, 0);
    payload.write(reason, 2);
    this.#socket.write(encodeWebSocketFrame(WS_OPCODE.close, payload));
    this.#socket.end();
    this.#gone();
  }

  #receive(chunk: Buffer): void {
    if (this.#closed) return;
    let messages: ReturnType<WebSocketDecoder['push']>;
    try {
      messages = this.#decoder.push(chunk);
    } catch (err) {
      const code = err instanceof WebSocketFrameError ? err.closeCode : 1002;
      this.close(code, err instanceof Error ? err.message.slice(0, 100) : '');
      return;
    }
    for (const m of messages) {
      if (this.#closed) return;
      switch (m.type) {
        case 'ping':
          this.#socket.write(encodeWebSocketFrame(WS_OPCODE.pong, m.data));
          break;
        case 'pong':
          break;
        case 'close':
          this.close(m.code ?? 1000);
          break;
        default:
          try {
            this.#opts.onMessage({ binary: m.type === 'binary', data: m.data });
          } catch {
            this.close(1011, 'internal error');
          }
      }
    }
  }

  #gone(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (!this.#socket.writableEnded) this.#socket.end();
    this.#opts.onClose();
  }
}
