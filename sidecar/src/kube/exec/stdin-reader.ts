/**
 * Whether a command may read commands from its stdin — a shell or another
 * interpreter started without code of its own (`sh`, `bash -i`, `python3`,
 * `psql`, `ssh host`) — judged from its argv alone. Then the agent's stdin
 * carries commands, and the input guard judges each line. Pure.
 *
 * `sh -c 'cmd'`, `python3 -c code`, `python3 script.py`, `psql -c 'select 1'`
 * read no commands from stdin: their input is data (`kubectl cp` runs
 * `tar xf -`), and it passes unjudged — unless the code given starts an
 * interpreter that would (`sh -c 'exec bash'`, `python3 -c 'import pty;
 * pty.spawn("sh")'`), which this reads in the code too. Wrappers (`env`,
 * `timeout 5`, `sudo -u x`, `busybox`) are looked through to the program
 * they run; an unknown program whose arguments name an interpreter counts
 * as one. A script file's contents cannot be seen: `sh script.sh` is taken
 * at its word.
 */
import { readShellLine } from './shell-line.ts';

interface Reader {
  /** Short options whose argument is code (`e` of perl -e). */
  readonly code?: string;
  /** Short options that make the first operand the code (`c` of sh -c, a flag of its own: `sh -ec 'cmd'`). */
  readonly codeOperand?: string;
  /** Long options whose argument is code. */
  readonly longCode?: readonly string[];
  /** Short options that take an argument (the rest of the cluster or the next word) and run something other than stdin (`m` of python -m; `f` of psql, unless its argument is `-`). */
  readonly runs?: string;
  /** Long options that take an argument and run something other than stdin. */
  readonly longRuns?: readonly string[];
  /** Short options that make it read stdin whatever else is given (`s`, `i` of sh). */
  readonly stdin?: string;
  readonly longStdin?: readonly string[];
  /** Other short options that take an argument. */
  readonly args?: string;
  /** Other long options that take the next word as their argument (when written without `=`). */
  readonly longArgs?: readonly string[];
  /** `+o`-style options (shells). */
  readonly plus?: boolean;
  /**
   * What its operands (the words after the options) are: a script file to
   * run (`script`); code, after the first `skip` of them (`code`: sqlite3's
   * SQL after the database, ssh's remote command after the host, read as a
   * shell line); or `ignored` (database names).
   */
  readonly operands: 'script' | 'code' | 'ignored';
  readonly skip?: number;
  /** Its code is a shell line (read for commands that read stdin); otherwise it is searched for interpreter names. */
  readonly shell?: boolean;
  /** Short options that run the code once per line of stdin (`n`, `p` of perl). */
  readonly loop?: string;
}

/** Paths that are the program's own stdin. */
const STDIN_PATH = /^(-|\/dev\/stdin|\/dev\/fd\/0|\/proc\/[^/]+\/fd\/0)$/;
const isStdin = (w: string): boolean => STDIN_PATH.test(w);

