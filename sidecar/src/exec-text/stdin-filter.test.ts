import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { splitAt } from '../kube/http1/test-streams.ts';
import { CANONICAL_MAX } from './canonical-line.ts';
import { CANCEL_LINE, type InputLine, StdinFilter, type StdinMode } from './stdin-filter.ts';

interface Decision {
  readonly allow: boolean;
}
const allowAll = (): Decision => ({ allow: true });
/** Refuses any line with a reading that contains "rm". */
const noRm = (line: InputLine): Decision => ({ allow: !line.readings.some((r) => r.includes('rm')) });

interface Run {
  forward: Buffer;
  lines: { line: InputLine; forwarded: boolean }[];
  closeStdin: boolean;
}

function run(
  mode: StdinMode,
  chunks: readonly (string | Buffer)[],
  decide: (line: InputLine) => Decision = allowAll,
  max?: number,
): Run {
  const f = new StdinFilter<Decision>({ mode, decide, ...(max ? { maxLineBytes: max } : {}) });
  const forward: Buffer[] = [];
  const lines: Run['lines'] = [];
  let closeStdin = false;
  for (const r of [...chunks.map((c) => f.push(typeof c === 'string' ? Buffer.from(c) : c)), f.end()]) {
    forward.push(r.forward);
    for (const l of r.lines) lines.push({ line: l.line, forwarded: l.forwarded });
    closeStdin = r.closeStdin;
  }
  return { forward: Buffer.concat(forward), lines, closeStdin };
}

/** Runs `chunks`; checks the texts of the lines evaluated and the bytes sent to the pod. */
function expectRun(
  mode: StdinMode,
  chunks: readonly (string | Buffer)[],
  texts: readonly string[],
  forward: string,
  decide: (line: InputLine) => Decision = allowAll,
): Run {
  const r = run(mode, chunks, decide);
  assert.deepEqual(
    r.lines.map((l) => l.line.text),
    texts,
  );
  assert.equal(r.forward.toString(), forward);
  return r;
}

/** The one line evaluated for `input` in tty mode. */
function oneLine(input: string): InputLine {
  const r = run('tty', [input]);
  assert.equal(r.lines.length, 1, `lines: ${JSON.stringify(r.lines)}`);
  return (r.lines[0] as Run['lines'][number]).line;
}

