// The WebSocket frame decoder: every split of a frame stream decodes to the
// same messages, random bytes end in a protocol error or nothing (never a
// crash or a hang), and each RFC 6455 rule the decoder enforces is tried.
// Interoperability with another implementation (the ws package, on both
// sides of a session) is in session.test.ts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { bytes, splitAt } from '../http1/test-streams.ts';
import { FrameDecoder, OPCODE, type WebSocketMessage, WebSocketProtocolError } from './frame-decoder.ts';
import { closePayload, encodeFrame, type Opcode } from './frame-encoder.ts';

/** One frame's bytes; `fin` false leaves the message open (RFC 6455 §5.4). */
function frame(opcode: Opcode, payload: Buffer, masked: boolean, fin = true): Buffer {
  const out = Buffer.concat(encodeFrame(opcode, payload, masked));
  if (!fin) out[0] = (out[0] as number) & 0x7f;
  return out;
}

interface Msg {
  readonly kind: 'data' | 'ping';
  readonly text: boolean;
  readonly payload: Buffer;
  /** Fragment sizes (data messages). */
  readonly cuts: readonly number[];
}

/** A message as frames: data split into fragments at the cuts. */
function frames(m: Msg, masked: boolean): Buffer[] {
  if (m.kind === 'ping') return [frame(OPCODE.ping, m.payload.subarray(0, 125), masked)];
  const points = [...new Set(m.cuts.map((c) => c % (m.payload.length + 1)))].sort((a, b) => a - b);
  const parts = splitAt(m.payload, points).filter((p, i) => i === 0 || p.length > 0);
  return parts.map((p, i) => {
    const op = i === 0 ? (m.text ? OPCODE.text : OPCODE.binary) : OPCODE.continuation;
    return frame(op, p, masked, i === parts.length - 1);
  });
}

function expected(m: Msg): WebSocketMessage {
  if (m.kind === 'ping') return { type: 'ping', data: m.payload.subarray(0, 125) };
  return { type: m.text ? 'text' : 'binary', data: m.payload };
}

const message: fc.Arbitrary<Msg> = fc.oneof(
  fc.record({
    kind: fc.constant('data' as const),
    text: fc.constant(false),
    payload: fc.oneof(bytes(200), bytes(70_000)),
    cuts: fc.array(fc.nat(), { maxLength: 3 }),
  }),
  fc.record({
    kind: fc.constant('data' as const),
    text: fc.constant(true),
    payload: fc.string({ maxLength: 300 }).map((s) => Buffer.from(s.toWellFormed(), 'utf8')),
    // Fragments may split a character: only the whole message must be UTF-8 (RFC 6455 §8.1).
    cuts: fc.array(fc.nat(), { maxLength: 3 }),
  }),
  fc.record({
    kind: fc.constant('ping' as const),
    text: fc.constant(false),
    payload: bytes(125),
    cuts: fc.constant([]),
  }),
);

function decodeAll(role: 'server' | 'client', chunks: Buffer[], max = 1 << 20): WebSocketMessage[] {
  const d = new FrameDecoder({ role, maxMessageBytes: max });
  const out: WebSocketMessage[] = [];
  for (const c of chunks) out.push(...d.push(c));
  return out;
}

const plain = (ms: WebSocketMessage[]) =>
  ms.map((m) => ('data' in m ? { type: m.type, data: Buffer.from(m.data).toString('hex') } : m));