/** Code (any language) that may run what it reads as a command. */
const RUNS_COMMANDS =
  /\b(system|exec\w*|eval|spawn\w*|popen|Popen|subprocess|qx|child_process|pty|os\.)\b|`|\bopen\s*\(?[^)]*\|/;

/** Shell builtins that run text given at run time (`eval "$(cat)"`, `. /dev/stdin`) or read stdin (`read`). */
const SHELL_RUNS_TEXT = /^(eval|\.|source|read|mapfile|readarray|fc|trap)$/;

const SHELL: Reader = {
  codeOperand: 'c',
  stdin: 'si',
  args: 'oO',
  plus: true,
  longStdin: ['--interactive'],
  longArgs: ['--rcfile', '--init-file'],
  longCode: ['--command'],
  operands: 'script',
  shell: true,
};
const PYTHON: Reader = { code: 'c', runs: 'm', stdin: 'i', args: 'WXQ', operands: 'script' };
const PERL: Reader = { code: 'eE', loop: 'np', args: 'IMmlxCdD0', operands: 'script' };
const RUBY: Reader = { code: 'e', loop: 'np', args: 'IrCEFWx', operands: 'script' };
const NODE: Reader = {
  code: 'ep',
  stdin: 'i',
  args: 'r',
  longCode: ['--eval', '--print'],
  longStdin: ['--interactive'],
  longArgs: ['--require', '--import', '--loader', '--input-type'],
  operands: 'script',
};
const PHP: Reader = { code: 'rBRE', stdin: 'a', runs: 'fF', args: 'cdz', operands: 'script' };
const LUA: Reader = { code: 'e', stdin: 'i', args: 'l', operands: 'script' };
const TCL: Reader = { operands: 'script' };
const EXPECT: Reader = { code: 'c', stdin: 'i', runs: 'f', operands: 'script' };
const PSQL: Reader = {
  code: 'c',
  runs: 'fl',
  args: 'dhpUvPoLTFRWSE',
  longCode: ['--command'],
  longRuns: ['--file', '--list'],
  longArgs: [
    '--dbname',
    '--host',
    '--port',
    '--username',
    '--set',
    '--variable',
    '--pset',
    '--output',
    '--log-file',
  ],
  operands: 'ignored',
};
const MYSQL: Reader = {
  code: 'e',
  args: 'hPuDSp',
  longCode: ['--execute'],
  longArgs: ['--host', '--port', '--user', '--database', '--socket'],
  operands: 'ignored',
};
const REDIS: Reader = {
  args: 'hpsaunrid',
  longArgs: ['--user', '--pass', '--tls', '--cacert', '--cert', '--key', '--sni'],
  operands: 'code',
  skip: 0,
};
const SQLITE: Reader = {
  args: '',
  longArgs: ['-cmd', '-init', '-separator', '-nullvalue'],
  operands: 'code',
  skip: 1,
};
const MONGO: Reader = {
  longCode: ['--eval'],
  longArgs: ['--host', '--port', '--username', '--password'],
  operands: 'script',
};
const SSH: Reader = { args: 'bcDEeFIiJLlmOopQRSWw', operands: 'code', skip: 1, shell: true };
/** Read commands from stdin whatever they are given. */
const REPL: Reader = { stdin: '', operands: 'ignored' };

const READERS: readonly [RegExp, Reader][] = [
  [/^(sh|bash|rbash|ash|dash|zsh|ksh|ksh93|mksh|pdksh|oksh|loksh|yash|posh|hush|fish|csh|tcsh)$/, SHELL],
  [/^(python|pypy)[0-9.]*$/, PYTHON],
  [/^perl[0-9.]*$/, PERL],
  [/^ruby[0-9.]*$/, RUBY],
  [/^(node|nodejs)$/, NODE],
  [/^php[0-9.]*$/, PHP],
  [/^lua(jit)?[0-9.]*$/, LUA],
  [/^(tclsh|wish)[0-9.]*$/, TCL],
  [/^expect$/, EXPECT],
  [/^psql$/, PSQL],
  [/^(mysql|mariadb)$/, MYSQL],
  [/^(redis-cli|valkey-cli|keydb-cli)$/, REDIS],
  [/^sqlite3?$/, SQLITE],
  [/^(mongo|mongosh)$/, MONGO],
  [/^ssh$/, SSH],
  [/^(ipython[0-9]*|irb|jshell|ghci|R|bc|gdb|ftp|telnet|sftp|lftp|redis-server)$/, REPL],
];

/** Run the command after their own options and arguments; with no command, su, sudo, doas and runuser open a shell. */
const WRAPPERS =
  /^(env|exec|command|builtin|nohup|nice|ionice|timeout|stdbuf|setsid|taskset|chrt|time|sudo|doas|su|runuser|chroot|unshare|nsenter|flock|xargs|busybox|toybox|unbuffer|script|strace|ltrace|watch)$/;
const OPENS_SHELL = /^(su|sudo|doas|runuser)$/;

/** Depth of code inside code read (sh -c "sh -c '…'"). */
const MAX_DEPTH = 8;

const base = (w: string): string => w.split('/').pop() as string;

function readerOf(program: string): Reader | undefined {
  for (const [re, r] of READERS) if (re.test(program)) return r;
  return undefined;
}

/** Whether `text` (code in any language) names an interpreter as a word. */
function namesInterpreter(text: string): boolean {
  for (const w of text.split(/[^A-Za-z0-9_.+/-]+/)) {
    const b = base(w);
    if (b !== '' && readerOf(b) !== undefined) return true;
  }
  return false;
}

/**
 * Whether a shell line runs a command that reads commands from stdin: one
 * that does by itself, a builtin that runs text read at run time (`eval
 * "$(cat)"`, `. /dev/stdin`, a `read` loop) or a program not known before
 * it runs (`exec "$0"`, `$SHELL`).
 */
function shellCodeReads(code: string, depth: number): boolean {
  for (const argv of readShellLine(code).commands) {
    const program = argv[0] as string;
    if (SHELL_RUNS_TEXT.test(program) || /[$`]/.test(program)) return true;
    if (readsCommands(argv, depth + 1)) return true;
  }
  return false;
}

