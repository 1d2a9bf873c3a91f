/**
 * SPDY/3.1 framing (draft-mbelshe-httpbis-spdy-00 §2.2 and SPDY/3.1's session
 * flow control): a pure, incremental decoder and the encoders. Header blocks
 * stay compressed here; spdy-headers.ts inflates them, in order, per
 * connection.
 *
 *   Control frame                         Data frame
 *   +-+-------------+---------------+     +-+-----------------------------+
 *   |1| version (15) | type (16)    |     |0| stream id (31)              |
 *   +---------------+---------------+     +---------------+---------------+
 *   | flags (8) | length (24)       |     | flags (8) | length (24)       |
 *   +-------------------------------+     +-------------------------------+
 *   | data (length bytes)           |     | data (length bytes)           |
 *
 * Control frame bodies (every stream id has an unused top bit, ignored):
 * - SYN_STREAM (1), flags FIN 0x01 UNIDIRECTIONAL 0x02: stream id (4),
 *   associated-to stream id (4), priority (top 3 bits) + 5 unused bits (1),
 *   slot (1), header block. Length ≥ 10.
 * - SYN_REPLY (2) and HEADERS (8), flag FIN: stream id (4), header block. Length ≥ 4.
 * - RST_STREAM (3): stream id (4), status (4). Length 8.
 * - SETTINGS (4), flag CLEAR_SETTINGS 0x01: count (4), then per entry
 *   flags (1) + id (3) and value (4). Length 4 + 8 × count.
 * - PING (6): id (4). Length 4.
 * - GOAWAY (7): last good stream id (4), status (4). Length 8.
 * - WINDOW_UPDATE (9): stream id (4, 0 = the whole session in 3.1), delta (4,
 *   top bit unused). Length 8.
 * Unknown control frame types are skipped ("MUST be ignored"), within the size limit.
 *
 * Bounds: the decoder holds at most one frame (8-byte header + `maxFrameBytes`);
 * a longer frame is refused as soon as its header is read.
 */
import { ByteQueue } from './byte-queue.ts';

export const SPDY_VERSION = 3;
/** The largest length a frame header can say (24 bits). */
export const SPDY_MAX_FRAME_BYTES = 0xffffff;

export const SPDY_TYPE = {
  synStream: 1,
  synReply: 2,
  rstStream: 3,
  settings: 4,
  ping: 6,
  goAway: 7,
  headers: 8,
  windowUpdate: 9,
} as const;

export const SPDY_FLAG_FIN = 0x01;
export const SPDY_FLAG_UNIDIRECTIONAL = 0x02;
export const SPDY_FLAG_CLEAR_SETTINGS = 0x01;

/** RST_STREAM status codes (§2.6.3). */
export const RST_STATUS = {
  protocolError: 1,
  invalidStream: 2,
  refusedStream: 3,
  unsupportedVersion: 4,
  cancel: 5,
  internalError: 6,
  flowControlError: 7,
  streamInUse: 8,
  streamAlreadyClosed: 9,
  frameTooLarge: 11,
} as const;

/** GOAWAY status codes (§2.6.6). */
export const GOAWAY_STATUS = { ok: 0, protocolError: 1, internalError: 2 } as const;

export const SETTINGS_ID = { maxConcurrentStreams: 4, initialWindowSize: 7 } as const;

export interface SettingsEntry {
  readonly flags: number;
  readonly id: number;
  readonly value: number;
}

export type SpdyFrame =
  | { readonly type: 'data'; readonly streamId: number; readonly fin: boolean; readonly data: Buffer }
  | {
      readonly type: 'syn_stream';
      readonly streamId: number;
      readonly associatedStreamId: number;
      readonly priority: number;
      readonly slot: number;
      readonly fin: boolean;
      readonly unidirectional: boolean;
      readonly headerBlock: Buffer;
    }
  | {
      readonly type: 'syn_reply' | 'headers';
      readonly streamId: number;
      readonly fin: boolean;
      readonly headerBlock: Buffer;
    }
  | { readonly type: 'rst_stream'; readonly streamId: number; readonly status: number }
  | { readonly type: 'settings'; readonly clear: boolean; readonly entries: readonly SettingsEntry[] }
  | { readonly type: 'ping'; readonly id: number }
  | { readonly type: 'goaway'; readonly lastGoodStreamId: number; readonly status: number }
  | { readonly type: 'window_update'; readonly streamId: number; readonly delta: number };

/** The peer broke the framing: the session ends with GOAWAY PROTOCOL_ERROR. */
export class SpdyFrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SpdyFrameError';
  }
}