describe('StdinFilter tty: editing keys', () => {
  // text: the readline reading; ahead: typed ahead (the kernel edits, then readline), where it differs;
  // canonical: the kernel's reading, where it differs.
  const table: { name: string; input: string; text: string; ahead?: string; canonical?: string }[] = [
    { name: 'printable characters', input: 'ls -la\r', text: 'ls -la' },
    { name: 'DEL erases (both editors)', input: 'lx\x7fs\r', text: 'ls' },
    {
      name: 'Ctrl-H erases in readline, is a character for the kernel',
      input: 'lx\bs\r',
      text: 'ls',
      canonical: 'lx\bs',
    },
    { name: 'Ctrl-U kills the line', input: 'rm -rf /\x15ls\r', text: 'ls' },
    { name: 'Ctrl-W kills a word (white space)', input: 'echo hello world\x17\r', text: 'echo hello ' },
    {
      name: 'Ctrl-W: readline stops at white space, the kernel at punctuation',
      input: 'ls -l /tmp/x\x17\r',
      text: 'ls -l ',
      canonical: 'ls -l /tmp/',
    },
    { name: 'Ctrl-A then insert', input: 's -la\x01l\r', text: 'ls -la', canonical: 's -la\x01l' },
    { name: 'Ctrl-A, Ctrl-E', input: 'ls\x01\x05 -l\r', text: 'ls -l', canonical: 'ls\x01\x05 -l' },
    {
      name: 'Ctrl-B, Ctrl-F',
      input: 'lss\x02\x02\x06\x7f\r',
      text: 'ls',
      ahead: 'lss',
      canonical: 'lss\x02\x02',
    },
    {
      name: 'left arrow (CSI) and insert',
      input: 'echo wrld\x1b[D\x1b[D\x1b[Do\r',
      text: 'echo world',
      canonical: 'echo wrld\x1b[D\x1b[D\x1b[Do',
    },
    {
      name: 'left and right arrows (SS3)',
      input: 'echo wrld\x1bOD\x1bOD\x1bOD\x1bOCx\x7fo\r',
      text: 'echo wrold',
      canonical: 'echo wrld\x1bOD\x1bOD\x1bOD\x1bOCo',
    },
    {
      name: 'Delete (CSI 3~)',
      input: 'echo helllo\x1b[D\x1b[D\x1b[3~\r',
      text: 'echo hello',
      canonical: 'echo helllo\x1b[D\x1b[D\x1b[3~',
    },
    {
      name: 'Ctrl-K kills to the end',
      input: 'ls -la /etc\x01\x06\x06\x0b\r',
      text: 'ls',
      canonical: 'ls -la /etc\x01\x06\x06\x0b',
    },
    {
      name: 'Home and End (CSI H/F, CSI 1~/4~, SS3 H/F)',
      input: 's\x1b[Hl\x1b[F -\x1b[1~\x1b[4~a\x1bOH\x1bOF\r',
      text: 'ls -a',
      canonical: 's\x1b[Hl\x1b[F -\x1b[1~\x1b[4~a\x1bOH\x1bOF',
    },
    {
      name: 'Alt-b, Alt-d, Alt-f',
      input: 'echo one two\x1bb\x1bdsix\x1bb\x1bf!\r',
      text: 'echo one six!',
      canonical: 'echo one two\x1bb\x1bdsix\x1bb\x1bf!',
    },
    {
      name: 'Alt-Backspace kills back to a letter or digit',
      input: 'cat a/two\x1b\x7f\r',
      text: 'cat a/',
      canonical: 'cat a/two',
    },
    { name: 'Ctrl-T at the end swaps the last two', input: 'sl\x14\r', text: 'ls', canonical: 'sl\x14' },
    {
      name: 'Ctrl-T inside moves a character right',
      input: 'lsa\x02\x02\x14\r',
      text: 'sla',
      canonical: 'lsa\x02\x02\x14',
    },
    {
      name: 'Ctrl-V inserts the next key literally (typed ahead, the kernel takes the Ctrl-V)',
      input: 'echo \x16\x01\r',
      text: 'echo \x01',
      ahead: 'echo ',
    },
    {
      name: 'Ctrl-L and Ctrl-G change nothing in readline',
      input: 'ls\x0c\x07\r',
      text: 'ls',
      canonical: 'ls\x0c\x07',
    },
    { name: 'multi-byte UTF-8', input: 'echo héllo 日本 🙂\r', text: 'echo héllo 日本 🙂' },
    { name: 'LF ends a line too', input: 'ls\n', text: 'ls' },
  ];
  for (const c of table) {
    it(c.name, () => {
      const line = oneLine(c.input);
      assert.equal(line.readable, true, line.reason);
      assert.equal(line.text, c.text);
      const others = [c.ahead, c.canonical].filter((r) => r !== undefined);
      assert.deepEqual(line.readings, [c.text, ...others]);
      assert.equal(line.via, 'enter');
      assert.deepEqual(run('tty', [c.input]).forward, Buffer.from(c.input), 'keys pass through unchanged');
    });
  }

  it('Ctrl-C discards the line and goes to the pod', () => {
    expectRun('tty', ['rm -rf /\x03ls\r'], ['ls'], 'rm -rf /\x03ls\r');
  });

  it('Ctrl-D on an empty line goes to the pod (EOF) without a line', () => {
    expectRun('tty', ['\x04'], [], '\x04');
  });

  it('CRLF is one Enter: the LF is an empty line and is not evaluated', () => {
    expectRun('tty', ['ls\r\n'], ['ls'], 'ls\r\n');
  });

  it('blank lines are sent without asking', () => {
    assert.deepEqual(run('tty', ['\r  \r\n'], noRm), {
      forward: Buffer.from('\r  \r\n'),
      lines: [],
      closeStdin: false,
    });
  });

  it('a line continued with a backslash is read joined', () => {
    const r = run('tty', ['r\\\rm -rf /\r'], noRm);
    assert.deepEqual(r.lines[1]?.line.readings, ['m -rf /', 'rm -rf /']);
    assert.equal(r.forward.toString(), `r\\\rm -rf /${CANCEL_LINE}`);
  });
});