/** awk: a program that runs commands (`system`, a pipe to or from a command) and reads stdin (no file operands). */
function awkReads(args: readonly string[]): boolean {
  let i = 0;
  let program: string | undefined;
  for (; i < args.length; i++) {
    const w = args[i] as string;
    if (w === '--') {
      i++;
      break;
    }
    if (!w.startsWith('-') || w === '-') break;
    if (/^-[fvF]$/.test(w) || w === '--file') {
      const arg = args[++i] ?? '';
      if (w === '-f' || w === '--file') program = isStdin(arg) ? 'system' : (program ?? '');
    }
  }
  if (program === undefined) program = args[i++] ?? '';
  const files = args.slice(i).filter((w) => !/^[A-Za-z_][A-Za-z0-9_]*=/.test(w));
  const readsStdin = files.length === 0 || files.some(isStdin);
  return readsStdin && /\bsystem\b|\|/.test(program);
}

/** sed: a script with the `e` command or the `e` flag of `s` (runs the pattern space), reading stdin. */
function sedReads(args: readonly string[]): boolean {
  const scripts: string[] = [];
  const operands: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const w = args[i] as string;
    if (w === '-e' || w === '--expression') scripts.push(args[++i] ?? '');
    else if (w.startsWith('--expression=')) scripts.push(w.slice(13));
    else if (w === '-f' || w === '--file') scripts.push(isStdin(args[++i] ?? '') ? 'e' : '');
    else if (!w.startsWith('-') || w === '-') operands.push(w);
  }
  if (scripts.length === 0) scripts.push(operands.shift() ?? '');
  if (operands.length > 0 && !operands.some(isStdin)) return false;
  return scripts.some(sedExecutes);
}

/** Whether a sed script has an `e` command or an `s` command with the `e` flag. */
function sedExecutes(script: string): boolean {
  for (const part of script.split(/[;\n{}]/)) {
    // The command after its address (line numbers, $, /regex/, ranges, !).
    const cmd = part.replace(
      /^\s*(?:(?:\d+|\$|\/(?:[^/\\]|\\.)*\/)\s*(?:[,~]\s*(?:\d+|\$|\/(?:[^/\\]|\\.)*\/))?)?\s*!?\s*/,
      '',
    );
    if (/^e\b/.test(cmd)) return true;
    if (cmd.startsWith('s') && cmd.length > 1) {
      const d = cmd[1] as string;
      let seen = 0;
      let k = 2;
      for (; k < cmd.length && seen < 2; k++) {
        if (cmd[k] === '\\') k++;
        else if (cmd[k] === d) seen++;
      }
      if (seen === 2 && /^[^\s;]*e/.test(cmd.slice(k))) return true;
    }
  }
  return false;
}

