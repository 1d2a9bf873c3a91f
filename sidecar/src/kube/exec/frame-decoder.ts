/**
 * Incremental WebSocket frame decoder (RFC 6455 §5): bytes in, whole messages
 * out. Pure: no socket, no timers. Used on both sides of an exec session — as
 * a server for the agent's frames (which must be masked) and as a client for
 * the API server's (which must not be).
 *
 * Bounds: a partial frame header is at most 14 bytes; a message (the sum of
 * its fragments) at most `maxMessageBytes`; a control frame at most 125 bytes.
 * Nothing else is held. Unmasked payloads that arrive within one chunk are
 * handed out as subarrays of it (never copied); masked payloads are unmasked
 * into a new buffer (the input is never written to).
 *
 * Frame layout (§5.2):
 *
 *    0                   1                   2                   3
 *   +-+-+-+-+-------+-+-------------+-------------------------------+
 *   |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
 *   |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
 *   |N|V|V|V|       |S|             |   (if payload len==126/127)   |
 *   +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
 *   |  ... 64-bit length continued  |Masking-key, if MASK set to 1  |
 *   +-------------------------------+-------------------------------+
 *   |                          Payload Data                         |
 *
 * - RSV1-3 must be 0: no extension is ever negotiated.
 * - Opcodes: 0x0 continuation, 0x1 text, 0x2 binary, 0x8 close, 0x9 ping,
 *   0xA pong; the others are reserved (§5.2: "the receiving endpoint MUST
 *   _Fail the WebSocket Connection_").
 * - "All frames sent from client to server have this bit set to 1" (§5.1: a
 *   server MUST close on an unmasked frame); "A server MUST NOT mask any frames
 *   that it sends to the client" (a client MUST close on a masked one).
 * - Control frames: payload of 125 bytes or less, never fragmented (§5.5), and
 *   they may arrive between the fragments of a message (§5.4).
 * - 64-bit lengths: "the most significant bit MUST be 0".
 * - A close payload is empty or a 2-byte code and a UTF-8 reason (§5.5.1);
 *   codes 1005, 1006, 1015 and those under 1000 are never sent (§7.4.1).
 * - Text messages must be UTF-8 (§8.1: fail with 1007 otherwise).
 */
import { isUtf8 } from 'node:buffer';

export type WebSocketMessage =
  | { readonly type: 'text'; readonly data: Buffer }
  | { readonly type: 'binary'; readonly data: Buffer }
  | { readonly type: 'ping'; readonly data: Buffer }
  | { readonly type: 'pong'; readonly data: Buffer }
  /** `code` is absent when the close frame had no payload (§7.1.5: "no status code was received"). */
  | { readonly type: 'close'; readonly code?: number; readonly reason: string };

/** The peer broke the protocol: close with `closeCode` (§7.4.1) and drop the connection. */
export class WebSocketProtocolError extends Error {
  /** 1002 protocol error, 1007 invalid payload data, 1009 message too big. */
  readonly closeCode: 1002 | 1007 | 1009;
  constructor(closeCode: 1002 | 1007 | 1009, message: string) {
    super(message);
    this.name = 'WebSocketProtocolError';
    this.closeCode = closeCode;
  }
}

export interface FrameDecoderOptions {
  /** 'server' reads a client's frames (masked), 'client' a server's (unmasked). */
  readonly role: 'server' | 'client';
  /** Largest message, all fragments together. */
  readonly maxMessageBytes: number;
}

export const OPCODE = {
  continuation: 0x0,
  text: 0x1,
  binary: 0x2,
  close: 0x8,
  ping: 0x9,
  pong: 0xa,
} as const;

const HEADER = 0;
const PAYLOAD = 1;

/** Whether a close code may appear in a close frame (RFC 6455 §7.4, IANA registry as of RFC 6455 + 1012-1014). */
export function isValidCloseCode(code: number): boolean {
  if (code >= 3000 && code <= 4999) return true;
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014);
}

