/**
 * SPDY/3.1 control frame bodies the port-forward relay reads, and the frames
 * it writes itself (draft-mbelshe-httpbis-spdy-00 §2.6; every stream id has
 * an unused top bit, ignored on reading and written 0). Pure.
 *
 * - SYN_STREAM (1), flags FIN 0x01 UNIDIRECTIONAL 0x02: stream id (4),
 *   associated-to stream id (4), priority (3 bits) + unused (5) (1), slot (1),
 *   header block.
 * - SYN_REPLY (2) and HEADERS (8), flag FIN: stream id (4), header block.
 * - RST_STREAM (3): stream id (4), status (4).
 * - WINDOW_UPDATE (9): stream id (4; 0 is the session in SPDY/3.1), delta (4, 31 bits, ≥ 1).
 * - SETTINGS (4), PING (6), GOAWAY (7) and unknown types pass through unread.
 * - Data frame, flag FIN: the sender's side of the stream ends.
 */
import { SPDY_VERSION, SpdyProtocolError } from './spdy-frame-decoder.ts';

/** The control frame types the relay reads or writes; the others pass through unread. */
export const TYPE = { synStream: 1, synReply: 2, rstStream: 3, headers: 8, windowUpdate: 9 } as const;

export const FLAG_FIN = 0x01;

/** RST_STREAM status codes (§2.6.3) the relay sends. */
export const RST = { protocolError: 1, refusedStream: 3, cancel: 5 } as const;

const STREAM_ID = 0x7fffffff;

function need(body: Buffer, n: number, what: string): void {
  if (body.length < n) throw new SpdyProtocolError(`a ${what} frame of ${body.length} bytes (it needs ${n})`);
}

export interface SynStream {
  readonly streamId: number;
  /** The bytes between the stream id and the header block: associated-to id, priority, slot (6 bytes). */
  readonly fields: Buffer;
  readonly block: Buffer;
}

export function readSynStream(body: Buffer): SynStream {
  need(body, 10, 'SYN_STREAM');
  return {
    streamId: body.readUInt32BE(0) & STREAM_ID,
    fields: body.subarray(4, 10),
    block: body.subarray(10),
  };
}

/** SYN_REPLY and HEADERS: a stream id and a header block. */
export function readStreamHeaders(body: Buffer, what: string): { streamId: number; block: Buffer } {
  need(body, 4, what);
  return { streamId: body.readUInt32BE(0) & STREAM_ID, block: body.subarray(4) };
}

/** RST_STREAM and WINDOW_UPDATE: a stream id and a 32-bit value (status, delta). */
export function readStreamValue(body: Buffer, what: string): { streamId: number; value: number } {
  need(body, 8, what);
  return { streamId: body.readUInt32BE(0) & STREAM_ID, value: body.readUInt32BE(4) & STREAM_ID };
}

function controlFrame(type: number, flags: number, body: Buffer[]): Buffer {
  let length = 0;
  for (const b of body) length += b.length;
  if (length > 0xffffff) throw new RangeError('a SPDY frame body is at most 2^24 - 1 bytes');
  const head = Buffer.allocUnsafe(8);
  head.writeUInt16BE(0x8000 | SPDY_VERSION, 0);
  head.writeUInt16BE(type, 2);
  head[4] = flags;
  head.writeUIntBE(length, 5, 3);
  return Buffer.concat([head, ...body]);
}

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

/** A SYN_STREAM as received, with its header block replaced. */
export function synStreamFrame(flags: number, s: SynStream, block: Buffer): Buffer {
  return controlFrame(TYPE.synStream, flags, [u32(s.streamId), s.fields, block]);
}

/** SYN_REPLY or HEADERS. */
export function streamHeadersFrame(type: number, flags: number, streamId: number, block: Buffer): Buffer {
  return controlFrame(type, flags, [u32(streamId), block]);
}

export function rstStreamFrame(streamId: number, status: number): Buffer {
  return controlFrame(TYPE.rstStream, 0, [u32(streamId), u32(status)]);
}

export function windowUpdateFrame(streamId: number, delta: number): Buffer {
  return controlFrame(TYPE.windowUpdate, 0, [u32(streamId), u32(delta)]);
}

export function dataFrame(streamId: number, flags: number, payload: Buffer): Buffer {
  if (payload.length > 0xffffff) throw new RangeError('a SPDY data frame carries at most 2^24 - 1 bytes');
  const head = Buffer.allocUnsafe(8);
  head.writeUInt32BE(streamId & STREAM_ID, 0);
  head[4] = flags;
  head.writeUIntBE(payload.length, 5, 3);
  return payload.length === 0 ? head : Buffer.concat([head, payload]);
}
