// The asciicast v2 writer: header, events in order, characters split across
// frames written whole.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AsciicastWriter } from './asciicast.ts';

describe('AsciicastWriter', () => {
  it('writes the header, then output, input, resizes and the exit as events', () => {
    const lines: string[] = [];
    let t = 0;
    const w = new AsciicastWriter({
      width: 80,
      height: 24,
      startMs: 1_700_000_000_500,
      write: (l) => lines.push(l),
      now: () => t,
    });
    t = 100;
    w.output(Buffer.from('$ '));
    t = 1500;
    w.input(Buffer.from('ls\r'));
    t = 2000;
    w.resize(120, 40);
    // "é" (c3 a9) split across two frames.
    w.output(Buffer.from([0xc3]));
    t = 2100;
    w.output(Buffer.from([0xa9, 0x0a]));
    w.end(3);
    w.output(Buffer.from('after the end'));
    assert.ok(lines.every((l) => l.endsWith('\n')));
    assert.deepEqual(JSON.parse(lines[0] as string), {
      version: 2,
      width: 80,
      height: 24,
      timestamp: 1_700_000_000,
    });
    assert.deepEqual(
      lines.slice(1).map((l) => JSON.parse(l)),
      [
        [0.1, 'o', '$ '],
        [1.5, 'i', 'ls\r'],
        [2, 'r', '120x40'],
        [2.1, 'o', 'é\n'],
        [2.1, 'm', 'exit 3'],
      ],
    );
  });

  it('ends with what a stream still held (an incomplete character) and an unknown exit', () => {
    const lines: string[] = [];
    const w = new AsciicastWriter({
      width: 80,
      height: 24,
      startMs: 0,
      write: (l) => lines.push(l),
      now: () => 0,
    });
    w.output(Buffer.from([0xe2, 0x82]));
    w.end(undefined);
    assert.deepEqual(
      lines.slice(1).map((l) => JSON.parse(l)),
      [
        [0, 'o', '\ufffd'],
        [0, 'm', 'exit unknown'],
      ],
    );
  });
});
