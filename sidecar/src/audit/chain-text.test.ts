import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chainEvent, GENESIS_HASH, hashEvent, type UnchainedEvent } from '@chaperone/shared';
import fc from 'fast-check';
import { chainToText } from './chain-text.ts';
import { testEvent } from './test-event.ts';

function ev(uri: string, userAgent: string, latencyMs?: number): UnchainedEvent {
  return testEvent(1, {
    requestURI: uri,
    userAgent,
    annotations: { 'chaperone.dev/rule': 'default' },
    chaperone: latencyMs !== undefined ? { latencyMs } : {},
  });
}

describe('chainToText', () => {
  it('gives the hash and event of shared chainEvent, and a record that parses back to it', () => {
    fc.assert(
      fc.property(
        fc.string(),
        fc.string(),
        fc.option(fc.double({ min: 0, max: 1e6, noNaN: true }), { nil: undefined }),
        fc.integer({ min: 1, max: 2 ** 40 }),
        (uri, ua, latency, seq) => {
          const e = ev(uri, ua, latency);
          const fast = chainToText(e, seq, GENESIS_HASH);
          const slow = chainEvent(e, seq, GENESIS_HASH);
          assert.equal(fast.event.chaperone.hash, slow.chaperone.hash);
          assert.deepEqual(JSON.parse(fast.text), slow);
          assert.equal(hashEvent(JSON.parse(fast.text)), slow.chaperone.hash);
        },
      ),
    );
  });

  it('is not fooled by the member text inside string values', () => {
    const e = ev('/x?"hash":"",', '"hash":"",');
    const fast = chainToText(e, 7, GENESIS_HASH);
    assert.equal(fast.event.chaperone.hash, chainEvent(e, 7, GENESIS_HASH).chaperone.hash);
  });
});
