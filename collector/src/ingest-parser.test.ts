import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeMessage } from '@chaperone/shared';
import { parseIngestMessage } from './ingest-parse.ts';
import { createMessageParser, WorkerParser } from './ingest-parser.ts';
import { makeChain, TEST_SOURCE as SOURCE } from './test-events.ts';

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

  it('is what the collector uses when its worker entry is beside it', async () => {
    const parser = createMessageParser();
    assert.ok(parser instanceof WorkerParser);
    await parser.close();
  });
});
