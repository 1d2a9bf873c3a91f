// What `chaperone replay` passes to the operator's terminal: the sequences a shell session
// needs, nothing that makes the terminal answer, changes it beyond the screen or hides text.
// Each table row fails when its sequence's rule in replay-filter.ts goes; the properties fail
// when a sequence outside the allowed set gets through, or when the output depends on how the
// recording was split into events.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { MAX_STRING_CHARS, ReplayFilter } from './replay-filter.ts';

const E = '\x1b';
const run = (text: string) => {
  const f = new ReplayFilter();
  return { out: f.push(text), dropped: f.dropped, end: f.end() };
};

const PASSED: [string, string][] = [
  ['colours and bold', `${E}[1;31mred${E}[0m ${E}[38;2;10;20;30mrgb${E}[38:5:208m`],
  ['cursor movement and position', `${E}[2A${E}[3B${E}[4C${E}[D${E}[10;20H${E}[5G${E}[7d${E}[2E`],
  ['erasing the screen and lines', `${E}[2J${E}[H${E}[K${E}[1K${E}[2K${E}[J`],
  ['inserting and deleting', `${E}[2@${E}[3P${E}[L${E}[M${E}[5X`],
  ['text, tabs, backspace, CR and LF', 'a\tb\bc\r\nd'],
  ['UTF-8 text', 'héllo ✓ 😀'],
  ['save and restore cursor, index, reverse index', `${E}7${E}8${E}D${E}E${E}M`],
  ['line drawing and back', `${E}(0lqqk${E}(B`],
  ['the alternate screen and a hidden cursor', `${E}[?1049h${E}[?25l${E}[?25h${E}[?1049l`],
  ['a scroll region', `${E}[3;20r${E}[r`],
  ['insert mode', `${E}[4h${E}[4l`],
];

const DROPPED: [string, string][] = [
  ['a window title (OSC 0, BEL)', `${E}]0;pwned\x07`],
  ['a window title (OSC 2, ST)', `${E}]2;pwned${E}\\`],
  ['the clipboard (OSC 52)', `${E}]52;c;cm0gLXJmIH4K\x07`],
  ['a hyperlink (OSC 8)', `${E}]8;;https://evil.example/${E}\\`],
  ['a colour query (OSC 11)', `${E}]11;?\x07`],
  ['user-defined keys (DCS)', `${E}P0;1|17/ls${E}\\`],
  ['a status-string request (DECRQSS)', `${E}P$qm${E}\\`],
  ['kitty graphics (APC)', `${E}_Gf=100;AAAA${E}\\`],
  ['a cursor position report (DSR)', `${E}[6n`],
  ['a private status report', `${E}[?6n`],
  ['device attributes', `${E}[c`],
  ['secondary device attributes', `${E}[>c`],
  ['identify (DECID)', `${E}Z`],
  ['a window report', `${E}[21t`],
  ['a window resize', `${E}[8;50;200t`],
  ['a mode report request (DECRQM)', `${E}[?2004$p`],
  ['application cursor keys', `${E}[?1h`],
  ['mouse reporting', `${E}[?1000h${E}[?1006h`],
  ['bracketed paste', `${E}[?2004h`],
  ['focus events', `${E}[?1004h`],
  ['132 columns', `${E}[?3h`],
  ['a safe mode beside an unsafe one', `${E}[?25;1000h`],
  ['line feed mode', `${E}[20h`],
  ['modifyOtherKeys', `${E}[>4;2m`],
  ['the kitty keyboard protocol', `${E}[>1u`],
  ['keypad application mode', `${E}=`],
  ['a full reset', `${E}c`],
  ['a soft reset', `${E}[!p`],
  ['a cursor style', `${E}[2 q`],
  ['erasing the scrollback', `${E}[3J`],
  ['clearing tab stops', `${E}[3g`],
  ['a G1 character set', `${E})0`],
  ['screen alignment (DECALN)', `${E}#8`],
  ['a bell', '\x07'],
  ['shift out', '\x0e'],
  ['DEL', '\x7f'],
  ['a C1 CSI', '\u009b6n'],
  ['a huge repeat', `x${E}[100000b`],
  ['an overlong sequence', `${E}[${'1;'.repeat(100)}m`],
];

