/**
 * Differential tests: the lines StdinFilter and the line models read from
 * keys, against what real programs read from the same keys in a
 * pseudo-terminal (util-linux `script`):
 * - bash 5 / GNU readline, keys sent after each prompt: what readline
 *   accepted is what bash writes to its history file;
 * - the kernel's canonical mode: what `cat` reads with echo off;
 * - keys typed ahead while a command runs: the kernel edits them, then
 *   readline (the third reading).
 * The shells run with PATH pointing nowhere and type only harmless words.
 * Needs /usr/bin/script and /bin/bash (Debian: util-linux, bash).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { CanonicalLine, type CanonicalResult } from './canonical-line.ts';
import { readlineOf } from './readline-line.ts';
import { type InputLine, StdinFilter } from './stdin-filter.ts';

for (const tool of ['/usr/bin/script', '/bin/bash', '/bin/sh']) {
  assert.ok(existsSync(tool), `${tool} is needed to compare the line models with real programs`);
}

const dir = mkdtempSync(join(tmpdir(), 'chaperone-lines-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Bytes to type, once the output so far satisfies `when`. */
interface Piece {
  readonly bytes: Buffer;
  readonly when: (out: string) => boolean;
}
/**
 * readline has started reading `n` times: it turns bracketed paste on
 * (ESC [?2004h) each time, once it has put the terminal in raw mode (keys
 * that come earlier are edited by the kernel first). Prompts are no clock:
 * readline redraws the prompt while editing.
 */
const afterPrompts =
  (n: number) =>
  (out: string): boolean =>
    out.split('\x1b[?2004h').length - 1 >= n;