describe('StdinFilter tty: unreadable lines', () => {
  /** `kept`: what reaches the pod before the key the filter cannot follow; nothing after it does. */
  const table: { name: string; input: string; kept: string; reason: RegExp }[] = [
    { name: 'history recall (up arrow)', input: '\x1b[A\r', kept: '', reason: /history recall/ },
    { name: 'history recall (SS3 down)', input: 'x\x1bOB\r', kept: 'x', reason: /history recall/ },
    { name: 'history search', input: '\x12ls\r', kept: '', reason: /history search/ },
    { name: 'tab completion', input: 'cat /et\tpasswd\r', kept: 'cat /et', reason: /tab completion/ },
    { name: 'a NUL character', input: 'r\x00m -rf /\r', kept: 'r', reason: /NUL/ },
    { name: 'yank', input: 'ls\x17\x19\r', kept: 'ls\x17', reason: /yank/ },
    { name: 'unknown escape sequence', input: 'ls\x1b[15~\r', kept: 'ls', reason: /key CSI 15~/ },
    { name: 'unknown Alt key', input: 'ls\x1b.\r', kept: 'ls', reason: /key ESC \./ },
    { name: 'a lone ESC', input: 'ls\x1b\x1b[C\r', kept: 'ls', reason: /key ESC/ },
    { name: 'bytes that are not UTF-8', input: 'ls \xff\r', kept: 'ls ', reason: /not UTF-8/ },
    {
      name: 'erasing a multi-byte character (bytes or characters?)',
      input: 'echo é\x7f\r',
      kept: 'echo é',
      reason: /non-ASCII/,
    },
    { name: 'moving over a combining mark', input: 'e\u0301\x1b[Dx\r', kept: 'e\u0301', reason: /non-ASCII/ },
    {
      name: 'a word move over a non-ASCII letter',
      input: 'cat été\x1bb\r',
      kept: 'cat été',
      reason: /non-ASCII/,
    },
  ];
  for (const c of table) {
    it(c.name, () => {
      const input = c.name === 'bytes that are not UTF-8' ? Buffer.from(c.input, 'latin1') : c.input;
      const r = run('tty', [input]);
      const line = r.lines[0]?.line;
      assert.ok(line, 'the line is evaluated');
      assert.equal(line.readable, false);
      assert.match(line.reason ?? '', c.reason);
      assert.equal(r.lines[0]?.forwarded, false, 'refused whatever decide says');
      // Fails if the keys from the unreadable one on are passed to the pod (stdin-filter.ts #key's early return).
      assert.deepEqual(
        r.forward,
        Buffer.concat([Buffer.from(c.kept), CANCEL_LINE]),
        'the keys before the unreadable one, then CANCEL_LINE instead of Enter',
      );
    });
  }

  for (const [name, key] of [
    ['Ctrl-X (edit-and-execute prefix)', '\x18'],
    ['Ctrl-O (operate-and-get-next)', '\x0f'],
    ['Ctrl-D inside a line', '\x04'],
  ]) {
    it(`${name} is refused on the spot and never reaches the pod`, () => {
      // Fails if the key is passed through like an editing key.
      const r = run('tty', [`ls${key}`]);
      assert.equal(r.lines[0]?.line.via, 'key');
      assert.equal(r.lines[0]?.forwarded, false);
      assert.equal(r.forward.toString('latin1'), `ls${CANCEL_LINE}`);
    });
  }
});

