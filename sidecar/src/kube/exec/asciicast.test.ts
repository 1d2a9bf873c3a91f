// The asciicast v2 writer: header, events in order, characters split across
// frames written whole, long output split, the size cap and its marker.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkAsciicastChunk } from '@chaperone/shared';
import { AsciicastWriter, MAX_EVENT_CHARS, truncationMessage } from './asciicast.ts';

function writer(o: { maxBytes?: number } = {}) {
  const lines: string[] = [];
  const clock = { t: 0 };
  const w = new AsciicastWriter({
    startMs: 1_700_000_000_500,
    write: (l) => lines.push(l),
    now: () => clock.t,
    ...o,
  });
  return { w, lines, clock, events: () => lines.slice(1).map((l) => JSON.parse(l) as unknown[]) };
}

describe('AsciicastWriter', () => {
  it('writes the header with the first size, then output, input, resizes and the exit as events', () => {
    const { w, lines, clock, events } = writer();
    assert.equal(lines.length, 0, 'the header waits for the first event');
    w.resize(100, 30);
    clock.t = 100;
    w.output(Buffer.from('$ '));
    clock.t = 1500;
    w.input(Buffer.from('ls\r'));
    clock.t = 2000;
    w.resize(120, 40);
    // "é" (c3 a9) split across two frames.
    w.output(Buffer.from([0xc3]));
    clock.t = 2100;
    w.output(Buffer.from([0xa9, 0x0a]));
    const summary = w.end(3);
    w.output(Buffer.from('after the end'));
    assert.ok(lines.every((l) => l.endsWith('\n')));
    assert.deepEqual(JSON.parse(lines[0] as string), {
      version: 2,
      width: 100,
      height: 30,
      timestamp: 1_700_000_000,
    });
    assert.deepEqual(events(), [
      [0.1, 'o', '$ '],
      [1.5, 'i', 'ls\r'],
      [2, 'r', '120x40'],
      [2.1, 'o', 'é\n'],
      [2.1, 'm', 'exit 3'],
    ]);
    assert.deepEqual(summary, { bytes: Buffer.byteLength(lines.join('')), truncated: false });
    // What asciinema reads: the collector's check agrees.
    checkAsciicastChunk(lines.join(''), 0);
  });

  it('ends with what a stream still held (an incomplete character), an unknown exit and why', () => {
    const { w, lines, events } = writer();
    w.output(Buffer.from([0xe2, 0x82]));
    w.end(undefined, 'chaperone: the API server closed the session without a status');
    assert.deepEqual(JSON.parse(lines[0] as string).width, 80, 'no size came: 80x24');
    assert.deepEqual(events(), [
      [0, 'o', '\ufffd'],
      [0, 'm', 'exit unknown: chaperone: the API server closed the session without a status'],
    ]);
  });

  it('splits long output into events of at most MAX_EVENT_CHARS, never inside a surrogate pair', () => {
    const { w, events } = writer();
    // A character outside the BMP (two UTF-16 units) straddles the split point.
    const text = `${'a'.repeat(MAX_EVENT_CHARS - 1)}😀${'b'.repeat(10)}`;
    w.output(Buffer.from(text));
    w.end(0);
    const out = events().filter((e) => e[1] === 'o') as [number, string, string][];
    assert.equal(out.map((e) => e[2]).join(''), text);
    assert.ok(out.every((e) => e[2].length <= MAX_EVENT_CHARS && e[2].isWellFormed()));
    assert.equal(out.length, 2);
  });

  // Fails when the cap is not applied (the recording grows past maxBytes) or the marker is missing.
  it('stops at the size cap with a visible marker, then only the exit, within the cap', () => {
    const maxBytes = 16 * 1024;
    const { w, lines, events } = writer({ maxBytes });
    for (let i = 0; i < 200; i++) w.output(Buffer.from(`line ${i} ${'x'.repeat(100)}\r\n`));
    w.input(Buffer.from('more input'));
    const summary = w.end(0);
    const all = lines.join('');
    assert.ok(Buffer.byteLength(all) <= maxBytes, `${Buffer.byteLength(all)} bytes`);
    assert.deepEqual(summary, { bytes: Buffer.byteLength(all), truncated: true });
    const tail = events().slice(-3);
    assert.deepEqual(
      tail.map((e) => [e[1], e[2]]),
      [
        ['o', truncationMessage(maxBytes)],
        ['m', `recording truncated at its limit of ${maxBytes} bytes`],
        ['m', 'exit 0'],
      ],
    );
    assert.ok(!all.includes('more input'));
    checkAsciicastChunk(all, 0);
  });
});
