/**
 * Reads one input line the way a POSIX shell (sh, bash, dash, zsh) splits it
 * into the commands it runs, so that the exec rules written for argv can
 * judge what is typed into a shell. Pure.
 *
 * - Quotes and backslashes are removed as the shell removes them ('…' is
 *   literal; in "…" a backslash escapes only $ ` " \ and newline).
 * - Simple commands end at `;`, `&`, `|`, `&&`, `||`, `|&`, `;;`, a newline
 *   and parentheses; `$(…)`, `` `…` ``, `<(…)` and `>(…)` are read as
 *   commands of their own (also inside double quotes) and stay part of the
 *   word they appear in.
 * - A command's argv drops what comes before its program: `VAR=value`
 *   assignments, reserved words (`if`, `then`, `do`, `!`, `{` …), wrappers
 *   (`exec`, `command`, `builtin`, `nohup`, `time`, `env`, `sudo`, `doas`,
 *   `nice`, `timeout`, `stdbuf`, `ionice`, `chroot`, `setsid`, `taskset`,
 *   `xargs`) with their options and the options' arguments (`exec -a ls rm`
 *   runs rm; `env -S 'rm x'` too), and redirections with their targets
 *   wherever they stand (`>out rm x` runs rm). After a wrapper option the
 *   guard does not know, every later word is judged as a possible program.
 *   `for`, `select` and `case` heads run nothing. Each wrapper's own argv
 *   (`sudo rm x` from `sudo` on) is kept in `wrappers`, so rules on the
 *   wrapper still apply.
 * - Programs that run a command given in their arguments have it read as a
 *   command of its own (`also`): a shell's `-c` script (`sh -c`, `bash -lc`,
 *   also through `su -c`, `runuser -c`, `flock -c`, `script -c`), `find`'s
 *   `-exec`, `-execdir`, `-ok` and `-okdir` commands, and `watch`'s command
 *   (run by `sh -c` unless `-x`). A script is read as a line in turn, to
 *   INNER_DEPTH levels; deeper, each of its words is judged as a possible
 *   program.
 * - A line that ends inside a quote, substitution, `${…}` or parenthesis is
 *   `unterminated`: the shell reads on into the next line.
 * - `#` is not taken as the start of a comment: a shell may not read it as
 *   one (zsh without interactivecomments), so the rest is judged too.
 *
 * What this cannot know: what variables, aliases and functions expand to
 * (`$X -rf /` has the program `$X`), and what a here-document feeds its
 * command (its lines arrive as lines of their own and are judged as
 * commands). The sidecar README says what that means for the guard.
 */

export interface ShellLine {
  /** Every simple command the line runs, as argv (substitutions included). */
  readonly commands: readonly (readonly string[])[];
  /** Each wrapper's argv, from the wrapper on (`sudo -u x rm y`, `nohup rm y`). */
  readonly wrappers: readonly (readonly string[])[];
  /**
   * The whole line as words with quotes removed and operators as words of
   * their own, from the first command's program on (`ls -l | grep x` gives
   * ls, -l, |, grep, x): what a `commands` regex over the line sees.
   */
  readonly words: readonly string[];
  /**
   * The line ends inside a quote, a substitution (`$(`, `` ` ``, `${`) or a
   * parenthesis: the shell goes on reading the next line as part of it, so
   * this line alone does not say what runs.
   */
  readonly unterminated: boolean;
  /**
   * The line has a `!` that an interactive bash history-expands (`!!`,
   * `!$`, `!:1*`, `!rm` …): what it runs depends on the history.
   */
  readonly history: boolean;
}

/** Nesting of substitutions and parentheses read; deeper text is read as plain words. */
const MAX_DEPTH = 32;

interface Token {
  readonly op: boolean;
  readonly text: string;
}

const OPERATORS = [
  '&>>',
  '<<<',
  '<<-',
  '&&',
  '||',
  ';;',
  '|&',
  '>>',
  '<<',
  '<&',
  '>&',
  '<>',
  '>|',
  '&>',
  ';',
  '&',
  '|',
  '<',
  '>',
  ')',
];
const isRedirect = (op: string): boolean => op.startsWith('<') || op.startsWith('>') || op.startsWith('&>');

