import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { splitAt } from '../kube/http1/test-streams.ts';
import { BackendDecoder, type BackendMessage } from './backend-decoder.ts';
import * as enc from './encode.ts';
import { ProtocolError } from './protocol.ts';
import { assertRandomBodiesDecodeOrRefuse } from './test-decoding.ts';

const decodeAll = (chunks: readonly Buffer[], max = 1 << 20): BackendMessage[] => {
  const d = new BackendDecoder({ maxMessageBytes: max });
  return chunks.flatMap((c) => d.push(c));
};

const sasl = Buffer.from('SCRAM-SHA-256\0SCRAM-SHA-256-PLUS\0\0');
const field = {
  name: 'email',
  tableOid: 16384,
  column: 2,
  typeOid: 25,
  typeSize: -1,
  typeModifier: -1,
  format: 0,
};

/** A server's side of a session: authentication, start-up, a query with rows, copy, notices, every other message. */
const SESSION = Buffer.concat([
  enc.authentication(10, sasl),
  enc.authentication(11, Buffer.from('r=abc,s=c2FsdA==,i=4096')),
  enc.authentication(12, Buffer.from('v=c2lnbmF0dXJl')),
  enc.authentication(5, Buffer.from([1, 2, 3, 4])),
  enc.authentication(3),
  enc.authenticationOk(),
  enc.parameterStatus('client_encoding', 'UTF8'),
  enc.backendKeyData(1234, Buffer.from([9, 8, 7, 6])),
  enc.readyForQuery('I'),
  enc.rowDescription([field, { ...field, name: 'id', column: 1, typeOid: 23, typeSize: 4, format: 1 }]),
  enc.dataRow([Buffer.from('a@example.com'), null]),
  enc.dataRow([Buffer.alloc(0), Buffer.from([0, 0, 0, 1])]),
  enc.commandComplete('SELECT 2'),
  enc.errorMessage('ERROR', '42501', 'permission denied', { detail: 'd', hint: 'h' }),
  enc.noticeResponse({ S: 'NOTICE', V: 'NOTICE', C: '00000', M: 'hello' }),
  enc.emptyMessage('1'),
  enc.emptyMessage('2'),
  enc.emptyMessage('3'),
  enc.emptyMessage('n'),
  enc.emptyMessage('s'),
  enc.emptyMessage('I'),
  Buffer.from([0x74, 0, 0, 0, 10, 0, 1, 0, 0, 0, 23]), // ParameterDescription (int4)
  Buffer.from([0x47, 0, 0, 0, 9, 0, 0, 1, 0, 0]), // CopyInResponse, text, 1 column
  Buffer.from([0x48, 0, 0, 0, 9, 0, 0, 1, 0, 0]), // CopyOutResponse
  Buffer.from([0x57, 0, 0, 0, 7, 1, 0, 0]), // CopyBothResponse, binary, 0 columns
  enc.copyData(Buffer.from('1\tone\n')),
  Buffer.from([0x63, 0, 0, 0, 4]), // CopyDone
  Buffer.from([0x41, 0, 0, 0, 14, 0, 0, 4, 0xd2, 0x63, 0x68, 0, 0x70, 0x6c, 0]), // Notification pid 1234 "ch" "pl"
  Buffer.from([0x56, 0, 0, 0, 8, 0xff, 0xff, 0xff, 0xff]), // FunctionCallResponse NULL
  enc.negotiateProtocolVersion(0, ['_pq_.x']),
  enc.readyForQuery('E'),
]);

describe('BackendDecoder', () => {
  it('reads every backend message', () => {
    const msgs = decodeAll([SESSION]);
    assert.deepEqual(
      msgs.map((m) => (m.type === 'Authentication' ? `R:${m.auth.kind}` : m.type)),
      [
        'R:sasl',
        'R:sasl-continue',
        'R:sasl-final',
        'R:md5-password',
        'R:cleartext-password',
        'R:ok',
        'ParameterStatus',
        'BackendKeyData',
        'ReadyForQuery',
        'RowDescription',
        'DataRow',
        'DataRow',
        'CommandComplete',
        'ErrorResponse',
        'NoticeResponse',
        'ParseComplete',
        'BindComplete',
        'CloseComplete',
        'NoData',
        'PortalSuspended',
        'EmptyQueryResponse',
        'ParameterDescription',
        'CopyInResponse',
        'CopyOutResponse',
        'CopyBothResponse',
        'CopyData',
        'CopyDone',
        'NotificationResponse',
        'FunctionCallResponse',
        'NegotiateProtocolVersion',
        'ReadyForQuery',
      ],
    );
    const by = <T extends BackendMessage['type']>(t: T, i = 0) =>
      msgs.filter((m) => m.type === t)[i] as Extract<BackendMessage, { type: T }>;
    assert.deepEqual((msgs[0] as Extract<BackendMessage, { type: 'Authentication' }>).auth, {
      kind: 'sasl',
      mechanisms: ['SCRAM-SHA-256', 'SCRAM-SHA-256-PLUS'],
    });
    assert.deepEqual(by('RowDescription').fields[0], field);
    assert.deepEqual(by('DataRow').values, [Buffer.from('a@example.com'), null]);
    assert.deepEqual(by('ErrorResponse').fields, {
      S: 'ERROR',
      V: 'ERROR',
      C: '42501',
      M: 'permission denied',
      D: 'd',
      H: 'h',
    });
    assert.equal(by('ReadyForQuery', 1).status, 'E');
    assert.deepEqual([by('NotificationResponse').channel, by('NotificationResponse').payload], ['ch', 'pl']);
    assert.equal(by('FunctionCallResponse').value, null);
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
      fc.property(fc.array(fc.nat(), { maxLength: 60 }), (cuts) => {
        assert.deepEqual(decodeAll(splitAt(SESSION, [...cuts])), whole);
      }),
      { numRuns: 300 },
    );
  });

  it('refuses malformed messages with a reason', () => {
    const bad: [string, Buffer][] = [
      ['unknown type', Buffer.from([0x7a, 0, 0, 0, 4])],
      ['length below 4', Buffer.from([0x5a, 0, 0, 0, 3])],
      ['bad ReadyForQuery status', Buffer.from([0x5a, 0, 0, 0, 5, 0x58])],
      ['unknown auth', enc.authentication(99)],
      ['DataRow overrun', Buffer.from([0x44, 0, 0, 0, 10, 0, 1, 0, 0, 0, 9])],
      ['DataRow trailing bytes', Buffer.from([0x44, 0, 0, 0, 7, 0, 0, 1])],
      ['error without terminator', Buffer.from([0x45, 0, 0, 0, 7, 0x4d, 0x61, 0])],
    ];
    for (const [what, buf] of bad) assert.throws(() => decodeAll([buf]), ProtocolError, what);
    assert.throws(() => decodeAll([Buffer.from([0x44, 0, 1, 0, 0])], 1000), /over the limit of 1000 bytes/);
  });

  it('never crashes or hangs on random bytes: messages or a ProtocolError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.array(fc.nat(), { maxLength: 5 }), (bytes, cuts) => {
        const d = new BackendDecoder({ maxMessageBytes: 4096 });
        try {
          for (const c of splitAt(Buffer.from(bytes), [...cuts])) d.push(c);
        } catch (err) {
          assert.ok(err instanceof ProtocolError, String(err));
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('never crashes on well-framed messages of every type with random bodies', () => {
    assertRandomBodiesDecodeOrRefuse('RSKZTDCEN123nsItGHWdcAVv', (input) => decodeAll([input]));
  });
});