/** Runs `command` in a pseudo-terminal, typing each piece when its time comes. */
function inPty(command: string, pieces: readonly Piece[], env: Record<string, string>): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('/usr/bin/script', ['-qfec', command, '/dev/null'], {
      env: { SHELL: '/bin/sh', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let sent = 0;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} did not finish; typed ${sent}/${pieces.length}; output:\n${out}`));
    }, 20_000);
    const next = (): void => {
      while (sent < pieces.length && (pieces[sent] as Piece).when(out)) {
        child.stdin.write((pieces[sent] as Piece).bytes);
        sent++;
      }
    };
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString('latin1');
      next();
    });
    child.on('error', reject);
    child.on('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    next();
  });
}

/** Types each piece once readline reads (the last one types `exit`). */
function afterEachPrompt(pieces: readonly Buffer[]): Piece[] {
  return pieces.map((bytes, k) => ({ bytes, when: afterPrompts(k + 1) }));
}

let sessions = 0;
/** Runs an interactive bash on `pieces` (the last types `exit`); returns the lines readline accepted (its history). */
async function bash(pieces: readonly Piece[], inputrc: string): Promise<string[]> {
  const history = join(dir, `history-${sessions++}`);
  const env = {
    PATH: '/nonexistent',
    HOME: dir,
    TERM: 'xterm',
    INPUTRC: inputrc,
    HISTFILE: history,
    HISTSIZE: '10000',
    HISTFILESIZE: '10000',
    HISTCONTROL: '',
    PS1: '$ ',
  };
  await inPty('/bin/bash --norc --noprofile -i', pieces, env);
  const lines = readFileSync(history, 'latin1').split('\n');
  assert.equal(lines.pop(), '', 'history ends with a line break');
  assert.equal(lines.pop(), 'exit');
  return lines;
}

/**
 * What `cat` reads from `keys` in canonical mode (echo off). Two Ctrl-D end
 * it: the first hands over a line left without a line end, if any.
 */
async function cat(keys: Buffer): Promise<string> {
  const file = join(dir, `cat-${sessions++}`);
  const now = (): boolean => true;
  const pieces = [keys, Buffer.from('\x04\x04')].map((bytes) => ({ bytes, when: now }));
  await inPty(`stty -echo; exec cat > ${file}`, pieces, { PATH: '/usr/bin:/bin' });
  return readFileSync(file, 'latin1');
}

/**
 * Splits forwarded bytes after each CR (readline starts reading again after
 * each); what follows the last CR (a cancelled line) goes with `exit`.
 */
function byPrompt(bytes: Buffer): Buffer[] {
  const pieces: Buffer[] = [];
  let start = 0;
  bytes.forEach((b, k) => {
    if (b === 0x0d) {
      pieces.push(bytes.subarray(start, k + 1));
      start = k + 1;
    }
  });
  pieces.push(Buffer.concat([bytes.subarray(start), Buffer.from('exit\r')]));
  return pieces;
}

/** The filter in tty mode, refusing lines that contain REFUSED. */
function filterTty(keys: Buffer): { forward: Buffer; lines: InputLine[] } {
  const f = new StdinFilter({ mode: 'tty', decide: (l) => ({ allow: !l.text.includes('REFUSED') }) });
  const r = f.push(keys);
  return { forward: r.forward, lines: r.lines.filter((l) => l.forwarded).map((l) => l.line) };
}

const latin1 = (s: string): string => Buffer.from(s, 'utf8').toString('latin1');

// Harmless words: no letters of a builtin, nothing the shell expands.
const word = fc.constantFrom('qz', 'x1', '79', ' ', '-', '/', ':', 'zq x7');
const editKeys = ['\x7f', '\b', '\x01', '\x05', '\x02', '\x06', '\x0b', '\x15', '\x17', '\x14'];
const escapeKeys = [
  '\x1b[D',
  '\x1b[C',
  '\x1bOD',
  '\x1bOC',
  '\x1b[H',
  '\x1b[F',
  '\x1bOH',
  '\x1bOF',
  '\x1b[3~',
  '\x1bb',
  '\x1bf',
  '\x1bd',
  '\x1b\x7f',
];
/** One typed line, starting with ": " so that what runs is the null command when nothing is edited away. */
const typedLine = (units: fc.Arbitrary<string>) =>
  fc.array(units, { minLength: 1, maxLength: 12 }).map((u) => `: ${u.join('')}\r`);

describe('line models against real programs', { concurrency: false }, () => {
  const table = [
    ': ls -la',
    ': lx\x7fs',
    ': lx\bs',
    ': qz qz\x15: ok',
    ': echo hello world\x17',
    ': ls -l /tmp/x\x17',
    's -la\x01:\x06 l',
    ': ls\x01\x05 -l',
    ': lss\x02\x02\x06\x7f',
    ': echo wrld\x1b[D\x1b[D\x1b[Do',
    ': echo wrld\x1bOD\x1bOD\x1bOD\x1bOCx\x7fo',
    ': echo helllo\x1b[D\x1b[D\x1b[3~',
    ': ls -la /etc\x01\x06\x06\x06\x06\x0b',
    's\x1b[H:\x1b[F -\x1bOHx\x1bOFa',
    ': echo one two\x1bb\x1bdsix\x1bb\x1bf!',
    ': cat a/two\x1b\x7f',
    ': sl\x14',
    ': lsa\x02\x02\x14',
    ': echo \x16\x01',
    ': echo héllo 日本',
    ': REFUSED',
    ': after',
  ].map((s) => `${s}\r`);

  it('bash accepts exactly the lines the filter lets through (table, keys after each prompt)', async () => {
    // Fails if an editing key's model differs from readline's (e.g. Ctrl-W killing to punctuation).
    const keys = Buffer.from(table.join(''));
    const { forward, lines } = filterTty(keys);
    const accepted = await bash(afterEachPrompt(byPrompt(forward)), '/dev/null');
    assert.deepEqual(
      accepted,
      lines.map((l) => latin1(l.text)),
    );
    assert.equal(lines.length, table.length - 1, 'all but the refused line ran');
  });

  it('bash accepts exactly the lines the filter lets through (random keys, with and without /etc/inputrc)', async () => {
    const units = fc.oneof(
      word,
      word,
      fc.constantFrom(...editKeys),
      fc.constantFrom(...escapeKeys),
      // Refused lines are cancelled. (No history recall: editing a recalled line changes bash's
      // history list, so its history file would no longer tell what ran.)
      fc.constant('REFUSED'),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(typedLine(units), { minLength: 1, maxLength: 6 }),
        fc.boolean(),
        async (typed, rc) => {
          const { forward, lines } = filterTty(Buffer.from(typed.join('')));
          const accepted = await bash(afterEachPrompt(byPrompt(forward)), rc ? '/etc/inputrc' : '/dev/null');
          // Blank lines run nothing: bash keeps some in its history, the filter asks about one only when
          // another reading of it is not blank.
          assert.deepEqual(
            accepted.filter((l) => l.trim() !== ''),
            lines.filter((l) => l.text.trim() !== '').map((l) => latin1(l.text)),
          );
        },
      ),
      { numRuns: 25 },
    );
  });

  it('the kernel reads what CanonicalLine reads (random keys, including Ctrl-V and NUL)', async () => {
    // Fails e.g. if WERASE used white space like readline, or if ERASE removed a whole character.
    const units = fc.oneof(
      word,
      fc.constantFrom(...editKeys, '\x16', '\x16\x15', '\x00', '\t'),
      fc.constantFrom(...escapeKeys),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(typedLine(units), { minLength: 1, maxLength: 6 }), async (typed) => {
        const keys = Buffer.from(typed.join(''));
        const model = new CanonicalLine();
        const done: CanonicalResult[] = [];
        model.feed(keys, done);
        const read = [...done.map((l) => Buffer.concat([l.bytes, Buffer.from('\n')])), model.take().bytes];
        assert.equal(await cat(keys), Buffer.concat(read).toString('latin1'));
      }),
      { numRuns: 20 },
    );
  });

  it('keys typed ahead while a command runs are read by the kernel, then by readline', async () => {
    // Fails without the typed-ahead reading: ": lss^B^B^F DEL" runs ": lss", not ": ls".
    const units = fc.oneof(word, word, fc.constantFrom(...editKeys));
    await fc.assert(
      fc.asyncProperty(fc.array(typedLine(units), { minLength: 1, maxLength: 6 }), async (typed) => {
        const keys = Buffer.from(typed.join(''));
        const model = new CanonicalLine();
        const done: CanonicalResult[] = [];
        model.feed(keys, done);
        const expected = done
          .map((l) => readlineOf(l.bytes, 4096))
          .filter((r) => r.text.trim() !== '')
          .map((r) => {
            assert.equal(r.reason, undefined);
            return latin1(r.text);
          });
        // A command that says it runs (the shell has given the terminal back to canonical mode by
        // then), and the keys typed while it sleeps.
        const run = "/bin/sh -c 'echo R$((6*7)); exec /bin/sleep 1'";
        const accepted = await bash(
          [
            { bytes: Buffer.from(`${run}\r`), when: afterPrompts(1) },
            { bytes: Buffer.concat([keys, Buffer.from('exit\r')]), when: (out) => out.includes('R42') },
          ],
          '/dev/null',
        );
        assert.equal(accepted.shift(), run);
        assert.deepEqual(
          accepted.filter((l) => l.trim() !== ''),
          expected,
        );
      }),
      { numRuns: 8 },
    );
  });
});