const RESERVED = new Set([
  '!',
  '{',
  '}',
  '(',
  ')',
  'if',
  'then',
  'else',
  'elif',
  'fi',
  'do',
  'done',
  'while',
  'until',
  'esac',
  'in',
  'function',
  'coproc',
  '[[',
]);
/** Heads whose words are names and patterns, not a command. */
const NO_COMMAND = new Set(['for', 'select', 'case']);
/**
 * A program that runs the command in its arguments: its options, which of
 * them take an argument (the next word, or the rest of the word: `-uroot`),
 * and how many operands come before the command (`timeout 5 rm`).
 */
interface Wrapper {
  /** Short options that take an argument. */
  readonly takes: string;
  /** Short options without one. */
  readonly flags: string;
  /** Long options that take an argument (as `--name value` or `--name=value`). */
  readonly long?: readonly string[];
  /** Long options without one. */
  readonly longFlags?: readonly string[];
  /** Operands before the command. */
  readonly operands?: number;
  /** `-5` is an option (nice). */
  readonly digits?: boolean;
  /** Options whose argument is itself a command line (env -S). */
  readonly split?: readonly string[];
}

/** Wrappers and their options (GNU coreutils, sudo, OpenBSD doas, util-linux, findutils, bash builtins). */
const WRAPPERS = new Map<string, Wrapper>([
  ['exec', { takes: 'a', flags: 'cl' }],
  ['command', { takes: '', flags: 'pvV' }],
  ['builtin', { takes: '', flags: '' }],
  ['nohup', { takes: '', flags: '' }],
  [
    'time',
    {
      takes: 'fo',
      flags: 'pavqV',
      long: ['format', 'output'],
      longFlags: ['append', 'verbose', 'quiet', 'portability'],
    },
  ],
  [
    'env',
    {
      takes: 'uCS',
      flags: 'i0v',
      long: ['unset', 'chdir', 'split-string'],
      longFlags: [
        'ignore-environment',
        'null',
        'debug',
        'default-signal',
        'ignore-signal',
        'block-signal',
        'list-signal-handling',
      ],
      split: ['S', 'split-string'],
    },
  ],
  [
    'sudo',
    {
      takes: 'ughCDrtUpTR',
      flags: 'AbEeHiKklnPSsVv',
      long: [
        'user',
        'group',
        'host',
        'close-from',
        'chdir',
        'role',
        'type',
        'other-user',
        'prompt',
        'command-timeout',
        'chroot',
      ],
      longFlags: [
        'askpass',
        'background',
        'bell',
        'preserve-env',
        'edit',
        'set-home',
        'login',
        'remove-timestamp',
        'reset-timestamp',
        'list',
        'non-interactive',
        'preserve-groups',
        'stdin',
        'shell',
        'validate',
      ],
    },
  ],
  ['doas', { takes: 'uC', flags: 'nsL' }],
  ['nice', { takes: 'n', flags: '', long: ['adjustment'], digits: true }],
  [
    'timeout',
    {
      takes: 'sk',
      flags: 'v',
      long: ['signal', 'kill-after'],
      longFlags: ['preserve-status', 'foreground', 'verbose'],
      operands: 1,
    },
  ],
  ['stdbuf', { takes: 'ioe', flags: '', long: ['input', 'output', 'error'] }],
  [
    'ionice',
    { takes: 'cnpPu', flags: 't', long: ['class', 'classdata', 'pid', 'pgid', 'uid'], longFlags: ['ignore'] },
  ],
  ['chroot', { takes: '', flags: '', long: ['userspec', 'groups'], longFlags: ['skip-chdir'], operands: 1 }],
  ['setsid', { takes: '', flags: 'cfw', longFlags: ['ctty', 'fork', 'wait'] }],
  ['taskset', { takes: '', flags: 'ac', longFlags: ['all-tasks', 'cpu-list'], operands: 1 }],
  [
    'xargs',
    {
      takes: 'IdEaLnPs',
      flags: '0oprtxiel',
      long: ['arg-file', 'delimiter', 'max-args', 'max-procs', 'max-chars', 'process-slot-var'],
      longFlags: [
        'null',
        'open-tty',
        'interactive',
        'no-run-if-empty',
        'verbose',
        'exit',
        'show-limits',
        'eof',
        'replace',
        'max-lines',
      ],
    },
  ],
]);
const ASSIGNMENT = /^[A-Za-z_][A-Za-z0-9_]*(\[[^\]]*\])?\+?=/;

const BLANK = new Set([' ', '\t']);

