import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RECORDING_PIECE, RecordingBuffer } from './recording-buffer.ts';

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

  // Fails when the view reads one piece only (a recording larger than one answer then shows cut short).
  it('reads piece after piece to the end the API reports, and again from there as it grows', async () => {
    let stored = new TextEncoder().encode('{"version":2}\n[0.1,"o","é"]\n[0.2,"o","x"]\n');
    const asked: [number, number][] = [];
    const PIECE = 5;
    const read = async (offset: number, length: number) => {
      asked.push([offset, length]);
      return { bytes: stored.subarray(offset, offset + Math.min(length, PIECE)), size: stored.length };
    };
    const r = new RecordingBuffer();
    assert.equal(await r.readToEnd(read), true);
    assert.equal(r.offset, stored.length);
    assert.equal(r.text, '{"version":2}\n[0.1,"o","é"]\n[0.2,"o","x"]\n');
    assert.equal(asked.length, Math.ceil(stored.length / PIECE));
    assert.ok(asked.every(([, length]) => length === RECORDING_PIECE));
    assert.equal(await r.readToEnd(read), false, 'nothing new');
    stored = new TextEncoder().encode(`${new TextDecoder().decode(stored)}[0.3,"o","y"]\n`);
    assert.equal(await r.readToEnd(read), true);
    assert.equal(r.duration, 0.3);
  });
});
