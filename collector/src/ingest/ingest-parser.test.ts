import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeMessage } from '@chaperone/shared';
import { makeChain, TEST_SOURCE as SOURCE } from '../testing/test-events.ts';
import { parseIngestMessage } from './ingest-parse.ts';
import { createMessageParser, WorkerParser } from './ingest-parser.ts';

describe('WorkerParser', () => {
  it('answers in order with what parsing on this thread gives, failures included', async () => {
    const events = makeChain(SOURCE, 30, {
      spec: (i) => (i % 3 ? { protocol: 'exec', argv: ['sh', '-c', 'echo "\u0000\tx"'] } : {}),
    });
    const texts = [
      encodeMessage({ type: 'hello', sidecarId: SOURCE.sidecarId, schemaVersion: 1 }),
      encodeMessage({ type: 'batch', batchId: 0, events: events.slice(0, 20) }),
      JSON.stringify({ type: 'batch', batchId: 1, events: [{ ...events[20], verb: 42 }] }),
      'not json',
      encodeMessage({ type: 'batch', batchId: 2, events: events.slice(20) }),
    ];
    const parser = new WorkerParser();
    try {
      const got = await Promise.all(texts.map((t, i) => parser.parse(t, 1000 + i)));
      assert.deepEqual(
        got,
        texts.map((t, i) => parseIngestMessage(t, 1000 + i)),
      );
      assert.equal(got[1]?.kind === 'batch' && got[1].events.length, 20);
      assert.equal(got[2]?.kind, 'invalid');
    } finally {
      await parser.close();
    }
    await assert.rejects(parser.parse(texts[0] as string, 0), /shutting down/);
  });

  // Fails if #pump hands messages over in arrival order instead of taking sources in turn
  // (the light source's messages then wait behind all five heavy ones): tried.
  it('takes sources in turn: a busy source delays another by the message on the worker and one more', async () => {
    const events = makeChain(SOURCE, 1000);
    const heavy = encodeMessage({ type: 'batch', batchId: 0, events });
    const light = encodeMessage({ type: 'hello', sidecarId: SOURCE.sidecarId, schemaVersion: 1 });
    const parser = new WorkerParser();
    const done: string[] = [];
    try {
      const a = {};
      const b = {};
      const all = [
        ...[1, 2, 3, 4, 5].map((i) => parser.parse(heavy, i, a).then(() => done.push(`a${i}`))),
        parser.parse(light, 6, b).then(() => done.push('b1')),
        parser.parse(light, 7, b).then(() => done.push('b2')),
      ];
      await Promise.all(all);
      // a1 was on the worker and a2 waiting in turn before b1 arrived; then a and b alternate.
      assert.deepEqual(done, ['a1', 'a2', 'b1', 'a3', 'b2', 'a4', 'a5']);
    } finally {
      await parser.close();
    }
  });

  it('is what the collector uses when its worker entry is beside it', async () => {
    const parser = createMessageParser();
    assert.ok(parser instanceof WorkerParser);
    await parser.close();
  });
});