/** bash's `$'…'` escapes that stand for one character. */
const ANSI_C_ESCAPES: Record<string, string> = {
  a: '\x07',
  b: '\b',
  e: '\x1b',
  E: '\x1b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
  v: '\v',
  '\\': '\\',
  "'": "'",
  '"': '"',
  '?': '?',
};
/** `\xHH`, `\uHHHH`, `\UHHHHHHHH`, `\NNN` (after the backslash). */
const ANSI_C_NUMBER = /^(?:x([0-9A-Fa-f]{1,2})|[uU]([0-9A-Fa-f]{1,8})|([0-7]{1,3}))/;

class Scanner {
  readonly #s: string;
  /** Commands read inside substitutions, in the order met. */
  readonly nested: string[][] = [];
  /** Wrappers' argvs read inside substitutions. */
  readonly nestedWrappers: string[][] = [];
  /** How deep this text is inside scripts of other lines (INNER_DEPTH). */
  readonly #inner: number;
  /** A quote, substitution or parenthesis was still open at the end of the text. */
  unterminated = false;
  /** A `!` bash would history-expand was read. */
  history = false;

  constructor(s: string, inner: number) {
    this.#s = s;
    this.#inner = inner;
  }

  /**
   * Reads tokens from `i` until `closer` (`)` or a backquote) or the end;
   * returns them and the index after the closer.
   */
  list(i: number, closer: string, depth: number): { tokens: Token[]; end: number } {
    const s = this.#s;
    const tokens: Token[] = [];
    let word: string | undefined;
    const flush = () => {
      if (word !== undefined) tokens.push({ op: false, text: word });
      word = undefined;
    };
    while (i < s.length) {
      const c = s[i] as string;
      if (closer !== '' && c === closer) {
        flush();
        return { tokens, end: i + 1 };
      }
      if (BLANK.has(c) || c === '\n' || c === '\r') {
        flush();
        if (c === '\n') tokens.push({ op: true, text: ';' });
        i++;
        continue;
      }
      if (c === '\\') {
        // A backslash-newline joins the lines; otherwise the next character is literal.
        const next = s[i + 1];
        if (next !== undefined && next !== '\n') word = (word ?? '') + next;
        else if (next === undefined) word = word ?? '';
        i += 2;
        continue;
      }
      if (c === '$' && s[i + 1] === "'") {
        const r = this.#ansiC(i + 2);
        word = (word ?? '') + r.text;
        i = r.end;
        continue;
      }
      if (c === '$' && s[i + 1] === '"') {
        // $"…" is a double-quoted string (translated by the locale).
        i++;
        continue;
      }
      if (c === '!') this.#bang(i, false);
      if (c === "'") {
        const j = s.indexOf("'", i + 1);
        if (j < 0) this.unterminated = true;
        const end = j < 0 ? s.length : j;
        word = (word ?? '') + s.slice(i + 1, end);
        i = end + 1;
        continue;
      }
      if (c === '"') {
        const r = this.#double(i + 1, depth);
        word = (word ?? '') + r.text;
        i = r.end;
        continue;
      }
      this.#parameter(i);
      const sub = this.#substitution(i, depth);
      if (sub !== undefined) {
        word = (word ?? '') + s.slice(i, sub);
        i = sub;
        continue;
      }
      if (c === '(') {
        // A subshell or group: its commands are the line's commands.
        flush();
        if (depth >= MAX_DEPTH) {
          word = c;
          i++;
          continue;
        }
        const inner = this.list(i + 1, ')', depth + 1);
        tokens.push({ op: true, text: '(' }, ...inner.tokens, { op: true, text: ')' });
        i = inner.end;
        continue;
      }
      if (';&|<>)'.includes(c)) {
        // An fd number directly before a redirection belongs to it (`2>err`).
        if ((c === '<' || c === '>') && word !== undefined && /^\d+$/.test(word)) word = undefined;
        flush();
        const op = OPERATORS.find((o) => s.startsWith(o, i)) ?? c;
        tokens.push({ op: true, text: op });
        i += op.length;
        continue;
      }
      word = (word ?? '') + c;
      i++;
    }
    flush();
    if (closer !== '') this.unterminated = true;
    return { tokens, end: s.length };
  }

