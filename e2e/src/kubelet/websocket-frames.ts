/**
 * WebSocket framing (RFC 6455 §5) as the stand-in kubelet needs it: a pure,
 * incremental decoder of the frames a client sends (masked), and an encoder
 * for the frames a server sends (unmasked; a mask key can be given so tests
 * can play the client). Written for the test double on purpose rather than
 * taken from the product: a stand-in that shared the product's decoder would
 * share its mistakes.
 *
 * Byte layout: byte 0 = FIN(1) RSV1-3(3) opcode(4); byte 1 = MASK(1) length(7);
 * length 126 → a 16-bit length follows, 127 → a 64-bit one (top bit 0); then
 * the 4-byte masking key when MASK is set, then the payload, XORed with the key.
 * Control frames (close 8, ping 9, pong 10) carry at most 125 bytes and are
 * never fragmented, but may arrive between the fragments of a message.
 *
 * Bounds: nothing beyond one frame header (≤ 14 bytes) plus the message being
 * assembled is held, and a message is refused (1009) as soon as its header says
 * it would exceed `maxMessageBytes`.
 */
import { ByteQueue } from './byte-queue.ts';

export type WebSocketMessage =
  | { readonly type: 'text' | 'binary' | 'ping' | 'pong'; readonly data: Buffer }
  | { readonly type: 'close'; readonly code: number | undefined; readonly reason: string };

export const WS_OPCODE = { continuation: 0, text: 1, binary: 2, close: 8, ping: 9, pong: 10 } as const;

