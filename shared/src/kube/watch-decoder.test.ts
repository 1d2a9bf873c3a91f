import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ChaperoneError } from '../errors.ts';
import { WatchDecoder, type WatchEvent } from './watch-decoder.ts';

const event = fc.record({
  type: fc.constantFrom('ADDED', 'MODIFIED', 'DELETED', 'BOOKMARK', 'ERROR'),
  object: fc.record({
    metadata: fc.record({ name: fc.string({ unit: 'grapheme' }), resourceVersion: fc.string() }),
    data: fc.dictionary(fc.string(), fc.string({ unit: 'binary' })),
  }),
}) as fc.Arbitrary<WatchEvent>;

function stream(events: readonly WatchEvent[]): Buffer {
  return Buffer.from(events.map((e) => `${JSON.stringify(e)}\n`).join(''));
}

function decodeInChunks(bytes: Uint8Array, cuts: readonly number[], max?: number): WatchEvent[] {
  const d = new WatchDecoder(max);
  const out: WatchEvent[] = [];
  let from = 0;
  for (const cut of [...cuts].sort((a, b) => a - b)) {
    out.push(...d.push(bytes.subarray(from, cut)));
    from = cut;
  }
  out.push(...d.push(bytes.subarray(from)));
  return out;
}

describe('WatchDecoder', () => {
  it('decodes the same events however the stream is split (inside UTF-8 characters too)', () => {
    fc.assert(
      fc.property(fc.array(event, { maxLength: 5 }), fc.array(fc.nat(), { maxLength: 8 }), (events, raw) => {
        const bytes = stream(events);
        const cuts = raw.map((n) => (bytes.length === 0 ? 0 : n % (bytes.length + 1)));
        assert.deepEqual(decodeInChunks(bytes, cuts), JSON.parse(JSON.stringify(events)));
      }),
    );
  });

  it('decodes a sample split at every byte boundary', () => {
    const events: WatchEvent[] = [
      { type: 'ADDED', object: { metadata: { name: 'ä€𝄞', resourceVersion: '1' } } },
      { type: 'BOOKMARK', object: { metadata: { resourceVersion: '2' } } },
    ];
    const bytes = stream(events);
    for (let i = 0; i <= bytes.length; i++)
      assert.deepEqual(decodeInChunks(bytes, [i]), events, `cut at ${i}`);
  });

  it('skips blank lines and CRLF endings, holds a partial event until its newline', () => {
    const d = new WatchDecoder();
    assert.deepEqual(d.push(Buffer.from('\n\r\n{"type":"DELETED","object":{}}\r\n{"type":"ADD')), [
      { type: 'DELETED', object: {} },
    ]);
    assert.equal(d.buffered, '{"type":"ADD'.length);
    assert.deepEqual(d.push(Buffer.from('ED","object":{"a":1}}\n')), [{ type: 'ADDED', object: { a: 1 } }]);
    assert.equal(d.buffered, 0);
  });

  it('refuses a line over the limit before buffering it, and lines that are not watch events', () => {
    const d = new WatchDecoder(16);
    assert.throws(
      () => d.push(Buffer.alloc(17, 0x20)),
      (e: unknown) => e instanceof ChaperoneError && e.code === 'limit_exceeded',
    );
    const e = new WatchDecoder(16);
    e.push(Buffer.alloc(10, 0x20));
    // The limit is on the whole event, across chunks (would pass if only each chunk were checked).
    assert.throws(() => e.push(Buffer.alloc(10, 0x20)), /larger than 16 bytes/);
    for (const bad of [
      '{"type":"ADDED"}',
      '{"type":"NEW","object":{}}',
      '[1]',
      'null',
      '{"type":"ADDED","object":{}',
    ]) {
      assert.throws(
        () => new WatchDecoder().push(Buffer.from(`${bad}\n`)),
        (err: unknown) => err instanceof ChaperoneError && err.code === 'validation_failed',
        bad,
      );
    }
  });

  it('never fails on random bytes other than with its own errors', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 6 }), (chunks) => {
        const d = new WatchDecoder(128);
        try {
          for (const c of chunks) d.push(c);
        } catch (err) {
          assert.ok(err instanceof ChaperoneError, String(err));
        }
      }),
    );
  });
});
