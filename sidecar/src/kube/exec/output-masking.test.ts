import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OutputMasking } from './output-masking.ts';

const STDOUT = 1;

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('output masking in a TTY session', () => {
  // Fails if the maskers were not eager: a typed `e`, `g`, `s` or `x` waited for the idle timer.
  it('an echoed key goes out with its own chunk, a byte of a named value is held', () => {
    const m = new OutputMasking({ values: ['Opal-canary-7731'], idleMs: 60_000 });
    m.start(() => assert.fail('nothing waits for the timer'));
    for (const key of 'echo gsx AKIA eyJ ') assert.equal(m.push(STDOUT, Buffer.from(key)).toString(), key);
    assert.equal(m.push(STDOUT, Buffer.from('O')).toString(), '', 'may start the value: held');
    assert.equal(m.push(STDOUT, Buffer.from('pal-canary-7731\r\n')).toString(), '[masked:secret]\r\n');
    assert.equal(m.masked, 1);
    m.end(STDOUT);
  });

  // A terminal echoes one typed key at a time; keys that may start a secret (`e` of `eyJ`, `g` of
  // `ghp_`) are held and must still go out when output pauses, however often output stopped being held
  // in between. Fails if the idle timer is cleared but kept (refresh() does not revive a cleared
  // timer): tried, the `g` typed after `e` and `f` never came out.
  it('releases every held key after a pause, also after the hold was cleared in between', async () => {
    const m = new OutputMasking({ idleMs: 5 });
    let shown = '';
    m.start((_stream, data) => {
      shown += data.toString();
    });
    const keys = 'aefgxe';
    for (let k = 0; k < keys.length; k++) {
      shown += m.push(STDOUT, Buffer.from(keys[k] as string)).toString();
      const want = keys.slice(0, k + 1);
      for (let i = 0; i < 200 && shown !== want; i++) await pause(5);
      assert.equal(shown, want, `the echo of ${JSON.stringify(keys[k])} came out`);
    }
    m.end(STDOUT);
  });
});
