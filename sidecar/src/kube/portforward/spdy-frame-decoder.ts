/**
 * Incremental SPDY/3.1 frame decoder (draft-mbelshe-httpbis-spdy-00 §2.2,
 * SPDY/3.1 adds only session flow control): bytes in, frame parts out. Pure:
 * no socket, no timers.
 *
 *   Control frame                          Data frame
 *   +-+--------------+---------------+     +-+------------------------------+
 *   |1| version (15) | type (16)     |     |0| stream id (31)               |
 *   +---------------+----------------+     +---------------+----------------+
 *   | flags (8) | length (24)        |     | flags (8) | length (24)        |
 *   +--------------------------------+     +--------------------------------+
 *   | body (length bytes)            |     | payload (length bytes)         |
 *
 * A control frame is handed out whole (its body is what the relay reads: a
 * header block, a stream id); it may be at most `maxControlFrameBytes` long,
 * refused as soon as its header says more. A data frame is handed out as its
 * 8-byte header and then its payload in the pieces it arrived in, never held:
 * the relay passes data through byte for byte without reading it. So the
 * decoder holds at most 8 bytes of a header, or one control frame.
 *
 * Only version 3 is spoken ("SPDY/3.1" upgrades); a control frame of another
 * version is a protocol error, as is a data frame on stream 0. Unknown control
 * frame types are handed out like the others: the spec says to ignore them,
 * which for a relay means passing them on.
 */

export const SPDY_VERSION = 3;

export type SpdyPart =
  | {
      readonly kind: 'control';
      readonly type: number;
      readonly flags: number;
      /** The frame's body (after the 8-byte header). */
      readonly body: Buffer;
      /** The whole frame as it arrived: header and body. */
      readonly raw: Buffer;
    }
  | {
      readonly kind: 'data-head';
      readonly streamId: number;
      readonly flags: number;
      readonly length: number;
      /** The 8-byte frame header as it arrived. */
      readonly raw: Buffer;
    }
  /** A piece of the current data frame's payload (may share memory with the pushed chunk). */
  | { readonly kind: 'data'; readonly streamId: number; readonly data: Buffer };

/** The peer broke SPDY framing; the session cannot go on. */
export class SpdyProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SpdyProtocolError';
  }
}

export interface SpdyFrameDecoderOptions {
  /** Largest control frame, header included. */
  readonly maxControlFrameBytes: number;
}

export class SpdyFrameDecoder {
  readonly #max: number;
  readonly #head = Buffer.alloc(8);
  #headLen = 0;
  /** Payload bytes still to come of the current frame (control or data). */
  #remaining = 0;
  /** The control frame being collected (its header is #head). */
  #control: Buffer[] | undefined;
  #dataStream = -1;
  #error: SpdyProtocolError | undefined;

  constructor(o: SpdyFrameDecoderOptions) {
    if (!Number.isSafeInteger(o.maxControlFrameBytes) || o.maxControlFrameBytes < 16)
      throw new RangeError(
        `maxControlFrameBytes must be an integer of at least 16, got ${o.maxControlFrameBytes}`,
      );
    this.#max = o.maxControlFrameBytes;
  }

  /** Bytes held between pushes. */
  get buffered(): number {
    let n = this.#headLen;
    for (const b of this.#control ?? []) n += b.length;
    return n;
  }

  /** Whether the bytes so far end on a frame boundary. */
  get idle(): boolean {
    return (
      this.#headLen === 0 && this.#remaining === 0 && this.#control === undefined && this.#dataStream === -1
    );
  }

  /** Decodes what the bytes complete. Throws SpdyProtocolError (and again on every later push). */
  push(chunk: Buffer): SpdyPart[] {
    if (this.#error) throw this.#error;
    const out: SpdyPart[] = [];
    try {
      this.#push(chunk, out);
    } catch (err) {
      if (err instanceof SpdyProtocolError) this.#error = err;
      throw err;
    }
    return out;
  }

  #push(chunk: Buffer, out: SpdyPart[]): void {
    let pos = 0;
    while (pos < chunk.length) {
      if (this.#dataStream !== -1) {
        const n = Math.min(this.#remaining, chunk.length - pos);
        out.push({
          kind: 'data',
          streamId: this.#dataStream,
          data: n === chunk.length ? chunk : chunk.subarray(pos, pos + n),
        });
        pos += n;
        this.#remaining -= n;
        if (this.#remaining === 0) this.#dataStream = -1;
        continue;
      }
      if (this.#control) {
        const n = Math.min(this.#remaining, chunk.length - pos);
        this.#control.push(chunk.subarray(pos, pos + n));
        pos += n;
        this.#remaining -= n;
        if (this.#remaining === 0) this.#endControl(out);
        continue;
      }
      const take = Math.min(8 - this.#headLen, chunk.length - pos);
      chunk.copy(this.#head, this.#headLen, pos, pos + take);
      this.#headLen += take;
      pos += take;
      if (this.#headLen === 8) this.#header(out);
    }
  }

  #header(out: SpdyPart[]): void {
    this.#headLen = 0;
    const h = this.#head;
    const length = h.readUIntBE(5, 3);
    const flags = h[4] as number;
    if ((h[0] as number) & 0x80) {
      const version = h.readUInt16BE(0) & 0x7fff;
      if (version !== SPDY_VERSION)
        throw new SpdyProtocolError(
          `a control frame of SPDY version ${version}; this session speaks SPDY/3.1`,
        );
      if (8 + length > this.#max)
        throw new SpdyProtocolError(
          `a control frame of ${8 + length} bytes is larger than the limit of ${this.#max}`,
        );
      this.#control = [Buffer.from(h)];
      this.#remaining = length;
      if (length === 0) this.#endControl(out);
      return;
    }
    const streamId = h.readUInt32BE(0) & 0x7fffffff;
    if (streamId === 0) throw new SpdyProtocolError('a data frame on stream 0');
    out.push({ kind: 'data-head', streamId, flags, length, raw: Buffer.from(h) });
    if (length > 0) {
      this.#dataStream = streamId;
      this.#remaining = length;
    }
  }

  #endControl(out: SpdyPart[]): void {
    const parts = this.#control as Buffer[];
    this.#control = undefined;
    const raw = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
    out.push({
      kind: 'control',
      type: raw.readUInt16BE(2),
      flags: raw[4] as number,
      body: raw.subarray(8),
      raw,
    });
  }
}
