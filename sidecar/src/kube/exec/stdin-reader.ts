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
}

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
const PERL: Reader = { code: 'eE', args: 'IMmlxCdD0', operands: 'script' };
const RUBY: Reader = { code: 'e', args: 'IrCEFWx', operands: 'script' };
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

/** Whether a shell line runs a command that reads commands from stdin. */
function shellCodeReads(code: string, depth: number): boolean {
  for (const argv of readShellLine(code).commands) if (readsCommands(argv, depth + 1)) return true;
  return false;
}

/** What the options and operands after the program say. */
function readArgs(r: Reader, args: readonly string[]): 'stdin' | 'runs' | { code: string } | 'none' {
  let stdin = false;
  let runs = false;
  let codeOperand = false;
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
        if (arg() !== '-') runs = true;
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
          if (arg() !== '-') runs = true;
          break;
        }
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
    if (operands[0] === '-') stdin = true;
    else runs = true;
  }
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
