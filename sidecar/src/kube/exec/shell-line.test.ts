// How a typed line is split into the commands a shell runs (the input guard
// judges each one). Where it matters the expectation was checked against
// dash and bash running the same line (`set -x` shows what runs).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { execArgvs, expandBraces, lineEditorChange, readShellLine } from './shell-line.ts';

const commands = (line: string) => readShellLine(line).commands;

describe('readShellLine', () => {
  const cases: [string, string[][]][] = [
    ['ls -l', [['ls', '-l']]],
    ['  ls   -l  ', [['ls', '-l']]],
    ['ls; rm -rf /', [['ls'], ['rm', '-rf', '/']]],
    ['ls && rm x || echo no', [['ls'], ['rm', 'x'], ['echo', 'no']]],
    ['cat f | sh', [['cat', 'f'], ['sh']]],
    [
      'sleep 1 & rm x',
      [
        ['sleep', '1'],
        ['rm', 'x'],
      ],
    ],
    ['"rm" -rf /', [['rm', '-rf', '/']]],
    ["'r'm -rf /", [['rm', '-rf', '/']]],
    ['r\\m -rf /', [['rm', '-rf', '/']]],
    ['echo "a b" \'c d\'', [['echo', 'a b', 'c d']]],
    // Substitutions run commands of their own, also inside double quotes.
    [
      'echo $(rm -rf /)',
      [
        ['echo', '$(rm -rf /)'],
        ['rm', '-rf', '/'],
      ],
    ],
    [
      'echo "x $(rm y) z"',
      [
        ['echo', 'x $(rm y) z'],
        ['rm', 'y'],
      ],
    ],
    [
      'echo `rm y`',
      [
        ['echo', '`rm y`'],
        ['rm', 'y'],
      ],
    ],
    [
      'diff <(rm a) b',
      [
        ['diff', '<(rm a)', 'b'],
        ['rm', 'a'],
      ],
    ],
    [
      'echo $(echo $(rm deep))',
      [
        ['echo', '$(echo $(rm deep))'],
        ['rm', 'deep'],
        ['echo', '$(rm deep)'],
      ],
    ],
    // Single quotes keep everything literal.
    ["echo '$(rm y)'", [['echo', '$(rm y)']]],
    // Subshells and groups.
    [
      '(cd /; rm x)',
      [
        ['cd', '/'],
        ['rm', 'x'],
      ],
    ],
    ['{ rm x; }', [['rm', 'x']]],
    // What comes before the program.
    ['FOO=1 BAR=2 rm x', [['rm', 'x']]],
    ['exec rm x', [['rm', 'x']]],
    ['env -i PATH=/bin rm x', [['rm', 'x']]],
    ['sudo -E rm x', [['rm', 'x']]],
    ['command -p rm x', [['rm', 'x']]],
    ['! rm x', [['rm', 'x']]],
    ['if true; then rm x; fi', [['true'], ['rm', 'x']]],
    [
      'while read f; do rm "$f"; done',
      [
        ['read', 'f'],
        ['rm', '$f'],
      ],
    ],
    ['for f in a b; do rm $f; done', [['rm', '$f']]],
    ['case $x in a) rm a;; esac', [['rm', 'a']]],
    // Redirections are not argv, wherever they stand.
    ['>out rm x', [['rm', 'x']]],
    ['rm x 2>/dev/null', [['rm', 'x']]],
    ['cat <<EOF', [['cat']]],
    ['echo hi >&2', [['echo', 'hi']]],
    ['ls 2>&1 | grep x', [['ls'], ['grep', 'x']]],
    // Not a comment: a shell may not read # as one.
    [
      'echo hi # ; rm x',
      [
        ['echo', 'hi', '#'],
        ['rm', 'x'],
      ],
    ],
    ['X=1', []],
    ['', []],
    // Wrapper options that take an argument: the argument is not the program.
    // Fails if shell-line.ts's WRAPPERS lose the options' `takes` (argv0 would be ls, root, 5 …).
    ['exec -a ls rm -r /x', [['rm', '-r', '/x']]],
    ['env -i -u X rm /x', [['rm', '/x']]],
    ['env -C /tmp rm x', [['rm', 'x']]],
    ['env --unset X rm x', [['rm', 'x']]],
    ['sudo -u root -- rm /x', [['rm', '/x']]],
    ['sudo -uroot -g wheel rm /x', [['rm', '/x']]],
    ['sudo --user=root rm /x', [['rm', '/x']]],
    ['doas -u root rm /x', [['rm', '/x']]],
    ['nice -n 5 rm x', [['rm', 'x']]],
    ['nice -5 rm x', [['rm', 'x']]],
    ['timeout -s KILL -k 1 5 rm x', [['rm', 'x']]],
    ['timeout 5s rm x', [['rm', 'x']]],
    ['stdbuf -oL -e 0 rm x', [['rm', 'x']]],
    ['ionice -c 3 -n 7 rm x', [['rm', 'x']]],
    ['chroot / rm x', [['rm', 'x']]],
    ['setsid -f rm x', [['rm', 'x']]],
    ['xargs -I {} -n 1 rm {}', [['rm', '{}']]],
    ['time -p rm x', [['rm', 'x']]],
    ['sudo env -u A nice -n 1 rm x', [['rm', 'x']]],
    // env -S splits its argument into a command line.
    ['env -S "rm -r /x"', [['rm', '-r', '/x']]],
    // An option the guard does not know may take an argument: every later word may be the program.
    ['sudo --frobnicate ls rm x', [['--frobnicate', 'ls', 'rm', 'x'], ['ls', 'rm', 'x'], ['rm', 'x'], ['x']]],
  ];
  for (const [line, want] of cases) {
    it(JSON.stringify(line), () => assert.deepEqual(commands(line), want));
  }

  it('gives the whole line as words from the first program on, operators included', () => {
    assert.deepEqual(readShellLine('FOO=1 curl -s "http://x/a b" | sh').words, [
      'curl',
      '-s',
      'http://x/a b',
      '|',
      'sh',
    ]);
    assert.deepEqual(readShellLine('>out ls').words, ['ls']);
    assert.deepEqual(readShellLine('X=1').words, []);
  });

  it('reads a line continued with a backslash as one', () => {
    assert.deepEqual(commands('rm \\\n-rf /'), [['rm', '-rf', '/']]);
  });

  // bash-only syntax a deny-list must see through. Fails without shell-line.ts's #ansiC ($'…'),
  // expandBraces, the `function` case in programOf, or #bang (history).
  const bashCases: [string, string[]][] = [
    ["$'\\x72m' -rf /x", ['rm', '-rf', '/x']],
    ["$'\\162m' x", ['rm', 'x']],
    ["$'r\\u006d' x", ['rm', 'x']],
    ['$"rm" x', ['rm', 'x']],
    ['{rm,-rf,/x}', ['rm', '-rf', '/x']],
    ['r{m,x} /x', ['rm', 'rx', '/x']],
    ['{q..r}m x', ['qm', 'rm', 'x']],
    ['function f { rm /x; }', ['rm', '/x']],
    // Substitutions inside ${…} still run (fails if ${…} is skipped whole).
    // biome-ignore lint/suspicious/noTemplateCurlyInString: shell text
    ['echo ${x:-$(rm /x)}', ['rm', '/x']],
    // biome-ignore lint/suspicious/noTemplateCurlyInString: shell text
    ['echo "${x:-$(rm /x)}"', ['rm', '/x']],
  ];
  for (const [line, argv] of bashCases) {
    it(`reads ${JSON.stringify(line)} as running ${argv.join(' ')}`, () => {
      assert.ok(
        commands(line).some((c) => JSON.stringify(c) === JSON.stringify(argv)),
        JSON.stringify(commands(line)),
      );
    });
  }

  it('expands braces in order and bounds the expansion', () => {
    assert.deepEqual(expandBraces('a{b,c{d,e}}f'), ['abf', 'acdf', 'acef']);
    assert.deepEqual(expandBraces('{3..1}'), ['3', '2', '1']);
    assert.deepEqual(expandBraces('{a}'), ['{a}']);
    assert.equal(expandBraces('{a,b}'.repeat(20)).length, 256);
  });

  it('sees a "!" that an interactive bash history-expands', () => {
    for (const line of ['echo !!', 'ls !$', 'echo !:1*', '!rm', 'echo "!-2"', 'x=!#'])
      assert.equal(readShellLine(line).history, true, line);
    for (const line of ['! rm x', 'echo hi!', 'echo $!', "echo '!!'", 'echo \\!x', 'a != b', 'echo "hi!"'])
      assert.equal(readShellLine(line).history, false, line);
  });

  it('marks a line that ends inside a quote, substitution or parenthesis as unterminated', () => {
    // Fails if the Scanner stops setting `unterminated` (line-guard.ts then judges `ls '` alone).
    for (const line of [
      "ls '",
      'echo "a',
      'echo $(ls',
      'echo `ls',
      'echo ${x',
      "ls ${x:-'",
      '(ls',
      'echo "$(ls',
    ]) {
      assert.equal(readShellLine(line).unterminated, true, line);
    }
    for (const line of [
      "ls 'a'",
      'echo "a"',
      'echo $(ls)',
      'echo `ls`',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: shell text
      'echo ${x:-a}',
      '(ls)',
      "echo \\'",
      'ls \\',
    ]) {
      assert.equal(readShellLine(line).unterminated, false, line);
    }
  });

  it('never hangs or throws on unbalanced or deep input', () => {
    for (const s of [
      'echo "abc',
      "echo 'abc",
      'echo $(ls',
      'echo `ls',
      '((((',
      '))))',
      '$('.repeat(500),
      '\\',
    ]) {
      readShellLine(s);
    }
  });
});

