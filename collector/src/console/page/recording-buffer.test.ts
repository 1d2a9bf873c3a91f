import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RecordingBuffer } from './recording-buffer.ts';

describe('a recording read as it grows', () => {
  it('counts bytes, completes characters split between reads, shows only whole lines', () => {
    const cast = '{"version":2,"width":80,"height":24}\n[0.1,"o","é ✓"]\n[1.5,"o","done\\r\\n"]\n';
    const bytes = new TextEncoder().encode(cast);
    // Cut inside the two bytes of é.
    const split = new TextEncoder().encode(cast.slice(0, cast.indexOf('é'))).length + 1;
    const r = new RecordingBuffer();
    assert.equal(r.push(bytes.subarray(0, split)), true);
    assert.equal(r.offset, split);
    assert.equal(r.text, '{"version":2,"width":80,"height":24}\n');
    assert.equal(r.duration, 0);
    assert.equal(r.push(new Uint8Array()), false);
    r.push(bytes.subarray(split));
    assert.equal(r.offset, bytes.length);
    assert.equal(r.text, cast);
    assert.equal(r.duration, 1.5);
  });
});
