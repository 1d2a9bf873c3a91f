// A session's recording on its way into the spool: chunks of whole lines at 16 KiB or 200 ms,
// each at its offset, the rest at the end, a failure reported once. Fails when a chunk is cut
// inside a line, an offset skips or repeats bytes, or the timer does not flush a quiet session.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RecordingSink } from './recording-sink.ts';
import type { RecordingChunk } from './spool.ts';

function sink(o: { flushBytes?: number; flushMs?: number; fail?: () => boolean } = {}) {
  const chunks: RecordingChunk[] = [];
  const failures: Error[] = [];
  let closed = 0;
  const s = new RecordingSink({
    spool: {
      appendRecording: (c) => {
        if (o.fail?.()) throw new Error('ENOSPC: no space left on device');
        chunks.push(c);
        return chunks.length;
      },
    },
    sessionId: 'sess-1',
    ...(o.flushBytes !== undefined ? { flushBytes: o.flushBytes } : {}),
    flushMs: o.flushMs ?? 60_000,
    onFailure: (err) => failures.push(err),
    onClose: () => closed++,
  });
  return { s, chunks, failures, closed: () => closed };
}

describe('recording sink', () => {
  it('writes whole lines in chunks once enough wait, each at its offset, and the rest at the end', () => {
    const { s, chunks, closed } = sink({ flushBytes: 30 });
    const lines = [
      '{"version":2,"width":80,"height":24}\n',
      '[1,"o","é"]\n',
      '[2,"o","b"]\n',
      '[3,"o","c"]\n',
    ];
    for (const l of lines) s.write(l);
    s.close();
    s.write('[4,"o","after the end"]\n');
    assert.equal(closed(), 1);
    assert.equal(chunks.map((c) => c.data).join(''), lines.join(''));
    let offset = 0;
    for (const c of chunks) {
      assert.equal(c.sessionId, 'sess-1');
      assert.equal(c.offset, offset);
      assert.ok(c.data.endsWith('\n'));
      offset += Buffer.byteLength(c.data);
    }
    assert.equal(s.spooled, offset);
    assert.ok(chunks.length >= 2);
  });

  it('writes a quiet session’s lines after flushMs', async () => {
    const { s, chunks } = sink({ flushMs: 20 });
    s.write('[1,"o","x"]\n');
    assert.equal(chunks.length, 0);
    await new Promise((r) => setTimeout(r, 80));
    assert.deepEqual(chunks, [{ sessionId: 'sess-1', offset: 0, data: '[1,"o","x"]\n' }]);
    s.close();
  });

  it('reports a chunk it cannot write once, and takes nothing more', () => {
    let fail = false;
    const { s, chunks, failures } = sink({ flushBytes: 1, fail: () => fail });
    s.write('[1,"o","a"]\n');
    fail = true;
    s.write('[2,"o","b"]\n');
    s.write('[3,"o","c"]\n');
    s.close();
    assert.equal(chunks.length, 1);
    assert.equal(failures.length, 1);
    assert.match(failures[0]?.message ?? '', /ENOSPC/);
    assert.equal(s.spooled, Buffer.byteLength('[1,"o","a"]\n'));
  });
});
