/**
 * SPDY/3 header blocks (§2.6.10): reading the peers' compressed blocks and
 * writing the sidecar's own. Pure.
 *
 * A block, uncompressed: the number of pairs (4 bytes), then for each pair the
 * name's length (4), the name, the value's length (4), the value; names are
 * lower case, several values of one name are joined with NUL.
 *
 * Compression is one zlib stream per direction of a connection, primed with
 * the SPDY/3 dictionary, each block ending with a sync flush: a block may refer
 * back into anything the direction decompressed before (and the dictionary).
 * So a relay cannot drop or add a block without the receiver's inflater
 * falling out of step: the sidecar ends the compression of each direction
 * itself — `HeaderBlockReader` inflates every block a peer sends, in order,
 * and `HeaderBlockWriter` writes every block the sidecar sends on, in order.
 *
 * Reading: a block is raw deflate data that may refer back at most 32 KiB, so
 * it is inflated on its own with the last 32 KiB of (dictionary + everything
 * decompressed before) as its preset dictionary — the window a streaming
 * inflater would hold. The first block starts with the 2-byte zlib header and,
 * with FDICT, the dictionary's Adler-32.
 *
 * Writing: stored (uncompressed) deflate blocks (RFC 1951 §3.2.4: a 3-bit
 * header, LEN, NLEN, the bytes), followed by the empty stored block of a sync
 * flush. Any zlib inflater reads them; nothing refers back, so nothing depends
 * on the receiver's window but its position; header blocks are small, and the
 * bytes saved by compressing them are not worth a compressor per session.
 */
import { constants, inflateRawSync } from 'node:zlib';
import { SPDY3_DICTIONARY } from './spdy-dictionary.ts';
import { SpdyProtocolError } from './spdy-frame-decoder.ts';

const WINDOW = 32 * 1024;
/** Largest uncompressed header block read. */
export const MAX_HEADER_BLOCK_BYTES = 64 * 1024;

function adler32(data: Buffer): number {
  let a = 1;
  let b = 0;
  for (const byte of data) {
    a = (a + byte) % 65521;
    b = (b + a) % 65521;
  }
  return ((b << 16) | a) >>> 0;
}

const DICTIONARY_ADLER = adler32(SPDY3_DICTIONARY);

/** The header pairs of a block, in order; values keep their NUL separators. */
export type HeaderPairs = readonly (readonly [name: string, value: string])[];

/** Inflates one direction's header blocks, in the order they were sent. */
export class HeaderBlockReader {
  #history: Buffer = SPDY3_DICTIONARY;
  #started = false;