describe('replay filter', () => {
  for (const [what, seq] of PASSED) {
    it(`passes ${what}`, () => {
      const r = run(seq);
      assert.equal(r.out, seq);
      assert.equal(r.dropped, 0);
    });
  }

  for (const [what, seq] of DROPPED) {
    it(`drops ${what}`, () => {
      const r = run(`<${seq}>`);
      assert.ok(r.dropped >= 1, `${what}: nothing counted`);
      // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this checks
      assert.doesNotMatch(r.out, /[\x00-\x08\x0b-\x1f\x7f-\x9f]/, JSON.stringify(r.out));
      assert.ok(r.out.startsWith('<') && r.out.endsWith('>'), JSON.stringify(r.out));
    });
  }

  it('shows characters that reorder a line instead of letting them act', () => {
    assert.equal(run('a\u202eb\u2066c').out, 'a\\u{202e}b\\u{2066}c');
  });

  it('shows what follows an unterminated string once it passes the bound', () => {
    const r = run(`${E}]${'x'.repeat(MAX_STRING_CHARS)}visible`);
    assert.equal(r.out, 'visible');
  });

  it('undoes at the end what the replay left set, and only that', () => {
    assert.equal(run('plain').end, `${E}[0m`);
    assert.equal(
      run(`${E}[?1049h${E}[?25l${E}[5;10r${E}(0${E}[4h`).end,
      `${E}[0m${E}[4l${E}7${E}[r${E}8${E}[?1049l${E}(B${E}[?25h`,
    );
    assert.equal(run(`${E}[?1049h${E}[?1049l${E}[?25l${E}[?25h`).end, `${E}[0m`);
  });

  // An independent description of what may come out: the allowed sequences, printable text,
  // BS/HT/LF/CR, and the visible form of reordering characters.
  const ALLOWED =
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this checks
    /^(?:\x1b\[[0-9;:]*[ABCDEFGHfdea`@PLMXIZKmSTbsu]|\x1b\[(?![0-9;:]*3[;:]?)[0-9;:]*J|\x1b\[[0-9;]*r|\x1b\[4[hl]|\x1b\[\?(?:(?:25|12|7|6|5|1049|1047|1048|47)(?:;(?:25|12|7|6|5|1049|1047|1048|47))*[hl]|[0-9;]*[JK])|\x1b[78DEM]|\x1b\([0B]|[\b\t\n\r]|[^\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c])*$/u;

  const pieces = fc.oneof(
    fc.string({ unit: 'grapheme', maxLength: 8 }),
    fc.constantFrom(...[...PASSED, ...DROPPED].map(([, s]) => s), E, `${E}[`, `${E}]`, '\x07', `${E}\\`),
    fc.string({ unit: fc.integer({ min: 0, max: 0x9f }).map((c) => String.fromCharCode(c)), maxLength: 12 }),
  );

  it('lets nothing outside the allowed set through, whatever the recording holds', () => {
    fc.assert(
      fc.property(fc.array(pieces, { maxLength: 30 }), (parts) => {
        const f = new ReplayFilter();
        const out = parts.map((p) => f.push(p)).join('') + f.end();
        assert.match(out, ALLOWED);
      }),
      { numRuns: 2000 },
    );
  });

  it('gives the same output however the recording was split into events', () => {
    fc.assert(
      fc.property(
        fc.array(pieces, { maxLength: 20 }),
        fc.array(fc.nat(), { maxLength: 6 }),
        (parts, cuts) => {
          const text = parts.join('');
          const chars = [...text];
          const at = [...new Set(cuts.map((c) => c % (chars.length + 1)))].sort((a, b) => a - b);
          const split: string[] = [];
          let from = 0;
          for (const c of at) {
            split.push(chars.slice(from, c).join(''));
            from = c;
          }
          split.push(chars.slice(from).join(''));
          const whole = new ReplayFilter();
          const pieced = new ReplayFilter();
          assert.equal(
            split.map((p) => pieced.push(p)).join('') + pieced.end(),
            whole.push(text) + whole.end(),
          );
          assert.equal(pieced.dropped, whole.dropped);
        },
      ),
      { numRuns: 1000 },
    );
  });
});