/** The client broke the protocol; the connection is closed with `closeCode`. */
export class WebSocketFrameError extends Error {
  readonly closeCode: 1002 | 1007 | 1009;
  constructor(closeCode: 1002 | 1007 | 1009, message: string) {
    super(message);
    this.name = 'WebSocketFrameError';
    this.closeCode = closeCode;
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function checkUtf8(data: Buffer, what: string): string {
  try {
    return utf8.decode(data);
  } catch {
    throw new WebSocketFrameError(1007, `${what} is not valid UTF-8`);
  }
}

function unmask(payload: Buffer, key: Buffer): Buffer {
  const out = Buffer.allocUnsafe(payload.length);
  for (let i = 0; i < payload.length; i++) out[i] = payload[i]! ^ key[i & 3]!;
  return out;
}

export class WebSocketDecoder {
  readonly #maxMessageBytes: number;
  readonly #queue = new ByteQueue();
  #fragments: Buffer[] = [];
  #fragmentBytes = 0;
  #fragmentType: 'text' | 'binary' | undefined;
  #failure: WebSocketFrameError | undefined;

  constructor(opts: { maxMessageBytes: number }) {
    this.#maxMessageBytes = opts.maxMessageBytes;
  }

  /** Feeds bytes; returns the messages they complete. Throws WebSocketFrameError (and keeps throwing it). */
  push(chunk: Buffer): WebSocketMessage[] {
    if (this.#failure) throw this.#failure;
    this.#queue.push(chunk);
    const out: WebSocketMessage[] = [];
    try {
      for (;;) {
        const message = this.#next();
        if (message === null) break;
        if (message) out.push(message);
      }
    } catch (err) {
      if (err instanceof WebSocketFrameError) this.#failure = err;
      throw err;
    }
    return out;
  }

  /** One frame: a message, undefined for a fragment that completes nothing, null when more bytes are needed. */
  #next(): WebSocketMessage | undefined | null {
    const q = this.#queue;
    if (q.length < 2) return null;
    const head = q.peek(2);
    const fin = (head[0]! & 0x80) !== 0;
    const opcode = head[0]! & 0x0f;
    if ((head[0]! & 0x70) !== 0)
      throw new WebSocketFrameError(1002, 'RSV bits set without a negotiated extension');
    if ((head[1]! & 0x80) === 0) throw new WebSocketFrameError(1002, 'a client frame is not masked');
    const len7 = head[1]! & 0x7f;
    const lengthBytes = len7 === 126 ? 2 : len7 === 127 ? 8 : 0;
    const headerBytes = 2 + lengthBytes + 4;
    if (q.length < 2 + lengthBytes) return null;
    let length = len7;
    if (lengthBytes === 2) length = q.peek(4).readUInt16BE(2);
    if (lengthBytes === 8) {
      const big = q.peek(10).readBigUInt64BE(2);
      if (big >> 63n) throw new WebSocketFrameError(1002, 'the 64-bit length has its top bit set');
      length = big > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(big);
    }
    const control = opcode >= 8;
    if (control) {
      if (opcode > WS_OPCODE.pong) throw new WebSocketFrameError(1002, `reserved opcode ${opcode}`);
      if (!fin) throw new WebSocketFrameError(1002, 'a control frame is fragmented');
      if (length > 125) throw new WebSocketFrameError(1002, 'a control frame carries more than 125 bytes');
    } else {
      if (opcode > WS_OPCODE.binary) throw new WebSocketFrameError(1002, `reserved opcode ${opcode}`);
      if (opcode === WS_OPCODE.continuation && !this.#fragmentType) {
        throw new WebSocketFrameError(1002, 'a continuation frame without a message to continue');
      }
      if (opcode !== WS_OPCODE.continuation && this.#fragmentType) {
        throw new WebSocketFrameError(1002, 'a new message started before the fragmented one ended');
      }
      if (this.#fragmentBytes + length > this.#maxMessageBytes) {
        throw new WebSocketFrameError(1009, `a message is larger than ${this.#maxMessageBytes} bytes`);
      }
    }
    if (q.length < headerBytes + length) return null;
    const key = q.peek(headerBytes).subarray(headerBytes - 4);
    q.skip(headerBytes);
    const payload = unmask(q.take(length), Buffer.from(key));

    if (control) {
      if (opcode === WS_OPCODE.ping) return { type: 'ping', data: payload };
      if (opcode === WS_OPCODE.pong) return { type: 'pong', data: payload };
      if (payload.length === 1) throw new WebSocketFrameError(1002, 'a close frame with a 1-byte payload');
      if (payload.length === 0) return { type: 'close', code: undefined, reason: '' };
      return {
        type: 'close',
        code: payload.readUInt16BE(0),
        reason: checkUtf8(payload.subarray(2), 'a close reason'),
      };
    }
    if (opcode !== WS_OPCODE.continuation) this.#fragmentType = opcode === WS_OPCODE.text ? 'text' : 'binary';
    this.#fragments.push(payload);
    this.#fragmentBytes += length;
    if (!fin) return undefined;
    const type = this.#fragmentType!;
    const data = this.#fragments.length === 1 ? payload : Buffer.concat(this.#fragments, this.#fragmentBytes);
    this.#fragments = [];
    this.#fragmentBytes = 0;
    this.#fragmentType = undefined;
    if (type === 'text') checkUtf8(data, 'a text message');
    return { type, data };
  }
}

/** One frame. Servers send unmasked frames; pass `mask` to write a client's. */
export function encodeWebSocketFrame(
  opcode: number,
  payload: Buffer,
  opts: { fin?: boolean; mask?: Buffer } = {},
): Buffer {
  const header = encodeWebSocketHeader(opcode, payload.length, opts);
  return Buffer.concat([header, opts.mask ? unmask(payload, opts.mask) : payload]);
}

/** The bytes before a frame's payload (with the masking key when `mask` is given). */
export function encodeWebSocketHeader(
  opcode: number,
  len: number,
  opts: { fin?: boolean; mask?: Buffer } = {},
): Buffer {
  const lengthBytes = len < 126 ? 0 : len < 0x10000 ? 2 : 8;
  const maskBytes = opts.mask ? 4 : 0;
  const header = Buffer.alloc(2 + lengthBytes + maskBytes);
  header[0] = ((opts.fin ?? true) ? 0x80 : 0) | opcode;
  header[1] = (opts.mask ? 0x80 : 0) | (lengthBytes === 0 ? len : lengthBytes === 2 ? 126 : 127);
  if (lengthBytes === 2) header.writeUInt16BE(len, 2);
  if (lengthBytes === 8) header.writeBigUInt64BE(BigInt(len), 2);
  opts.mask?.copy(header, 2 + lengthBytes, 0, 4);
  return header;
}
