// The decision on an exec request's argv, through wrappers, by a real compiled policy.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Action, compilePolicy, parsePolicy, type SelfProtection } from '@chaperone/shared';
import { decideAction } from './exec-decision.ts';

const policy = compilePolicy(
  parsePolicy(`apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: t }
spec:
  defaultAction: allow
  rules:
    - name: no-rm
      match: { protocols: [exec], exec: { argv0: [rm] } }
      action: deny
      message: no rm
    - name: review-psql
      match: { protocols: [exec], exec: { argv0: [psql] } }
      action: review
      message: a human looks at psql
`),
);
const protection = { sidecarContainer: 'chaperone-sidecar' } as unknown as SelfProtection;

const exec = (argv: string[], container = 'app'): Action =>
  ({
    protocol: 'exec',
    verb: 'create',
    resource: 'pods',
    subresource: 'exec',
    namespace: 'a',
    name: 'p',
    user: 'u',
    exec: { kind: 'exec', argv, container },
  }) as unknown as Action;

describe('decideAction: an exec argv is judged through its wrappers', () => {
  // Fails if decideAction judged the argv as it is (its argv0 is sh, sudo, find …, never rm).
  const cases: [string[], string][] = [
    [['rm', '-r', '/x'], 'no-rm'],
    [['sh', '-c', 'rm -rf /data'], 'no-rm'],
    [['/bin/bash', '-lc', 'cd / && rm -rf data'], 'no-rm'],
    [['sudo', '-u', 'root', 'rm', '/x'], 'no-rm'],
    [['env', 'A=1', 'nice', '-n', '5', 'timeout', '3', 'rm', '/x'], 'no-rm'],
    [['nohup', 'rm', '/x'], 'no-rm'],
    [['find', '/', '-name', 'x', '-exec', 'rm', '{}', ';'], 'no-rm'],
    [['xargs', '-a', 'list', 'rm'], 'no-rm'],
    [['su', 'app', '-c', 'ls; rm /x'], 'no-rm'],
    [['watch', '-n', '1', 'ls', ';', 'rm', '/x'], 'no-rm'],
    [['sh', '-c', 'su -c \'sh -c "rm /x"\''], 'no-rm'],
    [['sh', '-c', 'psql -c "select 1"'], 'review-psql'],
    [['sh', '-c', 'psql; rm /x'], 'no-rm'],
    [['sh', '-c', 'ls -l'], 'default'],
    [['sh', 'rm'], 'default'],
    [['echo', 'sh', '-c', 'rm /x'], 'default'],
  ];
  for (const [argv, rule] of cases) {
    it(`${JSON.stringify(argv)} → ${rule}`, () => {
      assert.equal(decideAction(exec(argv), policy, protection).rule, rule);
    });
  }

  it('the built-in rules still decide on the request itself', () => {
    const d = decideAction(exec(['sh', '-c', 'ls'], 'chaperone-sidecar'), policy, protection);
    assert.equal(d.action, 'deny');
    assert.equal(d.rule, 'chaperone-no-exec-into-sidecar');
  });
});

describe('decideAction: next to a token outside the guard', () => {
  const why =
    'the pod is not guarded by Chaperone, and container "app" holds the token Secret "build-credentials"';
  // Fails if the token refusal came first: it names the pod's containers and Secrets to an agent the policy keeps out.
  it('a session the policy refuses gets the policy’s refusal, which says nothing of the pod', () => {
    const d = decideAction(exec(['rm', '-rf', '/']), policy, protection, undefined, why);
    assert.equal(d.rule, 'no-rm');
    assert.equal(d.message.includes('build-credentials'), false);
  });

  it('a session the policy allows or would hold is refused, saying why', () => {
    for (const argv of [['ls'], ['psql']]) {
      const d = decideAction(exec(argv), policy, protection, undefined, why);
      assert.equal(d.action, 'deny', argv[0]);
      assert.equal(d.rule, 'chaperone-no-exec-next-to-tokens', argv[0]);
      assert.match(d.message, /build-credentials/);
    }
    assert.equal(decideAction(exec(['ls']), policy, protection).action, 'allow');
  });
});
