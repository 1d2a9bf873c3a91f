import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chainEvent, GENESIS_HASH, MAX_SEQ } from './audit-event.ts';
import { ValidationError } from './errors.ts';
import {
  chainIdFor,
  checkAsciicastChunk,
  encodeMessage,
  INGEST_SUBPROTOCOL,
  INGEST_SUBPROTOCOLS,
  MAX_BATCH_EVENTS,
  MAX_RECORDING_BYTES,
  MAX_RECORDING_CHUNK_BYTES,
  parseClientMessage,
  parseServerMessage,
} from './ingest-protocol.ts';
import { testEvent } from './test-event.ts';

const event = chainEvent(testEvent(1), 1, GENESIS_HASH);

describe('ingest protocol', () => {
  it('round-trips every message type', () => {
    const hello = { type: 'hello', sidecarId: 'ns/p/uid', schemaVersion: 1 } as const;
    assert.deepEqual(parseClientMessage(encodeMessage(hello)), hello);
    const batch = { type: 'batch', batchId: 7, events: [event] } as const;
    assert.deepEqual(parseClientMessage(encodeMessage(batch)), batch);
    const welcome = { type: 'welcome', head: { seq: 3, hash: GENESIS_HASH } } as const;
    assert.deepEqual(parseServerMessage(encodeMessage(welcome)), welcome);
    const ack = { type: 'ack', batchId: 7, upToSeq: 1, stored: 1, duplicates: 0 } as const;
    assert.deepEqual(parseServerMessage(encodeMessage(ack)), ack);
    const nack = { type: 'nack', batchId: 7, code: 'invalid_event', message: 'x', retryable: false } as const;
    assert.deepEqual(parseServerMessage(encodeMessage(nack)), nack);
  });

  it('rejects malformed input with the location of the problem', () => {
    assert.throws(() => parseClientMessage('{'), /not JSON/);
    assert.throws(() => parseClientMessage('[]'), /must be an object/);
    assert.throws(() => parseClientMessage('{"type":"bye"}'), /unknown message type "bye"/);
    assert.throws(
      () => parseClientMessage('{"type":"batch","batchId":1,"events":[]}'),
      /\/events: must be a non-empty array/,
    );
    const many = JSON.stringify({
      type: 'batch',
      batchId: 1,
      events: Array(MAX_BATCH_EVENTS + 1).fill(event),
    });
    assert.throws(() => parseClientMessage(many), /limit is 1000/);
    const bad = JSON.stringify({ type: 'batch', batchId: 1, events: [event, { ...event, verb: 3 }] });
    assert.throws(
      () => parseClientMessage(bad),
      (err: unknown) => err instanceof ValidationError && err.path === '/events/1/verb',
    );
  });

  // Fails when a bound goes (e.g. parseServerMessage accepting any number for head.seq, as it
  // did): a welcome claiming a head beyond MAX_SEQ, or a fractional, negative or string seq,
  // would reach the sidecar's spool. Tried: removing `bounded` from welcome fails this test.
  it('bounds every number on the wire', () => {
    const welcome = (seq: unknown, hash: unknown = GENESIS_HASH) =>
      parseServerMessage(JSON.stringify({ type: 'welcome', head: { seq, hash } }));
    assert.equal(welcome(MAX_SEQ).type, 'welcome');
    for (const seq of [MAX_SEQ + 1, -1, 1.5, '3', null, 1e300])
      assert.throws(() => welcome(seq), /\/head\/seq: must be an integer from 0 to 1125899906842624/);
    assert.throws(() => welcome(1, 'abc'), /sha256/);
    const ack = (m: Record<string, unknown>) =>
      parseServerMessage(JSON.stringify({ type: 'ack', batchId: 1, upToSeq: 1, ...m }));
    assert.throws(() => ack({ upToSeq: MAX_SEQ + 1 }), /\/upToSeq/);
    assert.throws(() => ack({ batchId: -1 }), /\/batchId/);
    assert.throws(() => ack({ stored: MAX_BATCH_EVENTS + 1 }), /\/stored/);
    assert.throws(() => ack({ duplicates: 0.5 }), /\/duplicates/);
    assert.throws(
      () => parseServerMessage(JSON.stringify({ type: 'nack', batchId: 2 ** 60, code: 'malformed' })),
      /\/batchId/,
    );
    for (const v of [0, 1.5, 1001, '1'])
      assert.throws(
        () => parseClientMessage(JSON.stringify({ type: 'hello', sidecarId: 'a/b/c', schemaVersion: v })),
        /\/schemaVersion/,
      );
    const far = chainEvent(testEvent(1), MAX_SEQ + 1, GENESIS_HASH);
    assert.throws(
      () => parseClientMessage(JSON.stringify({ type: 'batch', batchId: 1, events: [far] })),
      (err: unknown) => err instanceof ValidationError && err.path === '/events/0/chaperone/seq',
    );
  });

  it('names a chain after its pod: namespace, name and uid', () => {
    assert.equal(chainIdFor({ namespace: 'agents', pod: 'agent-0', podUID: 'u-1' }), 'agents/agent-0/u-1');
  });

  const HEADER = '{"version":2,"width":80,"height":24,"timestamp":1700000000}\n';

  it('carries recordings on chaperone.ingest.v2, which collectors prefer to v1', () => {
    assert.equal(INGEST_SUBPROTOCOL, 'chaperone.ingest.v2');
    assert.deepEqual(INGEST_SUBPROTOCOLS, ['chaperone.ingest.v2', 'chaperone.ingest.v1']);
    const recording = {
      type: 'recording',
      batchId: 9,
      sessionId: '6f0c1a52-0d1e-4c7e-9a0b-000000000001',
      offset: 0,
      data: `${HEADER}[0.5,"o","$ ls\\r\\n"]\n[0.9,"m","exit 0"]\n`,
    } as const;
    assert.deepEqual(parseClientMessage(encodeMessage(recording)), recording);
    const recorded = { type: 'recorded', batchId: 9, size: 120, duplicate: true } as const;
    assert.deepEqual(parseServerMessage(encodeMessage(recorded)), recorded);
  });

  // Fails when a check goes: each refused chunk below would otherwise be stored, and asciinema
  // (2.2, which reads lines with Python's universal newlines and unpacks [time, code, data])
  // could not play the recording it ends up in.
  it('takes only whole asciicast v2 lines within the limits', () => {
    const rec = (m: Record<string, unknown>) =>
      parseClientMessage(
        JSON.stringify({ type: 'recording', batchId: 1, sessionId: 's-1', offset: 0, data: HEADER, ...m }),
      );
    assert.equal(rec({}).type, 'recording');
    assert.equal(rec({ offset: 100, data: '[1,"r","100x40"]\n[2,"i","x"]\n' }).type, 'recording');
    const refused: [Record<string, unknown>, RegExp][] = [
      [{ sessionId: '' }, /\/sessionId/],
      [{ sessionId: 'a/b' }, /\/sessionId/],
      [{ sessionId: 'x'.repeat(257) }, /\/sessionId/],
      [{ offset: -1 }, /\/offset/],
      [{ offset: MAX_RECORDING_BYTES + 1 }, /\/offset/],
      [{ batchId: 1.5 }, /\/batchId/],
      [{ data: 7 }, /\/data: must be a string/],
      [{ data: '' }, /must not be empty/],
      [{ data: HEADER.trimEnd() }, /whole lines/],
      [{ data: `${HEADER}[1,"o",\r"x"]\n` }, /raw CR/],
      [{ data: `${HEADER}[1,"o","\u0000"]\n` }, /NUL/],
      [{ data: `${HEADER}[1,"o","\ud800"]\n` }, /unpaired surrogate/],
      [{ data: '[1,"o","x"]\n' }, /starts with an asciicast v2 header/],
      [{ data: '{"version":2,"width":0,"height":24}\n' }, /header/],
      [{ data: '{"version":3,"term":{"cols":80,"rows":24}}\n' }, /header/],
      [{ offset: 5, data: HEADER }, /line 1 is not an asciicast v2 event/],
      [{ offset: 5, data: '[-1,"o","x"]\n' }, /line 1 is not an asciicast v2 event/],
      [{ offset: 5, data: '[1,"","x"]\n' }, /line 1 is not an asciicast v2 event/],
      [{ offset: 5, data: '[1,"o","x"]\n[1,"o"]\n' }, /line 2 is not an asciicast v2 event/],
      [{ offset: 5, data: '[1,"o","x"]\nnope\n' }, /line 2 is not JSON/],
      [{ offset: 5, data: `[1,"o","${'x'.repeat(MAX_RECORDING_CHUNK_BYTES)}"]\n` }, /the limit is 262144/],
      [{ offset: MAX_RECORDING_BYTES - 5, data: '[1,"o","x"]\n' }, /would make the recording/],
    ];
    for (const [m, why] of refused)
      assert.throws(
        () => rec(m),
        (err: unknown) => err instanceof ValidationError && why.test(`${err.path}: ${err.message}`),
        JSON.stringify(m).slice(0, 80),
      );
    assert.doesNotThrow(() => checkAsciicastChunk('[0,"m","exit 0"]\n', 1));
    for (const v of [
      { type: 'recorded', batchId: 1, size: MAX_RECORDING_BYTES + 1 },
      { type: 'recorded', batchId: -1, size: 1 },
    ])
      assert.throws(() => parseServerMessage(JSON.stringify(v)), ValidationError);
  });
});
