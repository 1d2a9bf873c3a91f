// The decision on a recording chunk, pure: the cases the conformance suite cannot reach cheaply
// (a recording at its size limit) and the comparison of a resend across stored chunks.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_RECORDING_BYTES } from '@chaperone/shared';
import { compareChunk, planRecordingChunk } from './recording-append.ts';
import type { IncomingRecording } from './store.ts';

const chunk = (offset: number, data: string): IncomingRecording => ({
  kind: 'recording',
  sidecarId: 'ns/p/u',
  identity: { namespace: 'ns', pod: 'p', podUID: 'u', serviceAccount: 'sa' },
  sessionId: 's',
  offset,
  data,
  receivedUs: 0,
  afterLoss: false,
});

describe('recording chunks', () => {
  // Fails when the limit check goes: the store would keep a recording the API then serves whole.
  it('refuses a chunk that would take the recording past MAX_RECORDING_BYTES', () => {
    const held = { sidecarId: 'ns/p/u', size: MAX_RECORDING_BYTES - 4 };
    assert.deepEqual(planRecordingChunk(chunk(held.size, '[1]\n'), held, true), {
      kind: 'append',
      size: held.size,
    });
    const over = planRecordingChunk(chunk(held.size, '[12]\n'), held, true);
    assert.deepEqual([over.kind, over.kind === 'refused' && over.code], ['refused', 'too_large']);
  });

  it('compares a resend with the stored bytes, across the chunks it spans', () => {
    const stored = [
      { start: 10, data: 'abcé' }, // é is two bytes: this chunk ends at 15
      { start: 15, data: 'fgh' },
    ];
    assert.deepEqual(compareChunk(chunk(12, 'cé'), 18, stored), {
      kind: 'recorded',
      size: 18,
      duplicate: true,
    });
    assert.deepEqual(compareChunk(chunk(13, 'éfg'), 18, stored), {
      kind: 'recorded',
      size: 18,
      duplicate: true,
    });
    assert.equal(compareChunk(chunk(13, 'éfx'), 18, stored).kind, 'refused');
    assert.equal(compareChunk(chunk(13, 'é'), 18, []).kind, 'refused');
  });
});
