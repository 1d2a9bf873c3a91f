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
 *   assignments, reserved words (`if`, `then`, `do`, `!`, `{` …), the
 *   wrappers `exec`, `command`, `builtin`, `nohup`, `time`, `env`, `sudo`
 *   and `doas` with their dash options, and redirections with their targets
 *   wherever they stand (`>out rm x` runs rm). `for`, `select` and `case`
 *   heads run nothing.
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
  /**
   * The whole line as words with quotes removed and operators as words of
   * their own, from the first command's program on (`ls -l | grep x` gives
   * ls, -l, |, grep, x): what a `commands` regex over the line sees.
   */
  readonly words: readonly string[];
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
/** Run the command that follows; their dash options are skipped (env also skips assignments). */
const WRAPPERS = new Set(['exec', 'command', 'builtin', 'nohup', 'time', 'env', 'sudo', 'doas']);
const ASSIGNMENT = /^[A-Za-z_][A-Za-z0-9_]*(\[[^\]]*\])?\+?=/;

const BLANK = new Set([' ', '\t']);

class Scanner {
  readonly #s: string;
  /** Commands read inside substitutions, in the order met. */
  readonly nested: string[][] = [];

  constructor(s: string) {
    this.#s = s;
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
      if (c === "'") {
        const j = s.indexOf("'", i + 1);
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
    return { tokens, end: s.length };
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
    for (const c of commandsOf(inner.tokens)) this.nested.push(c.argv);
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
      text += c;
      i++;
    }
    return { text, end: s.length };
  }
}

/** Where a simple command's program is among its words: assignments, reserved words and wrappers before it are skipped (-1: none). */
function programIndex(words: readonly string[]): number {
  let i = 0;
  let wrapped = false;
  while (i < words.length) {
    const w = words[i] as string;
    if (i === 0 && NO_COMMAND.has(w)) return -1;
    if (RESERVED.has(w) || ASSIGNMENT.test(w)) i++;
    else if (WRAPPERS.has(w.split('/').pop() as string)) {
      wrapped = true;
      i++;
    } else if (wrapped && w.startsWith('-') && w !== '-') i++;
    else return i;
  }
  return -1;
}

interface Command {
  readonly argv: string[];
  /** Index of the program among the tokens. */
  readonly at: number;
}

/** Splits tokens into simple commands; redirections and their targets are left out. */
function commandsOf(tokens: readonly Token[]): Command[] {
  const out: Command[] = [];
  let words: string[] = [];
  let at: number[] = [];
  let target = false;
  const end = () => {
    const p = programIndex(words);
    if (p >= 0) out.push({ argv: words.slice(p), at: at[p] as number });
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
  const scanner = new Scanner(line);
  const { tokens } = scanner.list(0, '', 0);
  const top = commandsOf(tokens);
  const first = top[0];
  return {
    commands: [...top.map((c) => c.argv), ...scanner.nested],
    words: first === undefined ? [] : tokens.slice(first.at).map((t) => t.text),
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