  /** The uncompressed block. Throws SpdyProtocolError when it does not inflate. */
  inflate(block: Buffer): Buffer {
    let deflated = block;
    if (!this.#started) {
      this.#started = true;
      deflated = block.subarray(zlibHeaderLength(block));
    }
    let out: Buffer;
    try {
      out = inflateRawSync(deflated, {
        dictionary: this.#history,
        finishFlush: constants.Z_SYNC_FLUSH,
        maxOutputLength: MAX_HEADER_BLOCK_BYTES,
      });
    } catch (err) {
      throw new SpdyProtocolError(`a header block does not inflate (${(err as Error).message})`);
    }
    const joined = out.length >= WINDOW ? out : Buffer.concat([this.#history, out]);
    this.#history = joined.length > WINDOW ? Buffer.from(joined.subarray(joined.length - WINDOW)) : joined;
    return out;
  }
}

/** Length of the zlib header (RFC 1950 §2.2) at the start of a direction's first block. */
function zlibHeaderLength(block: Buffer): number {
  if (block.length < 2) throw new SpdyProtocolError('the first header block is shorter than a zlib header');
  const cmf = block[0] as number;
  const flg = block[1] as number;
  if ((cmf & 0x0f) !== 8 || cmf >> 4 > 7 || ((cmf << 8) | flg) % 31 !== 0)
    throw new SpdyProtocolError('the first header block does not start with a zlib header');
  if ((flg & 0x20) === 0) return 2;
  if (block.length < 6) throw new SpdyProtocolError('the zlib header of the first header block is cut short');
  if (block.readUInt32BE(2) !== DICTIONARY_ADLER)
    throw new SpdyProtocolError('the header blocks are compressed with a dictionary other than SPDY/3’s');
  return 6;
}

/** CMF 0x78 (deflate, 32 KiB window); FLG 0xbb: FDICT, level 2, check bits ((0x78 << 8 | 0xbb) % 31 = 0). */
const ZLIB_HEADER = Buffer.from([0x78, 0xbb, 0, 0, 0, 0]);
ZLIB_HEADER.writeUInt32BE(DICTIONARY_ADLER, 2);
/** The empty stored block a sync flush ends with. */
const SYNC_MARK = Buffer.from([0x00, 0x00, 0x00, 0xff, 0xff]);
const STORED_MAX = 0xffff;

/** Compresses one direction's header blocks, in the order they are sent (see the file's comment). */
export class HeaderBlockWriter {
  #started = false;

  deflate(raw: Buffer): Buffer {
    const parts: Buffer[] = [];
    if (!this.#started) {
      this.#started = true;
      parts.push(ZLIB_HEADER);
    }
    for (let at = 0; at < raw.length; at += STORED_MAX) {
      const piece = raw.subarray(at, at + STORED_MAX);
      // BFINAL 0, BTYPE 00, then padding to the byte boundary: one zero byte; LEN and ~LEN little-endian.
      const head = Buffer.from([0, 0, 0, 0, 0]);
      head.writeUInt16LE(piece.length, 1);
      head.writeUInt16LE(~piece.length & 0xffff, 3);
      parts.push(head, piece);
    }
    parts.push(SYNC_MARK);
    return Buffer.concat(parts);
  }
}

/**
 * Reads an uncompressed block as Go's SPDY framer does, except that it is
 * stricter: a name that is not lower case, the same name twice, a count the
 * bytes cannot hold, or bytes after the last pair are protocol errors (the
 * framer would fail the session on the first, and keeps every value of a
 * repeated name in order).
 */
export function readHeaderPairs(raw: Buffer): HeaderPairs {
  let at = 0;
  const fail = (why: string): never => {
    throw new SpdyProtocolError(`a header block is malformed: ${why}`);
  };
  const length = (): number => {
    if (at + 4 > raw.length) fail('it ends inside a length');
    const n = raw.readUInt32BE(at);
    at += 4;
    if (n > raw.length - at) fail('a name or value is longer than the block');
    return n;
  };
  if (raw.length < 4) fail('it has no pair count');
  const count = raw.readUInt32BE(0);
  at = 4;
  if (count > (raw.length - 4) / 8) fail(`${count} pairs cannot fit in ${raw.length} bytes`);
  const pairs: [string, string][] = [];
  const seen = new Set<string>();
  for (let i = 0; i < count; i++) {
    const n = length();
    const name = raw.toString('latin1', at, at + n);
    at += n;
    if (name === '') fail('an empty name');
    if (name !== name.toLowerCase()) fail(`the name ${JSON.stringify(name)} is not lower case`);
    if (seen.has(name)) fail(`the name ${JSON.stringify(name)} appears twice`);
    seen.add(name);
    const v = length();
    pairs.push([name, raw.toString('latin1', at, at + v)]);
    at += v;
  }
  if (at !== raw.length) fail(`${raw.length - at} bytes follow the last pair`);
  return pairs;
}

/** An uncompressed block of the pairs. */
export function writeHeaderPairs(pairs: HeaderPairs): Buffer {
  const parts: Buffer[] = [Buffer.alloc(4)];
  (parts[0] as Buffer).writeUInt32BE(pairs.length);
  for (const [name, value] of pairs) {
    for (const s of [name, value]) {
      const b = Buffer.from(s, 'latin1');
      const len = Buffer.allocUnsafe(4);
      len.writeUInt32BE(b.length);
      parts.push(len, b);
    }
  }
  return Buffer.concat(parts);
}

/** The first value of a header (values of one name are NUL-separated), as the kubelet's Header.Get reads it. */
export function headerValue(pairs: HeaderPairs, name: string): string | undefined {
  const pair = pairs.find(([n]) => n === name);
  return pair === undefined ? undefined : (pair[1].split('\0')[0] as string);
}