describe('StdinFilter tty: keys that run a line without Enter', () => {
  // bash's insert-comment with an argument (Alt-1 Alt-#) takes the # off a commented line and runs it;
  // other Alt keys bound to accept-line-like commands likewise. Fails if keys after the first one the
  // filter cannot follow are forwarded (stdin-filter.ts #key's early return on an unreadable line).
  for (const [name, keys] of [
    ['Alt-1 Alt-# (insert-comment with an argument)', '\x1b1\x1b#'],
    ['Alt-# (insert-comment)', '\x1b#'],
    ['Alt-Ctrl-E (shell-expand-line)', '\x1b\x05'],
    ['Alt-digit then an editing key', '\x1b2\x01'],
  ]) {
    it(`${name}: nothing from the key on reaches the pod, and the line is refused`, () => {
      const f = new StdinFilter<Decision>({ mode: 'tty', decide: allowAll });
      const first = f.push(Buffer.from(`#rm -r /x${keys}`));
      assert.equal(first.forward.toString('latin1'), '#rm -r /x');
      const more = f.push(Buffer.from('more'));
      assert.equal(more.forward.length, 0, 'later keys of the line are held too');
      const enter = f.push(Buffer.from('\r'));
      const lines = [...first.lines, ...more.lines, ...enter.lines];
      assert.equal(lines.length, 1);
      assert.equal(lines[0]?.line.readable, false);
      assert.equal(lines[0]?.forwarded, false);
      assert.equal(
        Buffer.concat([first.forward, more.forward, enter.forward]).toString('latin1'),
        `#rm -r /x${CANCEL_LINE}`,
      );
      assert.equal(f.push(Buffer.from('ls\r')).forward.toString(), 'ls\r', 'the next line starts afresh');
    });
  }

  it('Ctrl-C after an unreadable key reaches the pod and starts a fresh line', () => {
    const f = new StdinFilter<Decision>({ mode: 'tty', decide: allowAll });
    assert.equal(f.push(Buffer.from('ls\t')).forward.toString(), 'ls');
    assert.equal(f.push(Buffer.from('\x03')).forward.toString(), '\x03');
    assert.equal(f.push(Buffer.from('ls\r')).forward.toString(), 'ls\r');
  });

  it('a paste inside an unreadable line does not reach the pod', () => {
    // Fails if #pasteEnd forwards a paste without line breaks while the line is unreadable.
    const r = run('tty', ['ls\x1b1', '\x1b[200~x\x1b[201~', '\r']);
    assert.equal(r.forward.toString('latin1'), `ls${CANCEL_LINE}`);
  });
});

describe('StdinFilter tty: decisions', () => {
  it('a refused line gets CANCEL_LINE instead of Enter; the next line is read from scratch', () => {
    // Fails if the Enter of a refused line is forwarded.
    const r = run('tty', ['rm -rf /\r', 'ls\r'], noRm);
    assert.equal(r.forward.toString(), `rm -rf /${CANCEL_LINE}ls\r`);
    assert.deepEqual(
      r.lines.map((l) => [l.line.text, l.forwarded]),
      [
        ['rm -rf /', false],
        ['ls', true],
      ],
    );
  });

  it('a line refused under the kernel reading only is refused', () => {
    // readline reads "ls -l ", a shell without line editing (dash) reads "ls -l /rm/".
    const r = run('tty', ['ls -l /rm/x\x17\r'], noRm);
    assert.deepEqual(r.lines[0]?.line.readings, ['ls -l ', 'ls -l /rm/']);
    assert.equal(r.lines[0]?.forwarded, false);
  });

  it('tty-hold sends nothing of a line before it is allowed, and nothing of a refused one', () => {
    const f = new StdinFilter<Decision>({ mode: 'tty-hold', decide: noRm });
    assert.equal(f.push(Buffer.from('l')).forward.length, 0);
    assert.equal(f.push(Buffer.from('s\x7fs')).forward.length, 0);
    assert.equal(f.push(Buffer.from('\r')).forward.toString(), 'ls\x7fs\r');
    assert.equal(f.push(Buffer.from('rm -rf /\r')).forward.length, 0);
    assert.equal(f.push(Buffer.from('sleep 9')).forward.length, 0);
    assert.equal(
      f.push(Buffer.from('\x03')).forward.toString(),
      '\x03',
      'Ctrl-C goes at once, the held line is dropped',
    );
    assert.equal(f.push(Buffer.from('\r')).forward.toString(), '\r');
  });
});

