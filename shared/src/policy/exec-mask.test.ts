// `mask: {secrets: [...]}`: a mask rule that names Secrets whose values are
// masked in the output of the exec and attach sessions it decides.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { evaluate } from './evaluate.ts';
import { DEFAULT_MASK_FIELDS, parsePolicy } from './parse.ts';
import type { Action } from './types.ts';

const policy = (rules: string) =>
  parsePolicy(`apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: p }
spec:
  defaultAction: allow
  rules:
${rules}`);

const protection = { policyConfigMaps: ['chaperone-policy'], sidecarContainer: 'chaperone-sidecar' };

const exec = (argv: string[]): Action => ({
  protocol: 'exec',
  verb: 'create',
  namespace: 'app',
  resource: 'pods',
  subresource: 'exec',
  name: 'web',
  exec: { kind: 'exec', argv, container: 'main' },
});

describe('exec mask rules naming Secrets', () => {
  const p = policy(`    - name: mask-db
      match: { protocols: [exec], exec: { argv0: [psql, cat] } }
      action: mask
      mask: { secrets: [db-creds, app.tls] }
`);

  it('parses the names; Kubernetes fields default to a Secret’s values', () => {
    assert.deepEqual(p.rules[0]?.mask, { fields: DEFAULT_MASK_FIELDS, secrets: ['db-creds', 'app.tls'] });
  });

  it('gives the names with the decision of a session the rule decides', () => {
    const d = evaluate(exec(['cat', '/etc/app.conf']), p, protection);
    assert.equal(d.action, 'mask');
    assert.equal(d.rule, 'mask-db');
    assert.deepEqual(d.maskSecrets, ['db-creds', 'app.tls']);
  });

  it('gives no names for sessions it does not decide', () => {
    assert.equal(evaluate(exec(['ls']), p, protection).maskSecrets, undefined);
  });

  const errors: [string, string, RegExp][] = [
    [
      'not a Secret name',
      '    - { name: a, match: { protocols: [exec] }, action: mask, mask: { secrets: [Bad_Name] } }\n',
      /mask\.secrets\[0\]: "Bad_Name" is not a Secret name/,
    ],
    [
      'a rule that cannot match exec',
      '    - { name: a, match: { protocols: [kubernetes] }, action: mask, mask: { secrets: [s] } }\n',
      /mask\.secrets: masks the output of exec and attach sessions: the rule must match protocol exec/,
    ],
    [
      'an empty list',
      '    - { name: a, match: { protocols: [exec] }, action: mask, mask: { secrets: [] } }\n',
      /mask\.secrets: must be a non-empty list of strings/,
    ],
    [
      'on an allow rule',
      '    - { name: a, match: { protocols: [exec] }, action: allow, mask: { secrets: [s] } }\n',
      /mask: only applies to rules with action: mask/,
    ],
  ];
  for (const [what, rules, message] of errors) {
    it(`refuses ${what}`, () => assert.throws(() => policy(rules), message));
  }
});
