// Playing a recording: output events at their times (sped up, pauses capped), all at once with
// --cat, markers collected, Ctrl-C stopping it with the terminal put back. Fails when the speed
// or the idle cap is not applied to the waits, or an interrupted replay skips the undo.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { castDuration, parseCast, playCast } from './asciicast-play.ts';

const CAST = [
  '{"version":2,"width":100,"height":30}',
  '[0.1,"o","$ "]',
  '[1.0,"i","ls\\r"]',
  '[2.0,"o","ls\\r\\n\\u001b[?1049h"]',
  '[10.0,"o","done\\r\\n"]',
  '[10.0,"m","exit 0"]',
]
  .map((l) => `${l}\n`)
  .join('');

describe('playing a recording', () => {
  it('waits as the session did, divided by the speed, with pauses capped', async () => {
    const cast = parseCast(CAST);
    assert.deepEqual([cast.width, cast.height, cast.events.length], [100, 30, 5]);
    assert.equal(castDuration(cast), 10);
    assert.equal(castDuration(cast, 1000), 0.1 + 0.9 + 1 + 1);
    const waits: number[] = [];
    let out = '';
    const r = await playCast(cast, {
      realTime: true,
      speed: 2,
      maxIdleMs: 1000,
      write: (t) => {
        out += t;
      },
      sleep: async (ms) => {
        waits.push(ms);
      },
    });
    // Due at 0.1, 2.0 and 3.0 s of capped recording time, halved (the sleeps do not advance the clock).
    // (Less the little time the test itself takes.)
    assert.equal(waits.length, 3);
    for (const [i, want] of [50, 1000, 1500].entries())
      assert.ok(Math.abs((waits[i] as number) - want) < 40, `${waits[i]} for ${want}`);
    assert.equal(out, '$ ls\r\n\x1b[?1049hdone\r\n\x1b[0m\x1b[?1049l');
    assert.deepEqual(r.markers, ['exit 0']);
    assert.equal(r.interrupted, false);
    assert.equal(r.atLineStart, true);
  });

  it('prints at once with realTime off, and stops at an abort with the terminal put back', async () => {
    const cast = parseCast(CAST);
    let slept = false;
    const all = await playCast(cast, {
      realTime: false,
      speed: 1,
      write: () => {},
      sleep: async () => {
        slept = true;
      },
    });
    assert.equal(slept, false);
    assert.equal(all.interrupted, false);
    const stop = new AbortController();
    let out = '';
    const r = await playCast(cast, {
      realTime: true,
      speed: 1,
      write: (t) => {
        out += t;
      },
      sleep: async (ms) => {
        if (ms > 5000) stop.abort();
      },
      signal: stop.signal,
    });
    assert.equal(r.interrupted, true);
    assert.equal(out, '$ ls\r\n\x1b[?1049h\x1b[0m\x1b[?1049l');
  });

  it('names the line it cannot read', () => {
    assert.throws(() => parseCast('{"version":1}\n'), /line 1 is not an asciicast v2 header/);
    assert.throws(() => parseCast('{"version":2}\n[1,"o"]\n'), /line 2 is not an event/);
  });
});
