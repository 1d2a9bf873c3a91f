// Limits on what one ingest message may hold, enforced on the parse worker before
// anything recursive (canonical JSON, hashing) sees the events. Without the depth check
// in ingest-parse.ts (json-depth.ts) a batch nested 10,000 deep is parsed and then refused
// by the canonical encoder's own limit, with another path and reason (and 8 MB of such
// events hold the parse worker for seconds): tried, this test then fails.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { type AuditEvent, encodeMessage, MAX_MESSAGE_BYTES } from '@chaperone/shared';
import { connectIngest } from '../testing/ingest-client.ts';
import { makeChain } from '../testing/test-events.ts';
import { type PodClaims, startTestCollector, type TestCollector } from '../testing/test-harness.ts';
import { parseIngestMessage } from './ingest-parse.ts';
import { checkMessageDepth, MAX_EVENT_DEPTH } from './json-depth.ts';

const POD: PodClaims & { sidecarId: string } = {
  namespace: 'agents',
  pod: 'agent-0',
  podUID: 'uid-agent-0',
  serviceAccount: 'agent',
  sidecarId: 'agents/agent-0/uid-agent-0',
};
const SOURCE = { ...POD, pod: POD.pod as string };

/** An event's JSON with a requestObject nested `depth` deep (built as text: JSON.stringify would overflow). */
function withDeepObject(e: AuditEvent, depth: number): string {
  return `${JSON.stringify(e).slice(0, -1)},"requestObject":${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}}`;
}

function batchText(batchId: number, eventTexts: readonly string[]): string {
  return `{"type":"batch","batchId":${batchId},"events":[${eventTexts.join(',')}]}`;
}

describe('ingest limits', () => {
  it('refuses a message whose events nest past MAX_EVENT_DEPTH, naming the event, before parsing it', () => {
    const nested = (d: number) => `${'{"k":['.repeat(d / 2)}1${']}'.repeat(d / 2)}`;
    checkMessageDepth(`{"type":"batch","events":[{"a":1},${nested(MAX_EVENT_DEPTH)}]}`);
    assert.throws(
      () => checkMessageDepth(`{"type":"batch","events":[{"a":"[[[[,"},2,${nested(MAX_EVENT_DEPTH + 2)}]}`),
      (err: Error & { path: string }) =>
        err.path === '/events/2' && /nest more than 64 levels deep; the limit is 64/.test(err.message),
    );
    // Brackets and quotes inside strings are text, not nesting.
    checkMessageDepth(`{"events":["${'[{\\"'.repeat(1000)}"]}`);
    checkMessageDepth('not json at all [[[');
  });

  it('refuses an event nested 10,000 deep with the batch id, the path and the limit', () => {
    const [e1, e2] = makeChain(SOURCE, 2) as [AuditEvent, AuditEvent];
    const m = parseIngestMessage(batchText(7, [JSON.stringify(e1), withDeepObject(e2, 10_000)]), 1);
    assert.equal(m.kind, 'invalid');
    if (m.kind !== 'invalid') return;
    assert.equal(m.batchId, 7);
    assert.equal(m.path, '/events/1');
    assert.match(m.message, /nest more than 64 levels deep; the limit is 64 \(the event was not stored\)/);
  });

  describe('over a connection', () => {
    let c: TestCollector;
    beforeEach(async () => {
      c = await startTestCollector();
    });
    afterEach(async () => {
      await c.close();
    });

    it('nacks deep batches (one of 8 MB too) as invalid_event and acks the next good batch', async () => {
      const token = await c.issuer.token(POD);
      const conn = await connectIngest({ url: c.url, token });
      assert.ok(conn.ok);
      conn.ws.send(encodeMessage({ type: 'hello', sidecarId: POD.sidecarId, schemaVersion: 1 }));
      assert.equal((await conn.messages.next()).type, 'welcome');
      const events = makeChain(SOURCE, 3);
      conn.ws.send(batchText(0, [withDeepObject(events[0] as AuditEvent, 10_000)]));
      // As many deep events as fit in one message.
      const one = withDeepObject(events[0] as AuditEvent, 10_000);
      const many = Array.from(
        { length: Math.floor((MAX_MESSAGE_BYTES - 100) / (one.length + 1)) },
        () => one,
      );
      conn.ws.send(batchText(1, many));
      conn.ws.send(encodeMessage({ type: 'batch', batchId: 2, events }));
      const answers = [await conn.messages.next(), await conn.messages.next(), await conn.messages.next()];
      assert.deepEqual(
        answers.map((a) =>
          a.type === 'nack'
            ? [a.type, a.batchId, a.code]
            : a.type === 'ack'
              ? [a.type, a.batchId, a.upToSeq]
              : [a.type],
        ),
        [
          ['nack', 0, 'invalid_event'],
          ['nack', 1, 'invalid_event'],
          ['ack', 2, 3],
        ],
      );
      const first = answers[0];
      assert.ok(first?.type === 'nack');
      assert.equal(first.retryable, false);
      assert.match(first.message, /^\/events\/0: .*the limit is 64/);
      conn.ws.close();
    });
  });
});