describe('StdinFilter tty: bracketed paste', () => {
  it('a multi-line paste is decided as a whole, each line a reading', () => {
    const input = '\x1b[200~echo a\necho b\n\x1b[201~';
    const r = run('tty', [input]);
    assert.equal(r.lines.length, 1);
    const line = r.lines[0]?.line;
    assert.equal(line?.via, 'paste');
    assert.equal(line?.text, 'echo a\necho b');
    assert.deepEqual(line?.readings, ['echo a', 'echo b', '\x1b[200~echo a']);
    assert.equal(r.forward.toString(), input);
  });

  it('the last line of a paste continues with what is typed after it', () => {
    const r = run('tty', ['\x1b[200~echo a\nech\x1b[201~', 'o b\r']);
    assert.deepEqual(
      r.lines.map((l) => l.line.readings),
      [
        ['echo a', '\x1b[200~echo a'],
        ['echo b', 'ech\x1b[201~o b'],
      ],
    );
  });

  it('a refused line in a paste drops the whole paste', () => {
    // Fails if paste bytes are forwarded before the paste is decided.
    const r = run('tty', ['\x1b[200~echo a\nrm -rf /\necho c\n', '\x1b[201~ls\r'], noRm);
    assert.equal(r.forward.toString(), `${CANCEL_LINE}ls\r`);
  });

  it('a paste without a line break is not asked about until Enter', () => {
    expectRun('tty', ['echo \x1b[200~pasted\x1b[201~\r'], ['echo pasted'], 'echo \x1b[200~pasted\x1b[201~\r');
  });

  it('CRLF in a paste is one line break for readline', () => {
    const r = run('tty', ['\x1b[200~a\r\nb\r\n\x1b[201~']);
    assert.deepEqual(r.lines[0]?.line.readings, ['a', 'b', '\x1b[200~a', '']);
  });

  it('a tab or a control character in a paste is unreadable', () => {
    for (const content of ['a\tb\n', 'a\x01b\n']) {
      const r = run('tty', [`\x1b[200~${content}\x1b[201~`]);
      assert.equal(r.lines[0]?.line.readable, false, JSON.stringify(content));
    }
  });

  it('editing back into the lines of a paste is unreadable', () => {
    const r = run('tty', ['\x1b[200~echo a\nb\x1b[201~', '\x7f\x7f\r']);
    assert.equal(r.lines[1]?.line.readable, false);
    assert.match(r.lines[1]?.line.reason ?? '', /lines of a paste/);
  });

  it('a paste longer than the limit is refused and dropped', () => {
    const r = run('tty', [`\x1b[200~${'x'.repeat(200)}\n\x1b[201~`], allowAll, 100);
    assert.equal(r.lines[0]?.line.readable, false);
    assert.equal(r.forward.toString(), CANCEL_LINE.toString());
  });
});

describe('StdinFilter piped', () => {
  it('holds each line until allowed', () => {
    const f = new StdinFilter<Decision>({ mode: 'piped', decide: allowAll });
    assert.equal(f.push(Buffer.from('echo a\necho')).forward.toString(), 'echo a\n');
    assert.equal(f.push(Buffer.from(' b\n')).forward.toString(), 'echo b\n');
  });

  it('takes bytes as they are: no line editing', () => {
    const r = run('piped', ['ls\tx\n']);
    assert.equal(r.lines[0]?.line.text, 'ls\tx');
  });

  it('a refused line ends stdin: it and everything after are dropped', () => {
    // Fails if later lines are still forwarded.
    const r = expectRun('piped', ['cd /app\nrm -rf *\nls\n'], ['cd /app', 'rm -rf *'], 'cd /app\n', noRm);
    assert.equal(r.closeStdin, true);
  });

  it('CR, LF and CRLF end lines', () => {
    const r = run('piped', ['a\rb\nc\r\nd']);
    assert.deepEqual(
      r.lines.map((l) => [l.line.text, l.line.via]),
      [
        ['a', 'enter'],
        ['b', 'enter'],
        ['c', 'enter'],
        ['d', 'end'],
      ],
    );
    assert.equal(r.forward.toString(), 'a\rb\nc\r\nd');
  });

  it('a last line without a line end is decided at the end of stdin', () => {
    const r = run('piped', ['rm -rf /'], noRm);
    assert.equal(r.forward.length, 0);
    assert.equal(r.lines[0]?.line.via, 'end');
  });

  it('control characters and non-UTF-8 bytes are unreadable', () => {
    for (const bad of [
      Buffer.from('r\x00m -rf /\n'),
      Buffer.from('ls\x1b[D\n'),
      Buffer.from([0x6c, 0xff, 0x0a]),
    ]) {
      const r = run('piped', [bad]);
      assert.equal(r.lines[0]?.line.readable, false, bad.toString('hex'));
      assert.equal(r.forward.length, 0);
    }
  });

  it('a line longer than the limit is unreadable and not held', () => {
    const r = run('piped', ['x'.repeat(50), 'y'.repeat(80), '\nok\n'], allowAll, 100);
    assert.equal(r.lines[0]?.line.readable, false);
    assert.match(r.lines[0]?.line.reason ?? '', /longer than 100 bytes/);
    assert.equal(r.forward.length, 0);
  });

  it('backslash continuation joins lines for reading', () => {
    const r = run('piped', ['r\\\nm -rf /\n'], noRm);
    assert.deepEqual(r.lines[1]?.line.readings, ['m -rf /', 'rm -rf /']);
    assert.equal(r.forward.toString(), 'r\\\n');
  });
});