const ID_MASK = 0x7fffffff;

export class SpdyFrameDecoder {
  readonly #maxFrameBytes: number;
  readonly #queue = new ByteQueue();
  #failure: SpdyFrameError | undefined;

  constructor(opts: { maxFrameBytes?: number } = {}) {
    this.#maxFrameBytes = Math.min(opts.maxFrameBytes ?? SPDY_MAX_FRAME_BYTES, SPDY_MAX_FRAME_BYTES);
  }

  /** Feeds bytes; returns the frames they complete. Throws SpdyFrameError (and keeps throwing it). */
  push(chunk: Buffer): SpdyFrame[] {
    if (this.#failure) throw this.#failure;
    this.#queue.push(chunk);
    const out: SpdyFrame[] = [];
    try {
      for (;;) {
        const q = this.#queue;
        if (q.length < 8) break;
        const head = q.peek(8);
        const length = head.readUInt32BE(4) & 0xffffff;
        if (length > this.#maxFrameBytes) {
          throw new SpdyFrameError(
            `a frame of ${length} bytes is larger than the ${this.#maxFrameBytes} allowed`,
          );
        }
        if (q.length < 8 + length) break;
        const word = head.readUInt32BE(0);
        const flags = head[4]!;
        q.skip(8);
        const body = q.take(length);
        const frame = word & 0x80000000 ? controlFrame(word, flags, body) : dataFrame(word, flags, body);
        if (frame) out.push(frame);
      }
    } catch (err) {
      if (err instanceof SpdyFrameError) this.#failure = err;
      throw err;
    }
    return out;
  }
}

function dataFrame(word: number, flags: number, body: Buffer): SpdyFrame {
  const streamId = word & ID_MASK;
  if (streamId === 0) throw new SpdyFrameError('a data frame for stream 0');
  return { type: 'data', streamId, fin: (flags & SPDY_FLAG_FIN) !== 0, data: body };
}

function streamIdOf(body: Buffer, what: string): number {
  const id = body.readUInt32BE(0) & ID_MASK;
  if (id === 0) throw new SpdyFrameError(`${what} for stream 0`);
  return id;
}

function controlFrame(word: number, flags: number, body: Buffer): SpdyFrame | undefined {
  const version = (word >>> 16) & 0x7fff;
  const type = word & 0xffff;
  if (version !== SPDY_VERSION) throw new SpdyFrameError(`a control frame of SPDY version ${version}`);
  const exactly = (n: number, what: string) => {
    if (body.length !== n) throw new SpdyFrameError(`${what} of ${body.length} bytes (must be ${n})`);
  };
  const atLeast = (n: number, what: string) => {
    if (body.length < n) throw new SpdyFrameError(`${what} of ${body.length} bytes (at least ${n})`);
  };
  switch (type) {
    case SPDY_TYPE.synStream:
      atLeast(10, 'SYN_STREAM');
      return {
        type: 'syn_stream',
        streamId: streamIdOf(body, 'SYN_STREAM'),
        associatedStreamId: body.readUInt32BE(4) & ID_MASK,
        priority: body[8]! >> 5,
        slot: body[9]!,
        fin: (flags & SPDY_FLAG_FIN) !== 0,
        unidirectional: (flags & SPDY_FLAG_UNIDIRECTIONAL) !== 0,
        headerBlock: body.subarray(10),
      };
    case SPDY_TYPE.synReply:
    case SPDY_TYPE.headers: {
      const name = type === SPDY_TYPE.synReply ? 'SYN_REPLY' : 'HEADERS';
      atLeast(4, name);
      return {
        type: type === SPDY_TYPE.synReply ? 'syn_reply' : 'headers',
        streamId: streamIdOf(body, name),
        fin: (flags & SPDY_FLAG_FIN) !== 0,
        headerBlock: body.subarray(4),
      };
    }
    case SPDY_TYPE.rstStream:
      exactly(8, 'RST_STREAM');
      return { type: 'rst_stream', streamId: streamIdOf(body, 'RST_STREAM'), status: body.readUInt32BE(4) };
    case SPDY_TYPE.settings: {
      atLeast(4, 'SETTINGS');
      const count = body.readUInt32BE(0);
      if (body.length !== 4 + 8 * count) {
        throw new SpdyFrameError(`SETTINGS of ${body.length} bytes for ${count} entries`);
      }
      const entries: SettingsEntry[] = [];
      for (let i = 0; i < count; i++) {
        const at = 4 + 8 * i;
        entries.push({ flags: body[at]!, id: body.readUIntBE(at + 1, 3), value: body.readUInt32BE(at + 4) });
      }
      return { type: 'settings', clear: (flags & SPDY_FLAG_CLEAR_SETTINGS) !== 0, entries };
    }
    case SPDY_TYPE.ping:
      exactly(4, 'PING');
      return { type: 'ping', id: body.readUInt32BE(0) };
    case SPDY_TYPE.goAway:
      exactly(8, 'GOAWAY');
      return {
        type: 'goaway',
        lastGoodStreamId: body.readUInt32BE(0) & ID_MASK,
        status: body.readUInt32BE(4),
      };
    case SPDY_TYPE.windowUpdate:
      exactly(8, 'WINDOW_UPDATE');
      return {
        type: 'window_update',
        streamId: body.readUInt32BE(0) & ID_MASK,
        delta: body.readUInt32BE(4) & ID_MASK,
      };
    default:
      return undefined;
  }
}

function header(first: number, flags: number, length: number): Buffer {
  if (length > SPDY_MAX_FRAME_BYTES) throw new RangeError(`a SPDY frame cannot carry ${length} bytes`);
  const h = Buffer.allocUnsafe(8);
  h.writeUInt32BE(first >>> 0, 0);
  h.writeUInt32BE(((flags << 24) | length) >>> 0, 4);
  return h;
}

function control(type: number, flags: number, body: Buffer): Buffer {
  return Buffer.concat([header(0x80000000 | (SPDY_VERSION << 16) | type, flags, body.length), body]);
}

function words(...values: number[]): Buffer {
  const b = Buffer.allocUnsafe(4 * values.length);
  for (const [i, v] of values.entries()) b.writeUInt32BE(v >>> 0, 4 * i);
  return b;
}

export function encodeDataFrame(streamId: number, data: Buffer, fin = false): Buffer {
  return Buffer.concat([encodeDataFrameHeader(streamId, data.length, fin), data]);
}

/** The 8 bytes before a data frame's payload, for writing the payload without copying it. */
export function encodeDataFrameHeader(streamId: number, length: number, fin = false): Buffer {
  return header(streamId & ID_MASK, fin ? SPDY_FLAG_FIN : 0, length);
}

export function encodeSynStream(
  streamId: number,
  headerBlock: Buffer,
  opts: { associatedStreamId?: number; priority?: number; fin?: boolean; unidirectional?: boolean } = {},
): Buffer {
  const flags = (opts.fin ? SPDY_FLAG_FIN : 0) | (opts.unidirectional ? SPDY_FLAG_UNIDIRECTIONAL : 0);
  const fixed = Buffer.concat([
    words(streamId, opts.associatedStreamId ?? 0),
    Buffer.from([(opts.priority ?? 0) << 5, 0]),
  ]);
  return control(SPDY_TYPE.synStream, flags, Buffer.concat([fixed, headerBlock]));
}

export function encodeSynReply(streamId: number, headerBlock: Buffer, fin = false): Buffer {
  return control(SPDY_TYPE.synReply, fin ? SPDY_FLAG_FIN : 0, Buffer.concat([words(streamId), headerBlock]));
}

export function encodeHeaders(streamId: number, headerBlock: Buffer, fin = false): Buffer {
  return control(SPDY_TYPE.headers, fin ? SPDY_FLAG_FIN : 0, Buffer.concat([words(streamId), headerBlock]));
}

export function encodeRstStream(streamId: number, status: number): Buffer {
  return control(SPDY_TYPE.rstStream, 0, words(streamId, status));
}

export function encodeSettings(entries: readonly SettingsEntry[], clear = false): Buffer {
  const body = Buffer.allocUnsafe(4 + 8 * entries.length);
  body.writeUInt32BE(entries.length, 0);
  entries.forEach((e, i) => {
    body[4 + 8 * i] = e.flags;
    body.writeUIntBE(e.id, 5 + 8 * i, 3);
    body.writeUInt32BE(e.value >>> 0, 8 + 8 * i);
  });
  return control(SPDY_TYPE.settings, clear ? SPDY_FLAG_CLEAR_SETTINGS : 0, body);
}

export function encodePing(id: number): Buffer {
  return control(SPDY_TYPE.ping, 0, words(id));
}

export function encodeGoAway(lastGoodStreamId: number, status: number): Buffer {
  return control(SPDY_TYPE.goAway, 0, words(lastGoodStreamId, status));
}

export function encodeWindowUpdate(streamId: number, delta: number): Buffer {
  return control(SPDY_TYPE.windowUpdate, 0, words(streamId, delta));
}
