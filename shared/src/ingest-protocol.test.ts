import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chainEvent, GENESIS_HASH } from './audit-event.ts';
import { ValidationError } from './errors.ts';
import {
  encodeMessage,
  MAX_BATCH_EVENTS,
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
});