  /**
   * Whether the `!` at `i` is one an interactive bash history-expands: not
   * before a blank, the end, `=` or `(` (nor `"` inside double quotes), and
   * not `$!` or `${!`.
   */
  #bang(i: number, quoted: boolean): void {
    const s = this.#s;
    const next = s[i + 1];
    if (next === undefined || BLANK.has(next) || next === '\n' || next === '=' || next === '(') return;
    if (quoted && next === '"') return;
    if (s[i - 1] === '$' || (s[i - 1] === '{' && s[i - 2] === '$')) return;
    this.history = true;
  }

  /** The inside of `$'…'` from `i` with its escapes decoded, and the index after the closing quote. */
  #ansiC(i: number): { text: string; end: number } {
    const s = this.#s;
    let text = '';
    while (i < s.length) {
      const c = s[i] as string;
      if (c === "'") return { text, end: i + 1 };
      if (c !== '\\' || i + 1 >= s.length) {
        text += c;
        i++;
        continue;
      }
      const e = s[i + 1] as string;
      const simple = ANSI_C_ESCAPES[e];
      if (simple !== undefined) {
        text += simple;
        i += 2;
        continue;
      }
      const number = ANSI_C_NUMBER.exec(s.slice(i + 1, i + 11));
      if (number) {
        const [all, x, u, o] = number;
        const code = x
          ? Number.parseInt(x, 16)
          : u
            ? Number.parseInt(u, 16)
            : Number.parseInt(o as string, 8);
        text += code <= 0x10ffff ? String.fromCodePoint(code) : '';
        i += 1 + (all as string).length;
        continue;
      }
      if (e === 'c' && i + 2 < s.length) {
        text += String.fromCharCode((s.charCodeAt(i + 2) & 0x1f) as number);
        i += 3;
        continue;
      }
      text += c + e;
      i += 2;
    }
    this.unterminated = true;
    return { text, end: s.length };
  }

  /**
   * Notes a `${` at `i` without its matching `}` (braces nest; quotes inside
   * are skipped) as unterminated. The text inside is then read as usual, so
   * substitutions in it (`${x:-$(rm y)}`) are still commands.
   */
  #parameter(i: number): void {
    const s = this.#s;
    if (s[i] !== '$' || s[i + 1] !== '{') return;
    let depth = 0;
    for (let j = i + 1; j < s.length; j++) {
      const c = s[j];
      if (c === '\\') j++;
      else if (c === "'" || c === '"') {
        const k = s.indexOf(c, j + 1);
        if (k < 0) break;
        j = k;
      } else if (c === '{') depth++;
      else if (c === '}' && --depth === 0) return;
    }
    this.unterminated = true;
  }

  /** `$(`, `` ` ``, `<(` or `>(` at `i`: reads the commands inside and returns the index after it. */
  #substitution(i: number, depth: number): number | undefined {
    const s = this.#s;
    const c = s[i];
    let open: number;
    let closer: string;
    if (c === '`') {
      open = i + 1;
      closer = '`';
    } else if ((c === '$' || c === '<' || c === '>') && s[i + 1] === '(') {
      open = i + 2;
      closer = ')';
    } else return undefined;
    if (depth >= MAX_DEPTH) return undefined;
    const inner = this.list(open, closer, depth + 1);
    for (const c of commandsOf(inner.tokens, this.#inner))
      (c.wrapper ? this.nestedWrappers : this.nested).push(c.argv);
    return inner.end;
  }

  /** The inside of double quotes from `i`: its text and the index after the closing quote. */
  #double(i: number, depth: number): { text: string; end: number } {
    const s = this.#s;
    let text = '';
    while (i < s.length) {
      const c = s[i] as string;
      if (c === '"') return { text, end: i + 1 };
      if (c === '\\' && i + 1 < s.length && '$`"\\\n'.includes(s[i + 1] as string)) {
        if (s[i + 1] !== '\n') text += s[i + 1];
        i += 2;
        continue;
      }
      if (c === '`' || (c === '$' && s[i + 1] === '(')) {
        const end = this.#substitution(i, depth);
        if (end !== undefined) {
          text += s.slice(i, end);
          i = end;
          continue;
        }
      }
      if (c === '!') this.#bang(i, true);
      this.#parameter(i);
      text += c;
      i++;
    }
    this.unterminated = true;
    return { text, end: s.length };
  }
}

/** Where a simple command's program is among its words, and other argvs it may run. */
interface Program {
  /** Index of the program (-1: none). */
  readonly at: number;
  /**
   * Other argvs the command may run: every word after an option the guard
   * does not know (it may take an argument, so any later word may be the
   * program), and the command line in an option's argument (`env -S`).
   */
  readonly also: string[][];
  /** Indexes of the wrappers before the program. */
  readonly wrappers: number[];
}

/**
 * Skips a wrapper's options from `i` (the word after the wrapper); returns
 * the index of its command, or -1 with `unknown` when an option is not known.
 */