/** What the options and operands after the program say. */
function readArgs(r: Reader, args: readonly string[]): 'stdin' | 'runs' | { code: string } | 'none' {
  let stdin = false;
  let runs = false;
  let codeOperand = false;
  let loop = false;
  const code: string[] = [];
  let i = 0;
  let operandsFrom = args.length;
  for (; i < args.length; i++) {
    const w = args[i] as string;
    if (w === '--') {
      operandsFrom = i + 1;
      break;
    }
    if (w.startsWith('--') || (r.longArgs?.includes(w.split('=')[0] as string) && w.startsWith('-'))) {
      const [name, value] = w.includes('=')
        ? [w.slice(0, w.indexOf('=')), w.slice(w.indexOf('=') + 1)]
        : [w, undefined];
      const arg = () => value ?? args[++i] ?? '';
      if (r.longCode?.includes(name)) code.push(arg());
      else if (r.longRuns?.includes(name)) {
        if (!isStdin(arg())) runs = true;
      } else if (r.longStdin?.includes(name)) stdin = true;
      else if (r.longArgs?.includes(name) && value === undefined) i++;
      continue;
    }
    if (w.length > 1 && (w.startsWith('-') || (r.plus === true && w.startsWith('+')))) {
      for (let j = 1; j < w.length; j++) {
        const c = w[j] as string;
        const arg = () => (j + 1 < w.length ? w.slice(j + 1) : (args[++i] ?? ''));
        if (r.code?.includes(c)) {
          code.push(arg());
          break;
        }
        if (r.runs?.includes(c)) {
          if (!isStdin(arg())) runs = true;
          break;
        }
        if (r.loop?.includes(c)) loop = true;
        if (r.stdin?.includes(c)) stdin = true;
        else if (r.codeOperand?.includes(c)) codeOperand = true;
        else if (r.args?.includes(c)) {
          arg();
          break;
        }
      }
      continue;
    }
    operandsFrom = i;
    break;
  }
  const operands = args.slice(operandsFrom);
  if (codeOperand) code.push(operands.shift() ?? '');
  if (r.operands === 'script' && operands.length > 0 && code.length === 0) {
    if (isStdin(operands[0] as string)) stdin = true;
    else runs = true;
  }
  // perl -n / -p, ruby -n / -p: the code runs once per line of stdin; code that runs commands runs them.
  if (loop && code.length > 0 && RUNS_COMMANDS.test(code.join('\n'))) stdin = true;
  if (r.operands === 'code' && operands.length > (r.skip ?? 0))
    code.push(operands.slice(r.skip ?? 0).join(' '));
  if (r === REPL || stdin) return 'stdin';
  if (code.length > 0) return { code: code.join('\n') };
  return runs ? 'runs' : 'none';
}

function readsCommands(argv: readonly string[], depth: number): boolean {
  if (depth > MAX_DEPTH) return true;
  const program = argv[0];
  if (program === undefined) return false;
  const name = base(program);
  const r = readerOf(name);
  if (r) {
    const said = readArgs(r, argv.slice(1));
    if (said === 'stdin' || said === 'none') return true;
    if (said === 'runs') return false;
    return r.shell ? shellCodeReads(said.code, depth) : namesInterpreter(said.code);
  }
  const rest = argv.slice(1);
  if (/^(awk|gawk|mawk|nawk)$/.test(name)) return awkReads(rest);
  if (/^(sed|gsed)$/.test(name)) return sedReads(rest);
  if (WRAPPERS.test(name)) {
    // The first later word that is a known program is what runs; options and their arguments come
    // before it. Right after an option it may be that option's argument instead (script -c sh): then
    // what it is given is not known, and it is taken to read stdin.
    const k = rest.findIndex((w) => readerOf(base(w)) !== undefined || WRAPPERS.test(base(w)));
    if (k > 0 && (rest[k - 1] as string).startsWith('-')) return true;
    if (k >= 0) return readsCommands(rest.slice(k), depth + 1);
    if (name === 'su' || name === 'runuser') {
      const c = rest.indexOf('-c');
      return c < 0 ? true : shellCodeReads(rest[c + 1] ?? '', depth);
    }
    // sudo -i, sudo -s, or no command at all: a login shell.
    return (
      OPENS_SHELL.test(name) &&
      (rest.some((w) => /^-[A-Za-z]*[is]/.test(w)) ||
        rest.every((w) => w.startsWith('-') || /^[A-Za-z_][A-Za-z0-9_]*=/.test(w)))
    );
  }
  // An unknown program that names an interpreter may run it (find -exec sh, socat - EXEC:bash).
  return rest.some((w) => namesInterpreter(w));
}

/** Whether the command `argv` may read commands from its stdin (see the file's comment). */
export function readsCommandsFromStdin(argv: readonly string[]): boolean {
  return readsCommands(argv, 0);
}