describe('FrameDecoder', () => {
  it('decodes the same messages however the stream is split (masked client frames, unmasked server frames)', () => {
    fc.assert(
      fc.property(
        fc.array(message, { maxLength: 5 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        fc.boolean(),
        (msgs, points, fromClient) => {
          const stream = Buffer.concat(msgs.flatMap((m) => frames(m, fromClient)));
          const role = fromClient ? 'server' : 'client';
          const got = decodeAll(role, splitAt(stream, points));
          assert.deepEqual(plain(got), plain(msgs.map(expected)));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('decodes the same at every byte boundary, a control frame between fragments included', () => {
    const stream = Buffer.concat([
      frame(OPCODE.binary, Buffer.from('\x01hel'), true, false),
      frame(OPCODE.ping, Buffer.from('p'), true),
      frame(OPCODE.continuation, Buffer.from('lo'), true),
      frame(OPCODE.close, closePayload(1000, 'bye'), true),
    ]);
    const want = plain(decodeAll('server', [stream]));
    assert.deepEqual(want, [
      { type: 'ping', data: Buffer.from('p').toString('hex') },
      { type: 'binary', data: Buffer.from('\x01hello').toString('hex') },
      { type: 'close', code: 1000, reason: 'bye' },
    ]);
    for (let i = 0; i <= stream.length; i++) {
      for (let j = i; j <= stream.length; j++) {
        const got = decodeAll('server', [stream.subarray(0, i), stream.subarray(i, j), stream.subarray(j)]);
        assert.deepEqual(plain(got), want, `split at ${i}, ${j}`);
      }
    }
  });

  it('random bytes give messages or a WebSocketProtocolError, never another error or a hang, and hold little', () => {
    fc.assert(
      fc.property(bytes(400), fc.array(fc.nat(), { maxLength: 6 }), fc.boolean(), (buf, points, server) => {
        const d = new FrameDecoder({ role: server ? 'server' : 'client', maxMessageBytes: 1024 });
        try {
          for (const c of splitAt(buf, points)) d.push(c);
        } catch (err) {
          assert.ok(err instanceof WebSocketProtocolError, String(err));
          // A failed decoder stays failed.
          assert.throws(() => d.push(Buffer.from([0x82, 0x80, 0, 0, 0, 0])), WebSocketProtocolError);
          return;
        }
        // Never more than a message's worth plus a header is held.
        assert.ok(d.buffered <= 1024 + 14, `${d.buffered} bytes held`);
      }),
      { numRuns: 2000 },
    );
  });

  const violations: [string, Buffer, 'server' | 'client', number, RegExp][] = [
    ['an unmasked client frame', frame(OPCODE.binary, Buffer.from('x'), false), 'server', 1002, /not masked/],
    ['a masked server frame', frame(OPCODE.binary, Buffer.from('x'), true), 'client', 1002, /is masked/],
    ['RSV1 set', Buffer.from([0xc2, 0x00]), 'client', 1002, /RSV/],
    ['a reserved data opcode', Buffer.from([0x83, 0x00]), 'client', 1002, /reserved data opcode/],
    ['a reserved control opcode', Buffer.from([0x8b, 0x00]), 'client', 1002, /reserved control opcode/],
    ['a fragmented ping', Buffer.from([0x09, 0x00]), 'client', 1002, /fragmented/],
    ['a ping of 126 bytes', frame(OPCODE.ping, Buffer.alloc(126), false), 'client', 1002, /125/],
    ['a continuation with nothing to continue', Buffer.from([0x80, 0x00]), 'client', 1002, /no message/],
    [
      'a new message inside a fragmented one',
      Buffer.concat([
        frame(OPCODE.binary, Buffer.from('a'), false, false),
        frame(OPCODE.text, Buffer.from('b'), false),
      ]),
      'client',
      1002,
      /before the fragmented one/,
    ],
    [
      'a 64-bit length with its top bit set',
      Buffer.from([0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0]),
      'client',
      1002,
      /most significant/,
    ],
    [
      'a message over the limit',
      frame(OPCODE.binary, Buffer.alloc(2000), false),
      'client',
      1009,
      /larger than the limit/,
    ],
    [
      'fragments over the limit together',
      Buffer.concat([
        frame(OPCODE.binary, Buffer.alloc(600), false, false),
        frame(OPCODE.continuation, Buffer.alloc(600), false),
      ]),
      'client',
      1009,
      /larger than the limit/,
    ],
    [
      'a huge declared length',
      Buffer.from([0x82, 0x7f, 0, 0, 0x10, 0, 0, 0, 0, 0]),
      'client',
      1009,
      /larger than the limit/,
    ],
    [
      'a text message that is not UTF-8',
      frame(OPCODE.text, Buffer.from([0xc3, 0x28]), false),
      'client',
      1007,
      /UTF-8/,
    ],
    ['a 1-byte close payload', frame(OPCODE.close, Buffer.from([3]), false), 'client', 1002, /1-byte/],
    [
      'close code 1005',
      frame(OPCODE.close, closePayload(1005), false),
      'client',
      1002,
      /invalid status code/,
    ],
    ['close code 999', frame(OPCODE.close, closePayload(999), false), 'client', 1002, /invalid status code/],
    [
      'a close reason that is not UTF-8',
      frame(OPCODE.close, Buffer.from([3, 232, 0xff]), false),
      'client',
      1007,
      /UTF-8/,
    ],
  ];
  for (const [name, input, role, code, message] of violations) {
    it(`fails on ${name} with close code ${code}`, () => {
      const d = new FrameDecoder({ role, maxMessageBytes: 1024 });
      assert.throws(
        () => d.push(input),
        (err: unknown) =>
          err instanceof WebSocketProtocolError && err.closeCode === code && message.test(err.message),
      );
    });
  }

  it('reads an empty close frame as a close without a code, and control frames of exactly 125 bytes', () => {
    const got = decodeAll('client', [
      frame(OPCODE.pong, Buffer.alloc(125, 7), false),
      frame(OPCODE.close, Buffer.alloc(0), false),
    ]);
    assert.deepEqual(plain(got), [
      { type: 'pong', data: Buffer.alloc(125, 7).toString('hex') },
      { type: 'close', reason: '' },
    ]);
  });

  it('hands out an unmasked payload that arrived in one chunk without copying it', () => {
    const payload = Buffer.alloc(5000, 1);
    const stream = frame(OPCODE.binary, payload, false);
    const [m] = decodeAll('client', [stream]);
    assert.ok(m && 'data' in m);
    // A view of the input: writing through it shows in the input (breaks if the decoder copies).
    m.data[0] = 9;
    assert.equal(stream[4], 9);
  });

  it('never writes to its input when unmasking', () => {
    const stream = frame(OPCODE.binary, Buffer.from('secret'), true);
    const copy = Buffer.from(stream);
    decodeAll('server', [stream]);
    assert.deepEqual(stream, copy);
  });
});

describe('encodeFrame with a leading byte (a channel number)', () => {
  // Fails if the lead byte is left out of the length, or put after the payload.
  it('decodes to the byte followed by the payload, masked or not, at every length class', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(0, 1, 124, 125, 126, 65_534, 65_535, 70_000),
        fc.integer({ min: 0, max: 255 }),
        fc.boolean(),
        (n, lead, masked) => {
          const payload = Buffer.alloc(n, 0x61);
          const d = new FrameDecoder({ role: masked ? 'server' : 'client', maxMessageBytes: 1 << 20 });
          const got = d.push(Buffer.concat(encodeFrame(OPCODE.binary, payload, masked, lead)));
          assert.equal(got.length, 1);
          assert.deepEqual(got[0], { type: 'binary', data: Buffer.concat([Buffer.of(lead), payload]) });
        },
      ),
      { numRuns: 60 },
    );
  });
});
