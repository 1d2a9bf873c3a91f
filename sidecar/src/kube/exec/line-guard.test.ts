// The input guard over whole sessions' input: lines rebuilt by StdinFilter,
// read by shell-line.ts, judged by a real compiled policy.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Action, compilePolicy, parsePolicy, type SelfProtection } from '@chaperone/shared';
import type { StdinMode } from '../../exec-text/index.ts';
import { type JudgedLine, LineGuard, UNREADABLE_INPUT_RULE } from './line-guard.ts';

const policy = compilePolicy(
  parsePolicy(`apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: no-rm }
spec:
  defaultAction: allow
  rules:
    - name: no-rm
      match: { protocols: [exec], exec: { argv0: [rm] } }
      action: deny
    - name: no-doas
      match: { protocols: [exec], exec: { argv0: [doas] } }
      action: deny
`),
);

const action = {
  protocol: 'exec',
  verb: 'create',
  resource: 'pods',
  subresource: 'exec',
  namespace: 'a',
  name: 'p',
  user: 'u',
  exec: { kind: 'exec', argv: ['sh'], container: 'app' },
} as unknown as Action;

/** What the pod got and each judged line's rule, for `inputs` pushed one by one. */
function session(mode: StdinMode, inputs: readonly string[]): { pod: string; rules: string[] } {
  const rules: string[] = [];
  const guard = new LineGuard({
    mode,
    action,
    policy: () => policy,
    protection: { sidecarContainer: 'chaperone-sidecar' } as unknown as SelfProtection,
    record: (j: JudgedLine) => {
      rules.push(j.forwarded ? 'allowed' : j.decision.rule);
      return true;
    },
    failOpen: false,
  });
  let pod = '';
  for (const i of inputs) pod += guard.push(Buffer.from(i)).toPod.toString('latin1');
  pod += guard.end().toPod.toString('latin1');
  return { pod, rules };
}

describe('LineGuard: a quote or substitution open at the end of a line', () => {
  // sh reads `ls '` and `ls ' ; rm -r /x` as one command whose second part runs rm; each line alone
  // shows no rm. Fails if line-guard.ts stops refusing `unterminated` readings.
  for (const [name, first] of [
    ['single quote', "ls '"],
    ['double quote', 'ls "'],
    ['${', "ls ${x:-'"],
    ['$(', 'ls $('],
  ] as const) {
    it(`piped: ${name} — the line is refused and stdin ends before the next`, () => {
      const r = session('piped', [`${first}\n`, "ls ' ; rm -r /x\n"]);
      assert.equal(r.pod, '');
      assert.deepEqual(r.rules, [UNREADABLE_INPUT_RULE]);
    });
  }

  it('tty: the line is cancelled instead of entered', () => {
    const r = session('tty', ["ls '\r"]);
    assert.equal(r.pod, "ls '\x05\x15");
    assert.deepEqual(r.rules, [UNREADABLE_INPUT_RULE]);
  });

  it('closed quotes pass', () => {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: shell text
    const r = session('piped', ['echo \'a b\' "c" $(ls) ${x:-y}\n']);
    assert.deepEqual(r.rules, ['allowed']);
  });
});

describe('LineGuard: wrappers with option arguments', () => {
  // Fails if shell-line.ts takes the option's argument for the program (argv0 ls, root, X …) and also
  // loses the fallback that judges every word after an unknown option.
  for (const line of [
    'exec -a ls rm -r /x',
    'env -i -u X rm /x',
    'sudo -u root -- rm /x',
    'sudo -Z ls rm /x',
  ]) {
    it(`refuses ${JSON.stringify(line)}`, () => {
      const r = session('piped', [`${line}\n`]);
      assert.equal(r.pod, '');
      assert.deepEqual(r.rules, ['no-rm']);
    });
  }
});

describe('LineGuard: Alt-1 Alt-# (bash runs a commented line)', () => {
  it('never reaches the pod; the line is refused at Enter', () => {
    // Fails if StdinFilter forwards keys after one it cannot follow.
    const r = session('tty', ['#rm -r /x\x1b1\x1b#', '\r']);
    assert.equal(r.pod, '#rm -r /x\x05\x15');
    assert.deepEqual(r.rules, [UNREADABLE_INPUT_RULE]);
  });
});

describe('LineGuard: bash history expansion', () => {
  it('tty: a line with !! is refused (its words come from the history)', () => {
    // Fails if line-guard.ts stops refusing `history` readings.
    const r = session('tty', ['echo rm -r /x\r', '!!:1*\r']);
    assert.equal(r.pod, `echo rm -r /x\r!!:1*\x05\x15`);
    assert.deepEqual(r.rules, ['allowed', UNREADABLE_INPUT_RULE]);
  });

  it('piped: a non-interactive shell does not expand history; the line is judged as it is', () => {
    const r = session('piped', ['echo !!\n']);
    assert.deepEqual(r.rules, ['allowed']);
  });
});

describe('LineGuard: bash syntax a deny-list must see through', () => {
  for (const line of ["$'\\x72m' -rf /x", '{rm,-rf,/x}', 'function f { rm /x; }']) {
    it(`refuses ${JSON.stringify(line)}`, () => {
      assert.deepEqual(session('piped', [`${line}\n`]).rules, ['no-rm']);
    });
  }
});

describe('LineGuard: commands run through wrappers are judged as their own argv', () => {
  // Fails if shell-line.ts stops reading the command inside find -exec, su -c, sh -c, watch …
  // (the line's own argv0 is find, su, sh, watch: the rm rule would not apply).
  for (const line of [
    'find . -name "*.log" -exec rm {} \\;',
    'find . -execdir rm -f {} +',
    'find / -ok rm {} ;',
    'ls | xargs rm',
    'ls | xargs -0 -n 1 sudo rm',
    "su -c 'rm -r /x'",
    "su - root -c 'rm -r /x'",
    'su --command="ls; rm /x" app',
    "runuser -u app -- sh -c 'rm /x'",
    'sudo rm /x',
    "sudo -u app bash -lc 'cd /tmp && rm -r x'",
    'env FOO=1 rm /x',
    'nice -n 10 rm /x',
    'timeout 5 rm /x',
    'watch rm /x',
    'watch -n 1 "ls; rm /x"',
    'watch -x rm /x',
    'nohup rm /x &',
    'bash -c "rm /x"',
    "sh -e -c 'echo ok; rm /x' name",
    'sh -c "sh -c \\"rm /x\\""',
    "flock /tmp/l -c 'rm /x'",
    'flock -w 3 /tmp/l rm /x',
  ]) {
    it(`refuses ${JSON.stringify(line)}`, () => {
      const r = session('piped', [`${line}\n`]);
      assert.equal(r.pod, '');
      assert.deepEqual(r.rules, ['no-rm']);
    });
  }

  it('a rule on the wrapper applies too', () => {
    // Fails if the wrapper's own argv is not judged (`doas ls` would be judged as `ls` only).
    assert.deepEqual(session('piped', ['doas ls /root\n']).rules, ['no-doas']);
    assert.deepEqual(session('piped', ['nice doas -u app ls\n']).rules, ['no-doas']);
  });

  it('commands that only mention rm pass', () => {
    const r = session('piped', ['find . -name rm -print\n', "sh -c 'echo rm'\n", 'watch ls rm\n']);
    assert.deepEqual(r.rules, ['allowed', 'allowed', 'allowed']);
  });
});