/** XORs `data` with the 4-byte `key` into a new buffer (§5.3). */
export function unmask(data: Buffer, key: Buffer, keyOffset = 0): Buffer {
  const out = Buffer.allocUnsafe(data.length);
  const k0 = key[0] as number;
  const k1 = key[1] as number;
  const k2 = key[2] as number;
  const k3 = key[3] as number;
  const ks = [k0, k1, k2, k3];
  let i = 0;
  // Align to the key, then 4 bytes at a time.
  for (; i < data.length && (keyOffset + i) % 4 !== 0; i++)
    out[i] = (data[i] as number) ^ (ks[(keyOffset + i) % 4] as number);
  const end = data.length - ((data.length - i) % 4);
  for (; i < end; i += 4) {
    out[i] = (data[i] as number) ^ k0;
    out[i + 1] = (data[i + 1] as number) ^ k1;
    out[i + 2] = (data[i + 2] as number) ^ k2;
    out[i + 3] = (data[i + 3] as number) ^ k3;
  }
  for (; i < data.length; i++) out[i] = (data[i] as number) ^ (ks[(keyOffset + i) % 4] as number);
  return out;
}

export class FrameDecoder {
  readonly #server: boolean;
  readonly #max: number;
  #state = HEADER;
  /** A frame header split across chunks (at most 14 bytes). */
  readonly #hdr = Buffer.alloc(14);
  #hdrLen = 0;
  // The frame being read.
  #fin = false;
  #opcode = 0;
  #masked = false;
  readonly #key = Buffer.alloc(4);
  #remaining = 0;
  /** Payload bytes of the current frame read so far (for the mask's position). */
  #frameRead = 0;
  #framePieces: Buffer[] = [];
  // The data message being assembled from fragments.
  #msgOpcode = -1;
  #msgPieces: Buffer[] = [];
  #msgBytes = 0;
  #error: WebSocketProtocolError | undefined;

  constructor(opts: FrameDecoderOptions) {
    if (!Number.isSafeInteger(opts.maxMessageBytes) || opts.maxMessageBytes < 125)
      throw new RangeError(`maxMessageBytes must be an integer of at least 125, got ${opts.maxMessageBytes}`);
    this.#server = opts.role === 'server';
    this.#max = opts.maxMessageBytes;
  }

