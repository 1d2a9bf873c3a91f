// Header blocks against a real zlib stream on the other end: what a peer's
// compressor writes (blocks referring back into earlier ones and the
// dictionary) the reader inflates block by block, and what the writer writes a
// peer's continuous inflater reads, in order, from the first block on.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { SPDY3_DICTIONARY } from './spdy-dictionary.ts';
import { SpdyProtocolError } from './spdy-frame-decoder.ts';
import {
  HeaderBlockReader,
  HeaderBlockWriter,
  headerValue,
  readHeaderPairs,
  writeHeaderPairs,
} from './spdy-header-codec.ts';
import { PeerDeflater, PeerInflater, streamHeaders } from './test-spdy.ts';

const pairs = fc
  .array(
    fc.tuple(
      fc.stringMatching(/^[a-z][a-z0-9-]{0,15}$/),
      fc.string({
        unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
        maxLength: 200,
      }),
    ),
    { maxLength: 6 },
  )
  .map((list) => [...new Map(list)] as [string, string][]);

describe('SPDY header blocks', () => {
  it('the dictionary is the one the spec gives (length and Adler-32 checked by zlib)', async () => {
    assert.equal(SPDY3_DICTIONARY.length, 1423);
    assert.equal(SPDY3_DICTIONARY.subarray(0, 11).toString('latin1'), '\0\0\0\x07options');
    assert.ok(SPDY3_DICTIONARY.toString('latin1').endsWith('enq=0.'));
    // zlib checks the dictionary's Adler-32 against the one a writer's header names.
    const writer = new HeaderBlockWriter();
    const peer = new PeerInflater();
    assert.deepEqual(await peer.block(writer.deflate(writeHeaderPairs([['a', 'b']]))), [['a', 'b']]);
    peer.close();
  });

  it("reads a peer's blocks in order, each referring back into the ones before", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(pairs, { minLength: 1, maxLength: 6 }), async (blocks) => {
        const peer = new PeerDeflater();
        const reader = new HeaderBlockReader();
        try {
          for (const b of blocks) {
            const compressed = await peer.block(b);
            assert.deepEqual(readHeaderPairs(reader.inflate(compressed)), b);
          }
        } finally {
          peer.close();
        }
      }),
      { numRuns: 60 },
    );
  });

  it("writes blocks a peer's continuous inflater reads", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(pairs, { minLength: 1, maxLength: 6 }), async (blocks) => {
        const writer = new HeaderBlockWriter();
        const peer = new PeerInflater();
        try {
          for (const b of blocks) assert.deepEqual(await peer.block(writer.deflate(writeHeaderPairs(b))), b);
        } finally {
          peer.close();
        }
      }),
      { numRuns: 60 },
    );
  });

  it('a block over 64 KiB (several stored blocks) reads back whole', async () => {
    const big: [string, string][] = [['x', 'y'.repeat(150_000)]];
    const peer = new PeerInflater();
    assert.deepEqual(await peer.block(new HeaderBlockWriter().deflate(writeHeaderPairs(big))), big);
    peer.close();
  });

  it('a block that does not inflate in the context is a protocol error', async () => {
    const peer = new PeerDeflater();
    const first = await peer.block(streamHeaders('error', '80', 0));
    const second = await peer.block(streamHeaders('data', '80', 0));
    peer.close();
    // The second block alone, in a fresh context: it refers back into the first (or lacks the zlib header).
    assert.throws(() => new HeaderBlockReader().inflate(second), SpdyProtocolError);
    const r = new HeaderBlockReader();
    r.inflate(first);
    assert.throws(() => r.inflate(Buffer.from([0xff, 0xff, 0xff])), SpdyProtocolError);
  });

  it('reads header pairs strictly, and a value as the kubelet does', () => {
    const ok = readHeaderPairs(
      writeHeaderPairs([
        ['port', '8080\u00009090'],
        ['streamtype', 'data'],
      ]),
    );
    assert.equal(headerValue(ok, 'port'), '8080');
    assert.equal(headerValue(ok, 'requestid'), undefined);
    for (const [what, raw] of [
      ['upper-case name', writeHeaderPairs([['Port', '80']])],
      [
        'name twice',
        writeHeaderPairs([
          ['port', '80'],
          ['port', '22'],
        ]),
      ],
      ['empty name', writeHeaderPairs([['', '80']])],
      ['trailing bytes', Buffer.concat([writeHeaderPairs([['port', '80']]), Buffer.from([0])])],
      ['count too large', Buffer.from([0, 0, 0, 9, 0, 0, 0, 0])],
      ['truncated', writeHeaderPairs([['port', '80']]).subarray(0, 12)],
    ] as const) {
      assert.throws(() => readHeaderPairs(raw), SpdyProtocolError, what);
    }
  });
});