function skipOptions(
  words: readonly string[],
  i: number,
  w: Wrapper,
  also: string[][],
  depth: number,
): { at: number; unknown: boolean } {
  let operands = w.operands ?? 0;
  const split = (arg: string | undefined) => {
    if (arg === undefined) return;
    also.push(...argvsRun([...arg.split(/[ \t]+/).filter((x) => x !== ''), ...words.slice(i)], depth));
  };
  while (i < words.length) {
    const word = words[i] as string;
    if (word === '--') return { at: i + 1 + operands, unknown: false };
    if (!word.startsWith('-') || word === '-') {
      if (operands === 0) return { at: i, unknown: false };
      operands--;
      i++;
      continue;
    }
    i++;
    if (word.startsWith('--')) {
      const eq = word.indexOf('=');
      const name = word.slice(2, eq < 0 ? undefined : eq);
      if (w.long?.includes(name)) {
        const arg = eq < 0 ? words[i++] : word.slice(eq + 1);
        if (w.split?.includes(name)) split(arg);
      } else if (!w.longFlags?.includes(name)) return { at: -1, unknown: true };
      continue;
    }
    if (w.digits && /^-\d+$/.test(word)) continue;
    for (let k = 1; k < word.length; k++) {
      const letter = word[k] as string;
      if (w.takes.includes(letter)) {
        const arg = k + 1 < word.length ? word.slice(k + 1) : words[i++];
        if (w.split?.includes(letter)) split(arg);
        break;
      }
      if (!w.flags.includes(letter)) return { at: -1, unknown: true };
    }
  }
  return { at: -1, unknown: false };
}

/** Where a simple command's program is among its words: assignments, reserved words and wrappers before it are skipped. */
function programOf(words: readonly string[], depth: number): Program {
  const also: string[][] = [];
  const wrappers: number[] = [];
  let i = 0;
  while (i < words.length) {
    const w = words[i] as string;
    if (i === 0 && NO_COMMAND.has(w)) return { at: -1, also, wrappers };
    if (w === 'function') {
      // `function name { …; }`: the name is not a program; the body's commands are read as commands.
      i += 2;
      continue;
    }
    if (RESERVED.has(w) || ASSIGNMENT.test(w)) {
      i++;
      continue;
    }
    const name = w.split('/').pop() as string;
    const wrapper = WRAPPERS.get(name);
    if (wrapper === undefined) {
      also.push(...(INNER_COMMANDS.get(name)?.(words.slice(i + 1), depth) ?? []));
      return { at: i, also, wrappers };
    }
    wrappers.push(i);
    const next = skipOptions(words, i + 1, wrapper, also, depth);
    if (next.unknown) {
      // An option the guard does not know may take an argument: any later word may be the program.
      for (let k = i + 1; k < words.length; k++) also.push(words.slice(k));
      return { at: -1, also, wrappers };
    }
    if (next.at < 0 || next.at >= words.length) return { at: -1, also, wrappers };
    i = next.at;
  }
  return { at: -1, also, wrappers };
}

/** How deep scripts inside scripts (`sh -c "su -c '…'"`) are read as lines. */
const INNER_DEPTH = 8;