describe('StdinFilter canonical model', () => {
  it('holds at most the kernel line limit', () => {
    const r = run('tty', [`${'x'.repeat(CANONICAL_MAX + 1)}\r`]);
    assert.equal(r.lines[0]?.line.readable, false);
  });
});

// ---- properties -------------------------------------------------------------

const unit = fc.oneof(
  fc.constantFrom('ls', 'rm', 'r', 'm', ' -rf', ' /', 'echo', ' é', '日本', '🙂', 'e\u0301', '\\'),
  fc.constantFrom(
    ...'\x7f\b\x15\x17\x01\x05\x0b\x14\x02\x06\x03\x04\t\x16\x18\x00\x0f\x1a\x1c\x12\x19\x0c'.split(''),
  ),
  fc.constantFrom(
    '\x1b[D',
    '\x1b[C',
    '\x1b[A',
    '\x1b[3~',
    '\x1b[H',
    '\x1b[F',
    '\x1bOD',
    '\x1bOC',
    '\x1bb',
    '\x1bf',
    '\x1bd',
    '\x1b\x7f',
    '\x1b[15~',
    '\x1b',
  ),
  fc.constantFrom('\r', '\n', '\r\n'),
  fc.constantFrom('\x1b[200~', '\x1b[201~'),
  fc.uint8Array({ minLength: 1, maxLength: 3 }).map((a) => Buffer.from(a)),
);
const input = fc
  .array(unit, { maxLength: 40 })
  .map((units) => Buffer.concat(units.map((u) => (typeof u === 'string' ? Buffer.from(u) : u))));
const cuts = fc.array(fc.nat(), { maxLength: 10 });
const modes = fc.constantFrom<StdinMode>('tty', 'tty-hold', 'piped');

/** What a run decided, without object identity. */
function summary(r: Run): unknown {
  return { forward: r.forward.toString('hex'), lines: r.lines, closeStdin: r.closeStdin };
}

describe('StdinFilter properties', () => {
  it('any split of the input gives the same lines and the same bytes to the pod', () => {
    // Fails e.g. if a cut escape sequence or UTF-8 character were read as separate keys.
    fc.assert(
      fc.property(modes, input, cuts, (mode, bytes, points) => {
        const whole = summary(run(mode, [bytes], noRm));
        assert.deepEqual(summary(run(mode, splitAt(bytes, points), noRm)), whole);
        assert.deepEqual(summary(run(mode, splitAt(bytes, [...Array(bytes.length).keys()]), noRm)), whole);
      }),
      { numRuns: 400 },
    );
  });

  it('the pod is never sent a line that was refused or unreadable', () => {
    // Replays what was forwarded through a second filter that allows all: every line it sees
    // must be readable and allowed by the first. Fails e.g. if a refused line's Enter were sent,
    // or if tty-hold released held keys of a refused line.
    fc.assert(
      fc.property(modes, input, cuts, (mode, bytes, points) => {
        const first = run(mode, splitAt(bytes, points), noRm);
        // CANCEL_LINE discards the line in the pod (bash, python, the kernel: see the differential
        // tests), as Ctrl-C does in the model.
        const replay = run(mode, [
          Buffer.from(first.forward.toString('latin1').replaceAll(CANCEL_LINE.toString(), '\x03'), 'latin1'),
        ]);
        for (const { line } of replay.lines) {
          assert.ok(line.readable, `forwarded an unreadable line: ${JSON.stringify(line)}`);
          assert.ok(noRm(line).allow, `forwarded a refused line: ${JSON.stringify(line)}`);
        }
      }),
      { numRuns: 400 },
    );
  });

  it('random bytes never throw and end', () => {
    fc.assert(
      fc.property(modes, fc.uint8Array({ maxLength: 300 }), cuts, (mode, bytes, points) => {
        run(mode, splitAt(Buffer.from(bytes), points), noRm);
      }),
      { numRuns: 400 },
    );
  });
});
