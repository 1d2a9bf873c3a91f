/**
 * For the SPDY tests: a peer's header compression as a real zlib stream (one
 * per direction, primed with the dictionary, a sync flush after each block —
 * as Go's SPDY framer writes it and reads it), and helpers that build the
 * frames a peer sends and read back whole frames. Test-only.
 */
import { constants, createDeflate, createInflate, type Deflate, type Inflate } from 'node:zlib';
import { SPDY3_DICTIONARY } from './spdy-dictionary.ts';
import { SpdyFrameDecoder } from './spdy-frame-decoder.ts';
import { dataFrame, FLAG_FIN, streamHeadersFrame, synStreamFrame, TYPE } from './spdy-frames.ts';
import { type HeaderPairs, readHeaderPairs, writeHeaderPairs } from './spdy-header-codec.ts';

/** Runs one zlib stream step: write `input`, sync-flush, collect what comes out. */
function step(z: Deflate | Inflate, input: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const out: Buffer[] = [];
    const onData = (d: Buffer) => out.push(d);
    z.on('data', onData);
    z.once('error', reject);
    z.write(input);
    z.flush(constants.Z_SYNC_FLUSH, () => {
      z.off('data', onData);
      z.off('error', reject);
      resolve(Buffer.concat(out));
    });
  });
}

/** A peer's compressor for one direction. */
export class PeerDeflater {
  readonly #z = createDeflate({ dictionary: SPDY3_DICTIONARY, level: 9 });
  block(pairs: HeaderPairs): Promise<Buffer> {
    return step(this.#z, writeHeaderPairs(pairs));
  }
  close(): void {
    this.#z.close();
  }
}

/** A peer's decompressor for one direction: reads the blocks it is given, in order. */
export class PeerInflater {
  readonly #z = createInflate({ dictionary: SPDY3_DICTIONARY });
  async block(compressed: Buffer): Promise<HeaderPairs> {
    return readHeaderPairs(await step(this.#z, compressed));
  }
  close(): void {
    this.#z.close();
  }
}

/** The headers kubectl sends for one stream of a forwarded connection. */
export function streamHeaders(type: 'error' | 'data', port: string, requestId: number): HeaderPairs {
  return [
    ['port', port],
    ['requestid', String(requestId)],
    ['streamtype', type],
  ];
}

const SYN_FIELDS = Buffer.from([0, 0, 0, 0, 0, 0]);

export function synStream(id: number, block: Buffer, flags = 0): Buffer {
  return synStreamFrame(flags, { streamId: id, fields: SYN_FIELDS, block }, block);
}

export function synReply(id: number, block: Buffer): Buffer {
  return streamHeadersFrame(TYPE.synReply, 0, id, block);
}

export function data(id: number, payload: string | Buffer, fin = false): Buffer {
  return dataFrame(id, fin ? FLAG_FIN : 0, typeof payload === 'string' ? Buffer.from(payload) : payload);
}

/** One whole frame read back: control frames with their body, data frames with their payload joined. */
export type WholeFrame =
  | { readonly kind: 'control'; readonly type: number; readonly flags: number; readonly body: Buffer }
  | { readonly kind: 'data'; readonly streamId: number; readonly flags: number; readonly data: Buffer };

/** Reads whole frames out of a byte stream, as it arrives. */
export class FrameReader {
  readonly #decoder = new SpdyFrameDecoder({ maxControlFrameBytes: 1 << 24 });
  #current: { streamId: number; flags: number; pieces: Buffer[]; left: number } | undefined;

  push(bytes: Buffer): WholeFrame[] {
    const out: WholeFrame[] = [];
    for (const p of this.#decoder.push(bytes)) {
      if (p.kind === 'control')
        out.push({ kind: 'control', type: p.type, flags: p.flags, body: Buffer.from(p.body) });
      else if (p.kind === 'data-head') {
        this.#current = { streamId: p.streamId, flags: p.flags, pieces: [], left: p.length };
        if (p.length === 0)
          out.push({ kind: 'data', streamId: p.streamId, flags: p.flags, data: Buffer.alloc(0) });
      } else if (this.#current) {
        const c = this.#current;
        c.pieces.push(Buffer.from(p.data));
        c.left -= p.data.length;
        if (c.left === 0)
          out.push({ kind: 'data', streamId: c.streamId, flags: c.flags, data: Buffer.concat(c.pieces) });
      }
    }
    return out;
  }
}

/** Reads frames out of a whole byte stream. */
export function wholeFrames(bytes: Buffer): WholeFrame[] {
  return new FrameReader().push(bytes);
}