/** The commands of a script a program runs (`sh -c SCRIPT`): read as a line; too deep, every word may be a program. */
function scriptCommands(script: string | undefined, depth: number): string[][] {
  if (script === undefined) return [];
  if (depth >= INNER_DEPTH) {
    // Quotes and backslashes split words too: `\\"rm` is judged as rm.
    const words = script.split(/[\s;&|()`$<>'"\\]+/).filter((x) => x !== '');
    return words.map((_, k) => words.slice(k));
  }
  const read = readLine(script, depth + 1);
  return [...read.commands.map((c) => [...c]), ...read.wrappers.map((c) => [...c])];
}

/** Every argv an argv runs: itself, from each wrapper on, its program's, and the commands in its arguments. */
function argvsRun(argv: readonly string[], depth: number): string[][] {
  const p = programOf(argv, depth);
  const out = p.wrappers.map((k) => argv.slice(k));
  if (p.at >= 0) out.push(argv.slice(p.at));
  out.push(...p.also);
  return out;
}

/**
 * The argument of a short option letter or long option among `args`, in any
 * position (getopt permutes): `-c X`, `-lcX`, `--command X`, `--command=X`.
 * `takes` are the short letters with an argument, `long` the long names.
 */
function optionArguments(
  args: readonly string[],
  letter: string,
  longNames: readonly string[],
  takes: string,
  longTakes: readonly string[],
): string[] {
  const found: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a === '--') break;
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = a.slice(2, eq < 0 ? undefined : eq);
      if (!longNames.includes(name) && !longTakes.includes(name)) continue;
      const arg = eq < 0 ? args[++i] : a.slice(eq + 1);
      if (longNames.includes(name) && arg !== undefined) found.push(arg);
      continue;
    }
    if (!a.startsWith('-') || a === '-') continue;
    for (let k = 1; k < a.length; k++) {
      const c = a[k] as string;
      if (!takes.includes(c)) continue;
      const arg = k + 1 < a.length ? a.slice(k + 1) : args[++i];
      if (c === letter && arg !== undefined) found.push(arg);
      break;
    }
  }
  return found;
}

/** `sh -c SCRIPT`, `bash -lc SCRIPT`, `sh -e -c SCRIPT name args`: the script, when a `c` option is given. */
function shellScript(args: readonly string[]): string | undefined {
  let c = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a === '--' || a === '-') return c ? args[i + 1] : undefined;
    if (a.startsWith('--')) {
      // bash's long options; these two take a file.
      if (a === '--rcfile' || a === '--init-file') i++;
      continue;
    }
    if (!/^[-+]/.test(a)) return c ? a : undefined;
    const letters = a.slice(1);
    if (a[0] === '-' && letters.includes('c')) c = true;
    // -o option and -O shopt take the next word.
    if (/[oO]/.test(letters)) i++;
  }
  return undefined;
}

const SHELLS = ['sh', 'bash', 'dash', 'ash', 'zsh', 'ksh', 'mksh', 'yash', 'posh', 'rbash'];

/**
 * Programs that run a command given in their arguments, not as a prefix
 * (see the file's comment): the argvs they run, from their arguments.
 */
const INNER_COMMANDS = new Map<string, (args: readonly string[], depth: number) => string[][]>([
  ...SHELLS.map(
    (sh) =>
      [sh, (args: readonly string[], depth: number) => scriptCommands(shellScript(args), depth)] as const,
  ),
  [
    'su',
    (args, depth) =>
      optionArguments(args, 'c', ['command', 'session-command'], 'cgGsw', [
        'group',
        'supp-group',
        'shell',
        'whitelist-environment',
      ]).flatMap((s) => scriptCommands(s, depth)),
  ],
  ['runuser', runuserCommands],
  [
    'script',
    (args, depth) =>
      optionArguments(args, 'c', ['command'], 'cEIOTBm', [
        'echo',
        'log-in',
        'log-out',
        'log-timing',
        'log-io',
        'logging-format',
        'output-limit',
      ]).flatMap((s) => scriptCommands(s, depth)),
  ],
  ['flock', flockCommands],
  ['find', findCommands],
  ['watch', watchCommands],
]);

/**
 * Where the operands start after the leading options (`--` ends them), and
 * the options seen (letters and long names). `takes` are the short letters,
 * `long` the long names, that take the next word as their argument.
 */
function firstOperand(
  args: readonly string[],
  takes: string,
  long: readonly string[],
): { at: number; seen: Set<string> } {
  const seen = new Set<string>();
  let i = 0;
  while (i < args.length) {
    const a = args[i] as string;
    if (a === '--') return { at: i + 1, seen };
    if (!a.startsWith('-') || a === '-') break;
    i++;
    if (a.startsWith('--')) {
      const name = a.slice(2).split('=')[0] as string;
      seen.add(name);
      if (!a.includes('=') && long.includes(name)) i++;
      continue;
    }
    for (let k = 1; k < a.length; k++) {
      const letter = a[k] as string;
      seen.add(letter);
      if (!takes.includes(letter)) continue;
      if (k + 1 === a.length) i++;
      break;
    }
  }
  return { at: i, seen };
}

/** `runuser -c SCRIPT`, or `runuser -u USER [options] [--] COMMAND…` (run as it is). */
function runuserCommands(args: readonly string[], depth: number): string[][] {
  const long = ['group', 'supp-group', 'shell', 'user', 'whitelist-environment'];
  const scripts = optionArguments(args, 'c', ['command', 'session-command'], 'cgGsuw', long);
  if (scripts.length > 0) return scripts.flatMap((s) => scriptCommands(s, depth));
  const { at } = firstOperand(args, 'gGsuw', long);
  return at < args.length ? argvsRun(args.slice(at), depth) : [];
}

/** `flock [options] FILE COMMAND…` or `flock [options] FILE -c SCRIPT`. */
function flockCommands(args: readonly string[], depth: number): string[][] {
  const long = ['timeout', 'conflict-exit-code'];
  const scripts = optionArguments(args, 'c', ['command'], 'cwE', long);
  if (scripts.length > 0) return scripts.flatMap((s) => scriptCommands(s, depth));
  const { at } = firstOperand(args, 'wE', long);
  // The lock file, then the command (a bare fd number runs nothing).
  return at + 1 < args.length ? argvsRun(args.slice(at + 1), depth) : [];
}

/** find's `-exec CMD … ;`, `-exec CMD … {} +`, `-execdir`, `-ok`, `-okdir`. */
function findCommands(args: readonly string[], depth: number): string[][] {
  const out: string[][] = [];
  for (let i = 0; i < args.length; i++) {
    if (!['-exec', '-execdir', '-ok', '-okdir'].includes(args[i] as string)) continue;
    let j = i + 1;
    while (j < args.length && args[j] !== ';' && !(args[j] === '+' && args[j - 1] === '{}')) j++;
    out.push(...argvsRun(args.slice(i + 1, j), depth));
    i = j;
  }
  return out;
}

/** `watch [options] COMMAND…`: run by `sh -c` with the words joined, or as argv with `-x`. */
function watchCommands(args: readonly string[], depth: number): string[][] {
  const { at, seen } = firstOperand(args, 'nq', ['interval', 'equexit']);
  const exec = seen.has('x') || seen.has('exec');
  const rest = args.slice(at);
  if (rest.length === 0) return [];
  return exec ? argvsRun(rest, depth) : scriptCommands(rest.join(' '), depth);
}

/**
 * Every argv an exec request's argv runs (`kubectl exec pod -- sudo sh -c
 * 'rm x'`): the argv itself, from each wrapper on, the program's, and the
 * commands in its arguments, read as in a line. The argv is not a shell
 * line: its words are taken as they are.
 */
export function execArgvs(argv: readonly string[]): string[][] {
  const seen = new Set<string>([JSON.stringify(argv)]);
  const out: string[][] = [];
  for (const a of argvsRun(argv, 0)) {
    const key = JSON.stringify(a);
    if (a.length === 0 || seen.has(key)) continue;
    seen.add(key);
    out.push(a);
  }
  return out;
}

/** Most words one word's brace expansion is read into; the rest are not judged. */
const MAX_BRACE_WORDS = 256;

/** The items of a brace sequence `a..e` or `1..9[..2]`, or undefined. */
function braceSequence(body: string): string[] | undefined {
  const m = /^(?:(-?\d+)\.\.(-?\d+)|([A-Za-z])\.\.([A-Za-z]))(?:\.\.(-?\d+))?$/.exec(body);
  if (!m) return undefined;
  const letters = m[3] !== undefined;
  const from = letters ? (m[3] as string).charCodeAt(0) : Number(m[1]);
  const to = letters ? (m[4] as string).charCodeAt(0) : Number(m[2]);
  const step = Math.max(1, Math.abs(Number(m[5] ?? 1)));
  const out: string[] = [];
  const dir = from <= to ? 1 : -1;
  for (let v = from; dir > 0 ? v <= to : v >= to; v += dir * step) {
    out.push(letters ? String.fromCharCode(v) : String(v));
    if (out.length >= MAX_BRACE_WORDS) break;
  }
  return out;
}

/**
 * The words bash makes of `word` by brace expansion (`{rm,-rf,/x}` gives
 * rm, -rf, /x; `r{m,x}` rm, rx; `{q..r}m` qm, rm). Quotes are already gone,
 * so a quoted brace is expanded too: more is judged, never less.
 */
export function expandBraces(word: string): string[] {
  for (let i = 0; i < word.length; i++) {
    if (word[i] !== '{' || word[i - 1] === '$') continue;
    let depth = 0;
    let close = -1;
    const commas: number[] = [];
    for (let j = i; j < word.length && close < 0; j++) {
      const c = word[j];
      if (c === '{') depth++;
      else if (c === '}' && --depth === 0) close = j;
      else if (c === ',' && depth === 1) commas.push(j);
    }
    if (close < 0) continue;
    const alternatives =
      commas.length > 0
        ? [i, ...commas].map((from, k) => word.slice(from + 1, commas[k] ?? close))
        : braceSequence(word.slice(i + 1, close));
    if (alternatives === undefined) continue;
    const out: string[] = [];
    for (const a of alternatives) {
      for (const w of expandBraces(word.slice(0, i) + a + word.slice(close + 1))) {
        if (out.length >= MAX_BRACE_WORDS) return out;
        out.push(w);
      }
    }
    return out;
  }
  return [word];
}

interface Command {
  readonly argv: string[];
  /** Index of the program among the tokens. */
  readonly at: number;
  /** The argv from a wrapper on. */
  readonly wrapper?: boolean;
}

/** Splits tokens into simple commands; redirections and their targets are left out. */
function commandsOf(tokens: readonly Token[], depth: number): Command[] {
  const out: Command[] = [];
  let words: string[] = [];
  let at: number[] = [];
  let target = false;
  const end = () => {
    const p = programOf(words, depth);
    if (p.at >= 0) out.push({ argv: words.slice(p.at), at: at[p.at] as number });
    for (const argv of p.also) out.push({ argv, at: -1 });
    for (const k of p.wrappers) out.push({ argv: words.slice(k), at: -1, wrapper: true });
    if (words.some((w) => w.includes('{'))) {
      // Brace expansion makes words of its own, the program among them: `{rm,-rf,/x}` runs rm.
      const expanded = words.flatMap(expandBraces);
      if (expanded.length !== words.length || expanded.some((w, k) => w !== words[k])) {
        const q = programOf(expanded, depth);
        if (q.at >= 0) out.push({ argv: expanded.slice(q.at), at: -1 });
        for (const argv of q.also) out.push({ argv, at: -1 });
        for (const k of q.wrappers) out.push({ argv: expanded.slice(k), at: -1, wrapper: true });
      }
    }
    words = [];
    at = [];
  };
  tokens.forEach((t, k) => {
    if (t.op) {
      if (isRedirect(t.text)) target = true;
      else end();
    } else if (target) target = false;
    else {
      words.push(t.text);
      at.push(k);
    }
  });
  end();
  return out;
}

export function readShellLine(line: string): ShellLine {
  return readLine(line, 0);
}

/** readShellLine of a line `depth` scripts deep (`sh -c` inside `sh -c` …). */
function readLine(line: string, depth: number): ShellLine {
  const scanner = new Scanner(line, depth);
  const { tokens } = scanner.list(0, '', 0);
  const top = commandsOf(tokens, depth);
  const first = top.find((c) => c.at >= 0);
  return {
    commands: [...top.filter((c) => !c.wrapper).map((c) => c.argv), ...scanner.nested],
    wrappers: [...top.filter((c) => c.wrapper).map((c) => c.argv), ...scanner.nestedWrappers],
    // Only possible programs (an unknown wrapper option): the line's words from its start.
    words: (first === undefined ? (top.length > 0 ? tokens : []) : tokens.slice(first.at)).map((t) => t.text),
    unterminated: scanner.unterminated,
    history: scanner.history,
  };
}

const LINE_EDITOR_PROGRAMS = new Set([
  'bind',
  'bindkey',
  'stty',
  'zle',
  'tset',
  'reset',
  'fish_vi_key_bindings',
  'fish_hybrid_key_bindings',
  'fish_default_key_bindings',
]);
/** Text that configures a line editor wherever it appears (rc files, Python's readline module). */
const LINE_EDITOR_TEXT = /inputrc|editrc|parse_and_bind|read_init_file|\bbindkey\b|\bstty\b/i;
/** zsh reads option names without case or underscores. */
const editorMode = (w: string | undefined): boolean =>
  w !== undefined && /^(vi|emacs|viraw)$/.test(w.toLowerCase().replaceAll('_', ''));

/**
 * What in the line changes how keys are read — key bindings, the editing
 * mode, the terminal's line discipline — or undefined. The guard rebuilds
 * lines as the default line editor and terminal read them; after such a
 * change it could no longer tell what a line runs.
 */
export function lineEditorChange(line: string, read: ShellLine = readShellLine(line)): string | undefined {
  const text = LINE_EDITOR_TEXT.exec(line);
  if (text) return `"${text[0]}"`;
  for (const argv of read.commands) {
    const program = (argv[0] as string).split('/').pop() as string;
    if (LINE_EDITOR_PROGRAMS.has(program)) return `the program ${program}`;
    if ((program === 'setopt' || program === 'unsetopt') && argv.slice(1).some(editorMode))
      return `${program} of the editing mode`;
    for (let k = 1; k < argv.length; k++) {
      const w = argv[k] as string;
      if ((/^[-+]o$/.test(w) && editorMode(argv[k + 1])) || (/^[-+]o/.test(w) && editorMode(w.slice(2))))
        return 'a change of the editing mode (-o vi, -o emacs)';
    }
  }
  return undefined;
}
