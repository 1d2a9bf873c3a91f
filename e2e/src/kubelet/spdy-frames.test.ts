// The stand-in kubelet's SPDY/3.1 decoder and header compression, without a
// network: every split of a byte stream decodes to the same frames, random
// bytes only ever end in SpdyFrameError, the buffer stays bounded, and header
// blocks round-trip through an independent continuous zlib stream (the way
// Go's spdystream compresses them).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { constants, createDeflate, createInflate } from 'node:zlib';
import fc from 'fast-check';
import { SPDY3_HEADER_DICTIONARY } from './spdy-dictionary.ts';
import {
  encodeDataFrame,
  encodeGoAway,
  encodeHeaders,
  encodePing,
  encodeRstStream,
  encodeSettings,
  encodeSynReply,
  encodeSynStream,
  encodeWindowUpdate,
  type SpdyFrame,
  SpdyFrameDecoder,
  SpdyFrameError,
} from './spdy-frames.ts';
import {
  parseHeaderBlock,
  SpdyHeaderDeflater,
  SpdyHeaderError,
  SpdyHeaderInflater,
  serializeHeaderBlock,
} from './spdy-headers.ts';
import { splitAt } from './split-bytes.ts';

const streamId = fc.integer({ min: 1, max: 0x7fffffff });
const u31 = fc.integer({ min: 0, max: 0x7fffffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const bytes = (max: number) => fc.uint8Array({ maxLength: max }).map((a) => Buffer.from(a));

/** A frame and its encoding. */
const frameArb: fc.Arbitrary<{ frame: SpdyFrame; wire: Buffer }> = fc.oneof(
  fc.record({ id: streamId, fin: fc.boolean(), data: bytes(300) }).map(({ id, fin, data }) => ({
    frame: { type: 'data', streamId: id, fin, data } as const,
    wire: encodeDataFrame(id, data, fin),
  })),
  fc
    .record({
      id: streamId,
      assoc: u31,
      priority: fc.integer({ min: 0, max: 7 }),
      fin: fc.boolean(),
      uni: fc.boolean(),
      block: bytes(60),
    })
    .map(({ id, assoc, priority, fin, uni, block }) => ({
      frame: {
        type: 'syn_stream',
        streamId: id,
        associatedStreamId: assoc,
        priority,
        slot: 0,
        fin,
        unidirectional: uni,
        headerBlock: block,
      } as const,
      wire: encodeSynStream(id, block, { associatedStreamId: assoc, priority, fin, unidirectional: uni }),
    })),
  fc
    .record({ id: streamId, fin: fc.boolean(), block: bytes(60), reply: fc.boolean() })
    .map(({ id, fin, block, reply }) => ({
      frame: { type: reply ? 'syn_reply' : 'headers', streamId: id, fin, headerBlock: block } as const,
      wire: reply ? encodeSynReply(id, block, fin) : encodeHeaders(id, block, fin),
    })),
  fc.record({ id: streamId, status: u32 }).map(({ id, status }) => ({
    frame: { type: 'rst_stream', streamId: id, status } as const,
    wire: encodeRstStream(id, status),
  })),
  fc
    .record({
      clear: fc.boolean(),
      entries: fc.array(
        fc.record({
          flags: fc.integer({ min: 0, max: 255 }),
          id: fc.integer({ min: 0, max: 0xffffff }),
          value: u32,
        }),
        { maxLength: 5 },
      ),
    })
    .map(({ clear, entries }) => ({
      frame: { type: 'settings', clear, entries } as const,
      wire: encodeSettings(entries, clear),
    })),
  u32.map((id) => ({ frame: { type: 'ping', id } as const, wire: encodePing(id) })),
  fc.record({ last: u31, status: u32 }).map(({ last, status }) => ({
    frame: { type: 'goaway', lastGoodStreamId: last, status } as const,
    wire: encodeGoAway(last, status),
  })),
  fc.record({ id: u31, delta: u31 }).map(({ id, delta }) => ({
    frame: { type: 'window_update', streamId: id, delta } as const,
    wire: encodeWindowUpdate(id, delta),
  })),
);

/** Frames as plain JSON (Buffers as byte arrays), for deepEqual. */
function plain(frames: readonly SpdyFrame[]): unknown {
  return JSON.parse(JSON.stringify(frames));
}

function decodeChunks(chunks: readonly Buffer[], maxFrameBytes?: number): SpdyFrame[] {
  const d = new SpdyFrameDecoder(maxFrameBytes === undefined ? {} : { maxFrameBytes });
  return chunks.flatMap((c) => d.push(c));
}

describe('SPDY frame decoder', () => {
  it('decodes what the encoders write, however the bytes are split', () => {
    fc.assert(
      fc.property(
        fc.array(frameArb, { minLength: 1, maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        (frames, cuts) => {
          const wire = Buffer.concat(frames.map((f) => f.wire));
          const chunks = splitAt(wire, cuts);
          assert.deepEqual(plain(decodeChunks(chunks)), plain(frames.map((f) => f.frame)));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('gives the same frames for a split at every byte boundary', () => {
    const sample = fc.sample(fc.array(frameArb, { minLength: 3, maxLength: 3 }), { numRuns: 1, seed: 7 })[0]!;
    const wire = Buffer.concat(sample.map((f) => f.wire));
    const expected = plain(sample.map((f) => f.frame));
    for (let i = 0; i <= wire.length; i++) {
      assert.deepEqual(
        plain(decodeChunks([wire.subarray(0, i), wire.subarray(i)])),
        expected,
        `split at ${i}`,
      );
    }
    // One byte at a time, too.
    assert.deepEqual(plain(decodeChunks([...wire].map((b) => Buffer.from([b])))), expected);
  });

  it('never crashes or hangs on random bytes: frames, or SpdyFrameError', () => {
    fc.assert(
      fc.property(fc.array(bytes(64), { maxLength: 10 }), (chunks) => {
        const d = new SpdyFrameDecoder({ maxFrameBytes: 4096 });
        try {
          for (const c of chunks) d.push(c);
        } catch (err) {
          assert.ok(err instanceof SpdyFrameError, String(err));
          // Once broken, it stays broken.
          assert.throws(() => d.push(Buffer.from([0])), SpdyFrameError);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('refuses a frame larger than the limit as soon as the header says so', () => {
    const d = new SpdyFrameDecoder({ maxFrameBytes: 1024 });
    const header = encodeDataFrame(1, Buffer.alloc(1025)).subarray(0, 8);
    assert.throws(() => d.push(header), /larger than the 1024 allowed/);
  });

  it('refuses malformed control frames the way spdystream does', () => {
    const bad = (wire: Buffer, pattern: RegExp) => assert.throws(() => decodeChunks([wire]), pattern);
    bad(encodeDataFrame(0, Buffer.from('x')), /stream 0/);
    bad(encodeRstStream(0, 5), /stream 0/);
    const v2 = encodePing(1);
    v2.writeUInt16BE(0x8002, 0);
    bad(v2, /version 2/);
    bad(Buffer.from([0x80, 3, 0, 6, 0, 0, 0, 3, 0, 0, 1]), /PING of 3 bytes/);
    const settings = encodeSettings([{ flags: 0, id: 7, value: 1 }]);
    settings.writeUInt32BE(2, 8); // says 2 entries, carries 1
    bad(settings, /SETTINGS of 12 bytes for 2 entries/);
  });

  it('skips control frames of unknown types', () => {
    const unknown = Buffer.from([0x80, 3, 0, 10, 0, 0, 0, 2, 0xab, 0xcd]);
    assert.deepEqual(plain(decodeChunks([unknown, encodePing(3)])), [{ type: 'ping', id: 3 }]);
  });
});

describe('SPDY header blocks', () => {
  it('uses the SPDY/3 dictionary, byte for byte (1423 bytes, sha256 pinned from the spec)', () => {
    assert.equal(SPDY3_HEADER_DICTIONARY.length, 1423);
    assert.equal(
      createHash('sha256').update(SPDY3_HEADER_DICTIONARY).digest('hex'),
      '51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02',
    );
  });

  const headerArb = fc.uniqueArray(
    fc.tuple(
      fc.stringMatching(/^[a-z][a-z0-9-]{0,15}$/),
      fc.array(fc.string({ unit: fc.constantFrom(...'abcXYZ019 :/._-'.split('')), maxLength: 20 }), {
        minLength: 1,
        maxLength: 3,
      }),
    ),
    { selector: ([name]) => name, maxLength: 6 },
  );

  /** A continuous zlib stream with the dictionary, flushed per block, as Go's compress/zlib in spdystream. */
  async function continuousDeflate(blocks: readonly Buffer[]): Promise<Buffer[]> {
    const z = createDeflate({ dictionary: SPDY3_HEADER_DICTIONARY, level: 9 });
    const out: Buffer[] = [];
    for (const b of blocks) {
      const parts: Buffer[] = [];
      const onData = (c: Buffer) => parts.push(c);
      z.on('data', onData);
      z.write(b);
      await new Promise<void>((r) => z.flush(constants.Z_SYNC_FLUSH, () => r()));
      await new Promise((r) => setImmediate(r));
      z.off('data', onData);
      out.push(Buffer.concat(parts));
    }
    z.close();
    return out;
  }

  it('inflates blocks compressed by one continuous zlib stream (as a Go peer sends them)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(headerArb, { minLength: 1, maxLength: 6 }), async (blocks) => {
        const raw = blocks.map((h) => serializeHeaderBlock(h));
        const compressed = await continuousDeflate(raw);
        const inflater = new SpdyHeaderInflater();
        for (const [i, c] of compressed.entries()) {
          assert.deepEqual(inflater.decode(c), new Map(blocks[i]!.map(([k, v]) => [k, v])));
        }
      }),
      { numRuns: 60 },
    );
  });

  it('deflates blocks that one continuous zlib stream inflates (as a Go peer reads them)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(headerArb, { minLength: 1, maxLength: 6 }), async (blocks) => {
        const deflater = new SpdyHeaderDeflater();
        const wire = Buffer.concat(blocks.map((h) => deflater.encode(h)));
        const z = createInflate({ dictionary: SPDY3_HEADER_DICTIONARY });
        const parts: Buffer[] = [];
        z.on('data', (c: Buffer) => parts.push(c));
        z.write(wire);
        await new Promise<void>((r) => z.flush(constants.Z_SYNC_FLUSH, () => r()));
        await new Promise((r) => setImmediate(r));
        z.close();
        assert.deepEqual(Buffer.concat(parts), Buffer.concat(blocks.map((h) => serializeHeaderBlock(h))));
      }),
      { numRuns: 60 },
    );
  });

  it('keeps the window across more than 32 KiB of headers', () => {
    const deflater = new SpdyHeaderDeflater();
    const inflater = new SpdyHeaderInflater();
    for (let i = 0; i < 200; i++) {
      const headers: [string, string][] = [
        ['streamtype', i % 2 ? 'data' : 'error'],
        ['port', String(8000 + i)],
        ['requestid', String(i)],
        ['padding', 'x'.repeat(200 + i)],
      ];
      assert.deepEqual(inflater.decode(deflater.encode(headers)), new Map(headers.map(([k, v]) => [k, [v]])));
    }
  });

  it('refuses bad blocks with SpdyHeaderError', () => {
    assert.throws(() => parseHeaderBlock(Buffer.from([0, 0, 0, 1, 0, 0, 0, 1])), SpdyHeaderError);
    assert.throws(
      () => parseHeaderBlock(serializeHeaderBlock([['a', 'b']]).fill(0x41, 8, 9)),
      /not lowercase/,
    );
    const dup = Buffer.concat([
      Buffer.from([0, 0, 0, 2]),
      serializeHeaderBlock([['a', 'b']]).subarray(4),
      serializeHeaderBlock([['a', 'c']]).subarray(4),
    ]);
    assert.throws(() => parseHeaderBlock(dup), /appears twice/);
    assert.throws(() => new SpdyHeaderInflater().decode(Buffer.from([0x78, 0x9c, 0xff])), SpdyHeaderError);
    assert.throws(() => new SpdyHeaderInflater().decode(Buffer.from([0x12, 0x34])), /zlib header/);
  });

  it('never crashes on random header blocks: headers, or SpdyHeaderError', () => {
    fc.assert(
      fc.property(fc.array(bytes(80), { minLength: 1, maxLength: 4 }), (blocks) => {
        const inflater = new SpdyHeaderInflater();
        try {
          // A valid zlib header first, so the random part reaches the inflater.
          for (const [i, b] of blocks.entries()) {
            inflater.decode(i === 0 ? Buffer.concat([Buffer.from([0x78, 0x9c]), b]) : b);
          }
        } catch (err) {
          assert.ok(err instanceof SpdyHeaderError, String(err));
        }
      }),
      { numRuns: 1000 },
    );
  });
});
