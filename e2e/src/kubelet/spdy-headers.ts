/**
 * SPDY/3 header blocks (§2.6.10): the name/value block and its compression.
 *
 * Block: count (4 bytes), then per pair: name length (4), name, value length
 * (4), value. Names are lowercase and unique; several values of one name are
 * joined with NUL bytes.
 *
 * Compression: one zlib stream per direction per connection, primed with the
 * SPDY/3 dictionary; each header block is the output of one Z_SYNC_FLUSH, so
 * it ends on a byte boundary and the next block starts a new deflate block. A
 * block may refer back up to 32 KiB into the dictionary and everything the
 * stream decompressed before, so decoding a block needs that window, not the
 * whole stream: each block is inflated on its own as raw deflate, with the
 * last 32 KiB of (dictionary + earlier output) as its dictionary. That keeps
 * both directions synchronous and pure. The first block carries the 2-byte
 * zlib header and, with FDICT set, the dictionary's Adler-32.
 */
import { constants, deflateRawSync, inflateRawSync } from 'node:zlib';
import { SPDY3_HEADER_DICTIONARY } from './spdy-dictionary.ts';

const WINDOW = 32 * 1024;
/** Largest decompressed header block accepted. */
const MAX_HEADER_BLOCK_BYTES = 256 * 1024;

export type SpdyHeaders = ReadonlyMap<string, readonly string[]>;

/** A header block the peer got wrong: the session ends with GOAWAY PROTOCOL_ERROR. */
export class SpdyHeaderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SpdyHeaderError';
  }
}

export function adler32(data: Buffer): number {
  let a = 1;
  let b = 0;
  for (let i = 0; i < data.length; i++) {
    a = (a + data[i]!) % 65521;
    b = (b + a) % 65521;
  }
  return ((b << 16) | a) >>> 0;
}

const DICTIONARY_ID = adler32(SPDY3_HEADER_DICTIONARY);

/** Parses an uncompressed name/value block. */
export function parseHeaderBlock(raw: Buffer): Map<string, string[]> {
  const fail = (why: string): never => {
    throw new SpdyHeaderError(`bad header block: ${why}`);
  };
  let at = 0;
  const u32 = () => {
    if (at + 4 > raw.length) fail('truncated');
    const v = raw.readUInt32BE(at);
    at += 4;
    return v;
  };
  const bytes = (n: number) => {
    if (n > raw.length - at) fail('truncated');
    const v = raw.subarray(at, at + n);
    at += n;
    return v;
  };
  const count = u32();
  if (count > (raw.length - 4) / 8) fail(`${count} pairs cannot fit in ${raw.length} bytes`);
  const headers = new Map<string, string[]>();
  for (let i = 0; i < count; i++) {
    const name = bytes(u32()).toString('latin1');
    if (name === '') fail('an empty name');
    if (name !== name.toLowerCase()) fail(`name "${name}" is not lowercase`);
    if (headers.has(name)) fail(`name "${name}" appears twice`);
    headers.set(name, bytes(u32()).toString('latin1').split('\0'));
  }
  if (at !== raw.length) fail(`${raw.length - at} bytes after the last pair`);
  return headers;
}

/** Serialises headers; names are lowercased, several values joined with NUL. */
export function serializeHeaderBlock(
  headers: Iterable<readonly [string, string | readonly string[]]>,
): Buffer {
  const parts: Buffer[] = [];
  let count = 0;
  const withLength = (s: string) => {
    const b = Buffer.from(s, 'latin1');
    const len = Buffer.allocUnsafe(4);
    len.writeUInt32BE(b.length);
    parts.push(len, b);
  };
  for (const [name, value] of headers) {
    withLength(name.toLowerCase());
    withLength(typeof value === 'string' ? value : value.join('\0'));
    count++;
  }
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32BE(count);
  return Buffer.concat([head, ...parts]);
}

function slide(window: Buffer, out: Buffer): Buffer {
  const joined = Buffer.concat([window, out]);
  return joined.length > WINDOW ? Buffer.from(joined.subarray(joined.length - WINDOW)) : joined;
}

/** Decompresses the header blocks of one direction of a connection, in order. */
export class SpdyHeaderInflater {
  #window = SPDY3_HEADER_DICTIONARY;
  #first = true;

  decode(block: Buffer): Map<string, string[]> {
    let deflate = block;
    if (this.#first) {
      if (block.length < 2) throw new SpdyHeaderError('the first header block has no zlib header');
      const cmf = block[0]!;
      const flg = block[1]!;
      if ((cmf & 0x0f) !== 8 || cmf >> 4 > 7 || ((cmf << 8) | flg) % 31 !== 0) {
        throw new SpdyHeaderError('the first header block does not start with a zlib header');
      }
      let skip = 2;
      if (flg & 0x20) {
        if (block.length < 6) throw new SpdyHeaderError('the zlib header is truncated');
        if (block.readUInt32BE(2) !== DICTIONARY_ID) {
          throw new SpdyHeaderError('the header blocks use a dictionary other than SPDY/3’s');
        }
        skip = 6;
      }
      deflate = block.subarray(skip);
      this.#first = false;
    }
    let out: Buffer;
    try {
      out = inflateRawSync(deflate, {
        dictionary: this.#window,
        finishFlush: constants.Z_SYNC_FLUSH,
        maxOutputLength: MAX_HEADER_BLOCK_BYTES,
      });
    } catch (err) {
      throw new SpdyHeaderError(`a header block does not inflate: ${(err as Error).message}`);
    }
    this.#window = slide(this.#window, out);
    return parseHeaderBlock(out);
  }
}

/** Compresses the header blocks of one direction of a connection, in order. */
export class SpdyHeaderDeflater {
  #window = SPDY3_HEADER_DICTIONARY;
  #first = true;

  encode(headers: Iterable<readonly [string, string | readonly string[]]>): Buffer {
    const raw = serializeHeaderBlock(headers);
    const body = deflateRawSync(raw, {
      dictionary: this.#window,
      finishFlush: constants.Z_SYNC_FLUSH,
      level: constants.Z_BEST_COMPRESSION,
    });
    this.#window = slide(this.#window, raw);
    if (!this.#first) return body;
    this.#first = false;
    // CMF 0x78 (deflate, 32 KiB window), FLG 0xf9 (best compression, FDICT, check bits), then the dictionary id.
    const zlibHeader = Buffer.from([0x78, 0xf9, 0, 0, 0, 0]);
    zlibHeader.writeUInt32BE(DICTIONARY_ID, 2);
    return Buffer.concat([zlibHeader, body]);
  }
}