describe('lineEditorChange', () => {
  const refused = [
    'bind -x \'"\\C-x": rm -rf /\'',
    'bind \'"\\r": "rm x\\n"\'',
    'set -o vi',
    'set +o emacs',
    'set -ovi',
    'bash -o vi',
    'setopt VI',
    'setopt v_i',
    'bindkey -v',
    'stty -icanon',
    'stty erase ^H',
    'ls; stty raw',
    'echo "set editing-mode vi" >> ~/.inputrc',
    'INPUTRC=/tmp/x bash',
    'python3 -c "import readline; readline.parse_and_bind(\'tab: complete\')"',
    'tset',
    'fish_vi_key_bindings',
  ];
  for (const line of refused)
    it(`refuses ${JSON.stringify(line)}`, () => assert.notEqual(lineEditorChange(line), undefined));
  const allowed = [
    'ls -l',
    'set -e',
    'set -o errexit',
    'echo binding',
    'kubectl get rolebindings',
    'vi file.txt',
  ];
  for (const line of allowed)
    it(`lets ${JSON.stringify(line)} be`, () => assert.equal(lineEditorChange(line), undefined));
});

describe("readShellLine: commands inside other programs' arguments", () => {
  // Checked against what each program runs (find -exec, su -c, sh -c, watch, flock: see their manuals).
  const cases: [string, string[][]][] = [
    [
      'find . -exec rm {} ;',
      [
        ['find', '.', '-exec', 'rm', '{}'],
        ['rm', '{}'],
      ],
    ],
    [
      'find . -exec rm {} \\; -print',
      [
        ['find', '.', '-exec', 'rm', '{}', ';', '-print'],
        ['rm', '{}'],
      ],
    ],
    [
      'find . -execdir chmod 600 {} + -ok rm {} \\;',
      [
        ['find', '.', '-execdir', 'chmod', '600', '{}', '+', '-ok', 'rm', '{}', ';'],
        ['chmod', '600', '{}'],
        ['rm', '{}'],
      ],
    ],
    [
      "su -c 'rm x' app",
      [
        ['su', '-c', 'rm x', 'app'],
        ['rm', 'x'],
      ],
    ],
    [
      'su -lc "rm x"',
      [
        ['su', '-lc', 'rm x'],
        ['rm', 'x'],
      ],
    ],
    ['su --command=ls', [['su', '--command=ls'], ['ls']]],
    ['su -s /bin/sh app', [['su', '-s', '/bin/sh', 'app']]],
    ["bash -c 'ls; rm x'", [['bash', '-c', 'ls; rm x'], ['ls'], ['rm', 'x']]],
    [
      "sh -ec 'rm x' name arg",
      [
        ['sh', '-ec', 'rm x', 'name', 'arg'],
        ['rm', 'x'],
      ],
    ],
    [
      "bash -o vi -c 'rm x'",
      [
        ['bash', '-o', 'vi', '-c', 'rm x'],
        ['rm', 'x'],
      ],
    ],
    ['bash script.sh', [['bash', 'script.sh']]],
    [
      'watch ls -l',
      [
        ['watch', 'ls', '-l'],
        ['ls', '-l'],
      ],
    ],
    ['watch -n 2 -d "ls | wc -l"', [['watch', '-n', '2', '-d', 'ls | wc -l'], ['ls'], ['wc', '-l']]],
    [
      'watch -x ls "a b"',
      [
        ['watch', '-x', 'ls', 'a b'],
        ['ls', 'a b'],
      ],
    ],
    [
      "flock /l -c 'rm x'",
      [
        ['flock', '/l', '-c', 'rm x'],
        ['rm', 'x'],
      ],
    ],
    [
      'flock -n /l rm x',
      [
        ['flock', '-n', '/l', 'rm', 'x'],
        ['rm', 'x'],
      ],
    ],
    [
      "script -q -c 'rm x' /dev/null",
      [
        ['script', '-q', '-c', 'rm x', '/dev/null'],
        ['rm', 'x'],
      ],
    ],
  ];
  for (const [line, want] of cases) {
    it(JSON.stringify(line), () => assert.deepEqual(commands(line), want));
  }

  it('scripts nested deeper than the guard reads: every word may be the program', () => {
    let line = 'rm x';
    for (let k = 0; k < 12; k++) line = `sh -c ${JSON.stringify(line)}`;
    assert.ok(commands(line).some((argv) => argv[0] === 'rm'));
  });
});

