import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { splitAt } from '../kube/http1/test-streams.ts';
import * as enc from './encode.ts';
import { FrontendDecoder, type FrontendMessage } from './frontend-decoder.ts';
import { CANCEL_REQUEST_CODE, GSSENC_REQUEST_CODE, ProtocolError } from './protocol.ts';
import { assertRandomBodiesDecodeOrRefuse } from './test-decoding.ts';

const MAX = 1 << 20;
const decoder = () => new FrontendDecoder({ maxMessageBytes: MAX });

function decodeAll(chunks: readonly Buffer[]): FrontendMessage[] {
  const d = decoder();
  return chunks.flatMap((c) => d.push(c));
}

const gssenc = () => {
  const b = Buffer.alloc(8);
  b.writeInt32BE(8, 0);
  b.writeInt32BE(GSSENC_REQUEST_CODE, 4);
  return b;
};

const startup = enc.startupMessage([
  ['user', 'agent'],
  ['database', 'orders'],
  ['application_name', 'psql'],
]);

/** A session as a client would send it: startup negotiation, then one of every typed message. */
const SESSION = Buffer.concat([
  enc.sslRequest(),
  gssenc(),
  startup,
  enc.query('SELECT 1; DROP TABLE x'),
  enc.parse('s1', 'SELECT $1::int', [23]),
  enc.bind('p1', 's1', [Buffer.from('42'), null], [1]),
  enc.describe('P', 'p1'),
  enc.execute('p1', 10),
  enc.flush(),
  enc.sync(),
  enc.close('S', 's1'),
  enc.copyData(Buffer.from('1\tone\n')),
  enc.copyDone(),
  Buffer.from([0x66, 0, 0, 0, 9, 0x6e, 0x6f, 0x70, 0x65, 0]), // CopyFail "nope"
  Buffer.from([0x46, 0, 0, 0, 18, 0, 0, 0x0b, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]), // FunctionCall oid 3000, one empty arg
  enc.passwordMessage('secret'),
  enc.terminate(),
]);