  /** Bytes held between pushes: a partial header, and payload of an unfinished message. */
  get buffered(): number {
    let n = this.#hdrLen + this.#msgBytes;
    for (const p of this.#framePieces) n += p.length;
    return n;
  }

  /**
   * Decodes every whole message the bytes complete. Throws
   * WebSocketProtocolError when the peer broke the protocol; after that,
   * every push throws it again.
   */
  push(chunk: Buffer): WebSocketMessage[] {
    if (this.#error) throw this.#error;
    const out: WebSocketMessage[] = [];
    try {
      this.#push(chunk, out);
    } catch (err) {
      if (err instanceof WebSocketProtocolError) this.#error = err;
      throw err;
    }
    return out;
  }

  #push(chunk: Buffer, out: WebSocketMessage[]): void {
    let pos = 0;
    const len = chunk.length;
    while (pos < len || (this.#state === PAYLOAD && this.#remaining === 0)) {
      if (this.#state === HEADER) {
        pos = this.#header(chunk, pos);
        if (pos === -1) return;
        continue;
      }
      const n = Math.min(this.#remaining, len - pos);
      if (n > 0) {
        const piece = n === len ? chunk : chunk.subarray(pos, pos + n);
        this.#framePieces.push(this.#masked ? unmask(piece, this.#key, this.#frameRead) : piece);
        this.#frameRead += n;
        this.#remaining -= n;
        pos += n;
      }
      if (this.#remaining === 0) this.#endFrame(out);
    }
  }

  /** Reads a header from `chunk` at `pos` (with any carried-over start); returns where the payload starts, or -1. */
  #header(chunk: Buffer, pos: number): number {
    const hdr = this.#hdr;
    // Enough for the first two bytes?
    while (this.#hdrLen < 2 && pos < chunk.length) hdr[this.#hdrLen++] = chunk[pos++] as number;
    if (this.#hdrLen < 2) return -1;
    const b0 = hdr[0] as number;
    const b1 = hdr[1] as number;
    const len7 = b1 & 0x7f;
    const masked = (b1 & 0x80) !== 0;
    const need = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (masked ? 4 : 0);
    while (this.#hdrLen < need && pos < chunk.length) hdr[this.#hdrLen++] = chunk[pos++] as number;
    if (this.#hdrLen < need) return -1;
    this.#hdrLen = 0;

    if ((b0 & 0x70) !== 0) this.#fail(1002, 'a frame has RSV bits set, but no extension was negotiated');
    const fin = (b0 & 0x80) !== 0;
    const opcode = b0 & 0x0f;
    if (this.#server && !masked) this.#fail(1002, 'a client frame is not masked (RFC 6455 §5.1)');
    if (!this.#server && masked) this.#fail(1002, 'a server frame is masked (RFC 6455 §5.1)');
    let length: number;
    let at = 2;
    if (len7 === 126) {
      length = hdr.readUInt16BE(2);
      at = 4;
    } else if (len7 === 127) {
      const hi = hdr.readUInt32BE(2);
      if (hi & 0x80000000) this.#fail(1002, 'a 64-bit frame length has its most significant bit set');
      // Anything above 2^21 in the high word is far over any message limit.
      if (hi > 0x1fffff) this.#fail(1009, `a frame is larger than the limit of ${this.#max} bytes`);
      length = hi * 2 ** 32 + hdr.readUInt32BE(6);
      at = 10;
    } else {
      length = len7;
    }
    if (masked) hdr.copy(this.#key, 0, at, at + 4);

    if (opcode >= 0x8) {
      if (opcode > OPCODE.pong) this.#fail(1002, `reserved control opcode 0x${opcode.toString(16)}`);
      if (!fin) this.#fail(1002, 'a control frame is fragmented (RFC 6455 §5.5)');
      if (length > 125)
        this.#fail(1002, 'a control frame has more than 125 bytes of payload (RFC 6455 §5.5)');
    } else if (opcode === OPCODE.continuation) {
      if (this.#msgOpcode === -1)
        this.#fail(1002, 'a continuation frame arrived with no message to continue');
    } else if (opcode === OPCODE.text || opcode === OPCODE.binary) {
      if (this.#msgOpcode !== -1)
        this.#fail(1002, 'a new message started before the fragmented one before it ended (RFC 6455 §5.4)');
      this.#msgOpcode = opcode;
    } else {
      this.#fail(1002, `reserved data opcode 0x${opcode.toString(16)}`);
    }
    if (opcode < 0x8 && this.#msgBytes + length > this.#max)
      this.#fail(1009, `a message is larger than the limit of ${this.#max} bytes`);

    this.#fin = fin;
    this.#opcode = opcode;
    this.#masked = masked;
    this.#remaining = length;
    this.#frameRead = 0;
    this.#state = PAYLOAD;
    return pos;
  }

  #endFrame(out: WebSocketMessage[]): void {
    this.#state = HEADER;
    const pieces = this.#framePieces;
    this.#framePieces = [];
    const opcode = this.#opcode;
    if (opcode >= 0x8) {
      const data = join(pieces);
      if (opcode === OPCODE.close) out.push(this.#close(data));
      else out.push({ type: opcode === OPCODE.ping ? 'ping' : 'pong', data });
      return;
    }
    for (const p of pieces) {
      this.#msgPieces.push(p);
      this.#msgBytes += p.length;
    }
    if (!this.#fin) return;
    const data = join(this.#msgPieces);
    const text = this.#msgOpcode === OPCODE.text;
    this.#msgPieces = [];
    this.#msgBytes = 0;
    this.#msgOpcode = -1;
    if (text) {
      if (!isUtf8(data)) this.#fail(1007, 'a text message is not valid UTF-8 (RFC 6455 §8.1)');
      out.push({ type: 'text', data });
    } else {
      out.push({ type: 'binary', data });
    }
  }

  #close(data: Buffer): WebSocketMessage {
    if (data.length === 0) return { type: 'close', reason: '' };
    if (data.length === 1) this.#fail(1002, 'a close frame has a 1-byte payload (RFC 6455 §5.5.1)');
    const code = data.readUInt16BE(0);
    if (!isValidCloseCode(code)) this.#fail(1002, `a close frame carries the invalid status code ${code}`);
    const reason = data.subarray(2);
    if (!isUtf8(reason)) this.#fail(1007, 'a close reason is not valid UTF-8');
    return { type: 'close', code, reason: reason.toString('utf8') };
  }

  #fail(code: 1002 | 1007 | 1009, message: string): never {
    throw new WebSocketProtocolError(code, message);
  }
}

function join(pieces: Buffer[]): Buffer {
  if (pieces.length === 1) return pieces[0] as Buffer;
  if (pieces.length === 0) return Buffer.alloc(0);
  return Buffer.concat(pieces);
}