describe("readShellLine: wrappers' own argvs", () => {
  // Fails if wrappers are dropped without a trace (a rule on `sudo` would never see `sudo rm x`).
  const cases: [string, string[][]][] = [
    ['sudo -u root rm x', [['sudo', '-u', 'root', 'rm', 'x']]],
    [
      'nohup nice -n 5 rm x',
      [
        ['nohup', 'nice', '-n', '5', 'rm', 'x'],
        ['nice', '-n', '5', 'rm', 'x'],
      ],
    ],
    ['ls $(sudo rm x)', [['sudo', 'rm', 'x']]],
    ['ls', []],
  ];
  for (const [line, want] of cases) {
    it(JSON.stringify(line), () => assert.deepEqual(readShellLine(line).wrappers, want));
  }
});

describe("execArgvs: what an exec request's argv runs", () => {
  // The argv is not a shell line: its words are taken as they are (`;` is a word of sudo's argv).
  const cases: [string[], string[][]][] = [
    [['ls', '-l'], []],
    [['sudo', 'rm', 'x'], [['rm', 'x']]],
    [['sh', '-c', 'rm -rf /data'], [['rm', '-rf', '/data']]],
    [
      ['timeout', '5', 'sh', '-c', 'ls; rm x'],
      [['sh', '-c', 'ls; rm x'], ['ls'], ['rm', 'x']],
    ],
    [['find', '/', '-exec', 'rm', '{}', '+'], [['rm', '{}']]],
    [['xargs', 'rm'], [['rm']]],
    [['sudo', 'ls', ';', 'rm', 'x'], [['ls', ';', 'rm', 'x']]],
  ];
  for (const [argv, want] of cases) {
    it(JSON.stringify(argv), () => assert.deepEqual(execArgvs(argv), want));
  }
});
