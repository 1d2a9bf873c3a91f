// The SPDY frame decoder: every split of a frame stream gives the same
// frames (data payloads joined), random bytes end in a protocol error or
// partial state (never a crash or a hang), and the bounds hold.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { bytes, splitAt } from '../http1/test-streams.ts';
import { SpdyFrameDecoder, type SpdyPart, SpdyProtocolError } from './spdy-frame-decoder.ts';
import { dataFrame, rstStreamFrame, streamHeadersFrame, TYPE, windowUpdateFrame } from './spdy-frames.ts';

type Frame =
  | { kind: 'control'; raw: Buffer }
  | { kind: 'data'; streamId: number; flags: number; payload: Buffer };

const frame: fc.Arbitrary<Frame> = fc.oneof(
  fc
    .record({
      id: fc.integer({ min: 1, max: 0x7fffffff }),
      fin: fc.boolean(),
      payload: fc.oneof(bytes(40), bytes(5000)),
    })
    .map(({ id, fin, payload }) => ({ kind: 'data' as const, streamId: id, flags: fin ? 1 : 0, payload })),
  fc.record({ id: fc.integer({ min: 1, max: 1000 }), block: bytes(300) }).map(({ id, block }) => ({
    kind: 'control' as const,
    raw: streamHeadersFrame(TYPE.synReply, 0, id, block),
  })),
  fc
    .record({ id: fc.nat(1000), v: fc.integer({ min: 1, max: 0x7fffffff }) })
    .map(({ id, v }) => ({ kind: 'control' as const, raw: windowUpdateFrame(id, v) })),
  fc.nat(1000).map((id) => ({ kind: 'control' as const, raw: rstStreamFrame(id + 1, 5) })),
);

function encode(f: Frame): Buffer {
  return f.kind === 'control' ? f.raw : dataFrame(f.streamId, f.flags, f.payload);
}

/** Joins the parts back into frames, checking data pieces follow their head. */
function join(parts: SpdyPart[]): Frame[] {
  const out: Frame[] = [];
  let open: { streamId: number; flags: number; pieces: Buffer[]; left: number } | undefined;
  for (const p of parts) {
    if (p.kind === 'data') {
      assert.ok(open && open.streamId === p.streamId, 'a data piece without its head');
      open.pieces.push(Buffer.from(p.data));
      open.left -= p.data.length;
      assert.ok(open.left >= 0);
      if (open.left === 0) {
        out.push({
          kind: 'data',
          streamId: open.streamId,
          flags: open.flags,
          payload: Buffer.concat(open.pieces),
        });
        open = undefined;
      }
      continue;
    }
    assert.equal(open, undefined, 'a frame started inside a data frame');
    if (p.kind === 'control') out.push({ kind: 'control', raw: Buffer.from(p.raw) });
    else if (p.length === 0)
      out.push({ kind: 'data', streamId: p.streamId, flags: p.flags, payload: Buffer.alloc(0) });
    else open = { streamId: p.streamId, flags: p.flags, pieces: [], left: p.length };
  }
  return out;
}

describe('SPDY frame decoder', () => {
  it('decodes the same frames however the bytes are split', () => {
    fc.assert(
      fc.property(
        fc.array(frame, { maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        (frames, cuts) => {
          const stream = Buffer.concat(frames.map(encode));
          const d = new SpdyFrameDecoder({ maxControlFrameBytes: 4096 });
          const parts: SpdyPart[] = [];
          for (const piece of splitAt(stream, cuts)) parts.push(...d.push(piece));
          assert.deepEqual(join(parts), frames);
          assert.equal(d.idle, true);
          assert.equal(d.buffered, 0);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('byte by byte too, holding at most a header or one control frame', () => {
    const frames: Frame[] = [
      { kind: 'control', raw: streamHeadersFrame(TYPE.synReply, 0, 1, Buffer.alloc(100, 7)) },
      { kind: 'data', streamId: 1, flags: 1, payload: Buffer.alloc(300, 1) },
    ];
    const stream = Buffer.concat(frames.map(encode));
    const d = new SpdyFrameDecoder({ maxControlFrameBytes: 4096 });
    const parts: SpdyPart[] = [];
    for (let i = 0; i < stream.length; i++) {
      parts.push(...d.push(stream.subarray(i, i + 1)));
      assert.ok(d.buffered <= 112, `${d.buffered} bytes held`);
    }
    assert.deepEqual(join(parts), frames);
  });

  it('random bytes never crash or hang it: frames, partial state, or a protocol error', () => {
    fc.assert(
      fc.property(bytes(2000), fc.array(fc.nat(), { maxLength: 6 }), (junk, cuts) => {
        const d = new SpdyFrameDecoder({ maxControlFrameBytes: 1024 });
        try {
          for (const piece of splitAt(junk, cuts)) d.push(piece);
        } catch (err) {
          assert.ok(err instanceof SpdyProtocolError, String(err));
          // Broken for good: the next push throws the same error.
          assert.throws(() => d.push(Buffer.from([0])), SpdyProtocolError);
        }
        assert.ok(d.buffered <= 1024);
      }),
      { numRuns: 500 },
    );
  });

  it('refuses a control frame over the limit as soon as its header says so', () => {
    const d = new SpdyFrameDecoder({ maxControlFrameBytes: 64 });
    const big = streamHeadersFrame(TYPE.synReply, 0, 1, Buffer.alloc(100));
    assert.throws(() => d.push(big.subarray(0, 8)), /larger than the limit of 64/);
  });

  it('refuses other SPDY versions and data on stream 0', () => {
    const v2 = streamHeadersFrame(TYPE.synReply, 0, 1, Buffer.alloc(4));
    v2.writeUInt16BE(0x8002, 0);
    assert.throws(() => new SpdyFrameDecoder({ maxControlFrameBytes: 64 }).push(v2), /version 2/);
    assert.throws(
      () => new SpdyFrameDecoder({ maxControlFrameBytes: 64 }).push(dataFrame(0, 0, Buffer.from('x'))),
      /stream 0/,
    );
  });
});