describe('FrontendDecoder', () => {
  it('reads startup negotiation and every typed message', () => {
    const msgs = decodeAll([SESSION]);
    assert.deepEqual(
      msgs.map((m) => m.type),
      [
        'SSLRequest',
        'GSSENCRequest',
        'StartupMessage',
        'Query',
        'Parse',
        'Bind',
        'Describe',
        'Execute',
        'Flush',
        'Sync',
        'Close',
        'CopyData',
        'CopyDone',
        'CopyFail',
        'FunctionCall',
        'AuthenticationResponse',
        'Terminate',
      ],
    );
    const s = msgs[2] as Extract<FrontendMessage, { type: 'StartupMessage' }>;
    assert.equal(s.protocol, 196608);
    assert.deepEqual(
      [...s.parameters],
      [
        ['user', 'agent'],
        ['database', 'orders'],
        ['application_name', 'psql'],
      ],
    );
    assert.deepEqual(msgs[3], {
      type: 'Query',
      query: 'SELECT 1; DROP TABLE x',
      raw: enc.query('SELECT 1; DROP TABLE x'),
    });
    const p = msgs[4] as Extract<FrontendMessage, { type: 'Parse' }>;
    assert.deepEqual([p.name, p.query, p.paramTypes], ['s1', 'SELECT $1::int', [23]]);
    const b = msgs[5] as Extract<FrontendMessage, { type: 'Bind' }>;
    assert.deepEqual(
      [b.portal, b.statement, b.params, b.resultFormats],
      ['p1', 's1', [Buffer.from('42'), null], [1]],
    );
    const e = msgs[7] as Extract<FrontendMessage, { type: 'Execute' }>;
    assert.deepEqual([e.portal, e.maxRows], ['p1', 10]);
    assert.equal((msgs[14] as Extract<FrontendMessage, { type: 'FunctionCall' }>).functionOid, 3000);
    // The raw bytes of every message, back to back, are the stream itself.
    assert.deepEqual(Buffer.concat(msgs.map((m) => m.raw)), SESSION);
  });

  it('gives the same messages for a split at every byte boundary', () => {
    const whole = decodeAll([SESSION]);
    for (let i = 0; i <= SESSION.length; i++) {
      assert.deepEqual(decodeAll([SESSION.subarray(0, i), SESSION.subarray(i)]), whole, `split at ${i}`);
    }
  });

  it('gives the same messages for any split into many chunks (property)', () => {
    const whole = decodeAll([SESSION]);
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 40 }), (cuts) => {
        assert.deepEqual(decodeAll(splitAt(SESSION, [...cuts])), whole);
      }),
      { numRuns: 300 },
    );
  });

  it('reads a CancelRequest and refuses anything after it', () => {
    const key = Buffer.from([1, 2, 3, 4]);
    const cancel = enc.cancelRequest(4242, key);
    const [m] = decodeAll([cancel]);
    assert.deepEqual(m, { type: 'CancelRequest', processId: 4242, secretKey: key, raw: cancel });
    assert.equal(cancel.readInt32BE(4), CANCEL_REQUEST_CODE);
    assert.throws(() => decodeAll([cancel, Buffer.from([0])]), ProtocolError);
  });

  it('stops at a TLS ClientHello and leaves its bytes for TLS', () => {
    const d = decoder();
    const hello = Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]);
    assert.deepEqual(
      d.push(hello).map((m) => m.type),
      ['TlsClientHello'],
    );
    assert.deepEqual(d.push(Buffer.from([9])), []);
    assert.deepEqual(d.takeBuffered(), Buffer.concat([hello, Buffer.from([9])]));
  });

  it('refuses what is not the protocol, with a reason', () => {
    const bad: [string, Buffer[]][] = [
      ['startup too long', [Buffer.from([0, 1, 0, 0, 0, 3, 0, 0])]],
      ['startup too short', [Buffer.from([0, 0, 0, 4, 0, 3, 0, 0])]],
      ['protocol 2', [enc.startupMessage([['user', 'a']], 2 << 16)]],
      ['startup without terminator', [Buffer.from([0, 0, 0, 10, 0, 3, 0, 0, 0x61, 0])]],
      ['unknown type', [startup, Buffer.from([0x5a, 0, 0, 0, 4])]],
      ['length below 4', [startup, Buffer.from([0x51, 0, 0, 0, 3])]],
      ['query without terminator', [startup, Buffer.from([0x51, 0, 0, 0, 5, 0x61])]],
      ['sync with a body', [startup, Buffer.from([0x53, 0, 0, 0, 5, 0])]],
      [
        'bind with negative length',
        [startup, Buffer.from([0x42, 0, 0, 0, 14, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xfe])],
      ],
      ['describe with a bad target', [startup, Buffer.from([0x44, 0, 0, 0, 6, 0x58, 0])]],
      [
        'duplicate startup parameter',
        [
          enc.startupMessage([
            ['user', 'a'],
            ['user', 'b'],
          ]),
        ],
      ],
    ];
    for (const [what, chunks] of bad) assert.throws(() => decodeAll(chunks), ProtocolError, what);
  });

  it('refuses a message over the size limit as soon as its length is known', () => {
    const d = new FrontendDecoder({ maxMessageBytes: 100 });
    d.push(startup);
    // Only the header has arrived: the decoder does not wait for (or buffer) the rest.
    assert.throws(() => d.push(Buffer.from([0x51, 0, 0, 0, 200])), /over the limit of 100 bytes/);
  });

  it('never crashes or hangs on random bytes: messages or a ProtocolError', () => {
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.uint8Array({ maxLength: 300 }),
        fc.array(fc.nat(), { maxLength: 5 }),
        (afterStartup, bytes, cuts) => {
          const d = new FrontendDecoder({ maxMessageBytes: 4096 });
          const input = afterStartup ? Buffer.concat([startup, Buffer.from(bytes)]) : Buffer.from(bytes);
          try {
            for (const c of splitAt(input, [...cuts])) d.push(c);
          } catch (err) {
            assert.ok(err instanceof ProtocolError, String(err));
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('never crashes on well-framed messages of every type with random bodies', () => {
    assertRandomBodiesDecodeOrRefuse('QPBDESHCXFdcfp', (input) => decodeAll([input]), startup);
  });
});
