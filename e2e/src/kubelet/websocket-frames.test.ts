// The stand-in kubelet's WebSocket decoder, without a network: messages
// (fragmented, with control frames between the fragments) decode the same
// however the bytes are split; random bytes only ever end in
// WebSocketFrameError; the limits and the masking rule hold.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { splitAt } from './split-bytes.ts';
import {
  encodeWebSocketFrame,
  WebSocketDecoder,
  WebSocketFrameError,
  type WebSocketMessage,
  WS_OPCODE,
} from './websocket-frames.ts';

const mask = fc.uint8Array({ minLength: 4, maxLength: 4 }).map((a) => Buffer.from(a));

/** A message as a client sends it: possibly fragmented, with a ping between fragments. */
const messageArb = fc
  .record({
    text: fc.boolean(),
    payload: fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.uint8Array({ maxLength: 70_000 }).map((a) => Buffer.from(a).toString('latin1')),
    ),
    cuts: fc.array(fc.nat(), { maxLength: 3 }),
    ping: fc.option(
      fc.uint8Array({ maxLength: 125 }).map((a) => Buffer.from(a)),
      { nil: undefined },
    ),
    keys: fc.array(mask, { minLength: 5, maxLength: 5 }),
  })
  .map(({ text, payload, cuts, ping, keys }) => {
    const data = text ? Buffer.from(payload, 'utf8') : Buffer.from(payload, 'latin1');
    const parts = splitAt(data, cuts);
    const frames: Buffer[] = [];
    const expected: WebSocketMessage[] = [];
    parts.forEach((part, i) => {
      const opcode = i === 0 ? (text ? WS_OPCODE.text : WS_OPCODE.binary) : WS_OPCODE.continuation;
      frames.push(encodeWebSocketFrame(opcode, part, { fin: i === parts.length - 1, mask: keys[i % 5]! }));
      if (i === 0 && ping && parts.length > 1) {
        frames.push(encodeWebSocketFrame(WS_OPCODE.ping, ping, { mask: keys[4]! }));
        expected.push({ type: 'ping', data: ping });
      }
    });
    expected.push({ type: text ? 'text' : 'binary', data });
    return { wire: Buffer.concat(frames), expected };
  });

function decodeAll(chunks: readonly Buffer[], maxMessageBytes = 1 << 20): WebSocketMessage[] {
  const d = new WebSocketDecoder({ maxMessageBytes });
  return chunks.flatMap((c) => d.push(c));
}

const plain = (m: readonly WebSocketMessage[]) => JSON.parse(JSON.stringify(m)) as unknown;

describe('WebSocket frame decoder (client frames)', () => {
  it('decodes the same messages however the bytes are split', () => {
    fc.assert(
      fc.property(
        fc.array(messageArb, { minLength: 1, maxLength: 4 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (messages, cuts) => {
          const wire = Buffer.concat(messages.map((m) => m.wire));
          const chunks = splitAt(wire, cuts);
          assert.deepEqual(plain(decodeAll(chunks)), plain(messages.flatMap((m) => m.expected)));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('gives the same messages for a split at every byte boundary', () => {
    const [m] = fc.sample(
      messageArb.filter((x) => x.wire.length < 400 && x.expected.length > 1),
      { numRuns: 1, seed: 3 },
    );
    const expected = plain(m!.expected);
    for (let i = 0; i <= m!.wire.length; i++) {
      assert.deepEqual(
        plain(decodeAll([m!.wire.subarray(0, i), m!.wire.subarray(i)])),
        expected,
        `split at ${i}`,
      );
    }
  });

  it('never crashes or hangs on random bytes: messages, or WebSocketFrameError', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 10 }), (chunks) => {
        const d = new WebSocketDecoder({ maxMessageBytes: 4096 });
        try {
          for (const c of chunks) d.push(Buffer.from(c));
        } catch (err) {
          assert.ok(err instanceof WebSocketFrameError, String(err));
          assert.throws(() => d.push(Buffer.from([0x82])), WebSocketFrameError);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('refuses what RFC 6455 says a server must refuse', () => {
    const key = Buffer.from([1, 2, 3, 4]);
    const refuses = (wire: Buffer, code: number, pattern: RegExp, max = 1 << 20) =>
      assert.throws(
        () => decodeAll([wire], max),
        (err: unknown) =>
          err instanceof WebSocketFrameError && err.closeCode === code && pattern.test(err.message),
      );
    refuses(encodeWebSocketFrame(WS_OPCODE.binary, Buffer.from('x')), 1002, /not masked/);
    refuses(
      encodeWebSocketFrame(WS_OPCODE.binary, Buffer.alloc(2000), { mask: key }).subarray(0, 8),
      1009,
      /larger than 1000/,
      1000,
    );
    refuses(encodeWebSocketFrame(WS_OPCODE.ping, Buffer.alloc(126), { mask: key }), 1002, /more than 125/);
    refuses(
      encodeWebSocketFrame(WS_OPCODE.ping, Buffer.alloc(1), { mask: key, fin: false }),
      1002,
      /fragmented/,
    );
    refuses(
      encodeWebSocketFrame(WS_OPCODE.continuation, Buffer.alloc(1), { mask: key }),
      1002,
      /continuation/,
    );
    refuses(encodeWebSocketFrame(3, Buffer.alloc(1), { mask: key }), 1002, /reserved opcode 3/);
    refuses(encodeWebSocketFrame(WS_OPCODE.text, Buffer.from([0xc3, 0x28]), { mask: key }), 1007, /UTF-8/);
    const rsv = encodeWebSocketFrame(WS_OPCODE.binary, Buffer.alloc(1), { mask: key });
    rsv[0]! |= 0x40;
    refuses(rsv, 1002, /RSV/);
  });

  it('reads close frames with and without a code', () => {
    const key = Buffer.from([9, 8, 7, 6]);
    const withCode = Buffer.concat([Buffer.from([0x03, 0xe8]), Buffer.from('bye')]);
    assert.deepEqual(decodeAll([encodeWebSocketFrame(WS_OPCODE.close, withCode, { mask: key })]), [
      { type: 'close', code: 1000, reason: 'bye' },
    ]);
    assert.deepEqual(decodeAll([encodeWebSocketFrame(WS_OPCODE.close, Buffer.alloc(0), { mask: key })]), [
      { type: 'close', code: undefined, reason: '' },
    ]);
  });
});
