import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PolicyError, parsePolicy } from './parse.ts';

const wrap = (rules: string, extra = '') => `apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: p }
spec:
  defaultAction: allow
${extra}  rules:
${rules}`;

describe('parsePolicy', () => {
  it('accepts a valid policy and freezes it', () => {
    const p = parsePolicy(wrap('    - { name: a, match: { verbs: [get] }, action: allow }\n'));
    assert.equal(p.name, 'p');
    assert.equal(p.defaultAction, 'allow');
    assert.equal(p.rules[0]?.name, 'a');
    assert.ok(Object.isFrozen(p) && Object.isFrozen(p.rules));
  });

  it('defaults to deny when defaultAction is absent', () => {
    const p = parsePolicy('apiVersion: chaperone.dev/v1alpha1\nkind: GuardrailPolicy\nspec: {}\n');
    assert.equal(p.defaultAction, 'deny');
  });

  const errors: [string, string, RegExp][] = [
    [
      'bad verb',
      '    - { name: a, match: { verbs: [delte] }, action: deny }\n',
      /rule "a" \(rules\[0\]\): match\.verbs\[0\]: "delte" is not a Kubernetes verb \(did you mean delete\?\)/,
    ],
    [
      'bad action',
      '    - { name: a, match: {}, action: block }\n',
      /rule "a" \(rules\[0\]\): action: must be one of allow, deny, mask, review/,
    ],
    [
      'unknown match field',
      '    - { name: a, match: { resource: [pods] }, action: deny }\n',
      /match\.resource: unknown field \(did you mean resources\?\)/,
    ],
    [
      'duplicate name',
      '    - { name: a, match: {}, action: deny }\n    - { name: a, match: {}, action: allow }\n',
      /rule "a" \(rules\[1\]\): name: is used by an earlier rule/,
    ],
    [
      'reserved name',
      '    - { name: chaperone-x, match: {}, action: deny }\n',
      /reserved for built-in rules/,
    ],
    [
      'bad name',
      '    - { name: Bad_Name, match: {}, action: deny }\n',
      /rules\[0\]: name: must be a lower-case DNS label/,
    ],
    ['missing match', '    - { name: a, action: deny }\n', /match: is required/],
    [
      'bad regex',
      '    - { name: a, match: { exec: { commands: ["rm ("] } }, action: deny }\n',
      /match\.exec\.commands\[0\]: invalid regular expression/,
    ],
    [
      'bad protocol',
      '    - { name: a, match: { protocols: [http] }, action: deny }\n',
      /"http" is not kubernetes, exec or postgres/,
    ],
    [
      'bad sql statement',
      '    - { name: a, match: { sql: { statements: [dorp] } }, action: deny }\n',
      /"dorp" is neither a statement name.*did you mean drop\?/,
    ],
    [
      'mask on non-mask rule',
      '    - { name: a, match: {}, action: deny, mask: { fields: [x] } }\n',
      /mask: only applies to rules with action: mask/,
    ],
    [
      'bad review timeout',
      '    - { name: a, match: {}, action: review, review: { timeout: forever } }\n',
      /review\.timeout: must be a duration/,
    ],
    [
      'a review timeout beyond 24h',
      '    - { name: a, match: {}, action: review, review: { timeout: 25h } }\n',
      /rule "a" \(rules\[0\]\): review\.timeout: must be between 1s and 24h/,
    ],
    [
      'review settings on a deny rule',
      '    - { name: a, match: {}, action: deny, review: { approvals: 2 } }\n',
      /review: only applies to rules with action: review/,
    ],
    [
      'an unknown review field',
      '    - { name: a, match: {}, action: review, review: { approver: [ann] } }\n',
      /review\.approver: unknown field \(did you mean approvers\?\)/,
    ],
    [
      'zero approvals',
      '    - { name: a, match: {}, action: review, review: { approvals: 0 } }\n',
      /review\.approvals: must be a whole number of distinct approvers from 1 to 10, got 0/,
    ],
    [
      'more approvals than the limit',
      '    - { name: a, match: {}, action: review, review: { approvals: 11, approvers: ["group:ops"] } }\n',
      /review\.approvals: must be a whole number of distinct approvers from 1 to 10, got 11/,
    ],
    [
      'fractional approvals',
      '    - { name: a, match: {}, action: review, review: { approvals: 1.5 } }\n',
      /review\.approvals: must be a whole number/,
    ],
    [
      'more approvals than named users',
      '    - { name: a, match: {}, action: review, review: { approvals: 3, approvers: [ann, bob] } }\n',
      /review\.approvals: asks for 3 distinct approvers but approvers names only 2 user\(s\) and no group/,
    ],
    [
      'an approver that is an empty group',
      '    - { name: a, match: {}, action: review, review: { approvers: ["group:"] } }\n',
      /review\.approvers\[0\]: "group:" is neither a user name nor "group:<name>"/,
    ],
    [
      'an approver with a space',
      '    - { name: a, match: {}, action: review, review: { approvers: ["ann smith"] } }\n',
      /review\.approvers\[0\]: "ann smith" is neither/,
    ],
    [
      'an empty approvers list',
      '    - { name: a, match: {}, action: review, review: { approvers: [] } }\n',
      /review\.approvers: must be a non-empty list of strings/,
    ],
    [
      'a grant beyond 7d',
      '    - { name: a, match: {}, action: review, review: { grant: { duration: 8d } } }\n',
      /review\.grant\.duration: must be between 1s and 7d/,
    ],
    [
      'a grant without a duration',
      '    - { name: a, match: {}, action: review, review: { grant: {} } }\n',
      /review\.grant\.duration: is required/,
    ],
    [
      'a grant that is not a mapping',
      '    - { name: a, match: {}, action: review, review: { grant: 1h } }\n',
      /review\.grant: must be a mapping with duration/,
    ],
    [
      'a port-forward port out of range',
      '    - { name: a, match: { portForward: { ports: [8080, 70000] } }, action: deny }\n',
      /match\.portForward\.ports\[1\]: 70000 is not a port \(1-65535\)/,
    ],
    [
      'a port-forward range that ends before it starts',
      '    - { name: a, match: { portForward: { ports: ["9000-8000"] } }, action: deny }\n',
      /match\.portForward\.ports\[0\]: "9000-8000": the range ends before it starts/,
    ],
    [
      'an unknown port-forward field',
      '    - { name: a, match: { portForward: { port: [22] } }, action: deny }\n',
      /match\.portForward\.port: unknown field \(did you mean ports\?\)/,
    ],
    [
      'bad subresource syntax',
      '    - { name: a, match: { resources: [a/b/c] }, action: deny }\n',
      /must be "resource" or "resource\/subresource"/,
    ],
  ];
  for (const [name, rules, expected] of errors) {
    it(`rejects ${name} with a precise message`, () => {
      assert.throws(
        () => parsePolicy(wrap(rules)),
        (err: unknown) => {
          assert.ok(err instanceof PolicyError);
          assert.equal(err.code, 'policy_invalid');
          assert.match(err.message, expected);
          return true;
        },
      );
    });
  }

  it('gives a review rule one approval, 5 minutes and no grant unless told otherwise', () => {
    const p = parsePolicy(wrap('    - { name: a, match: {}, action: review }\n'));
    assert.deepEqual(p.rules[0]?.review, { timeoutMs: 300_000, approvals: 1, approvers: [], grantMs: 0 });
    assert.deepEqual(p.review, { timeoutMs: 300_000, approvals: 1, approvers: [], grantMs: 0 });
    assert.equal(
      parsePolicy(wrap('    - { name: a, match: {}, action: deny }\n')).rules[0]?.review,
      undefined,
    );
  });

  it("reads a rule's review over the spec's review defaults, field by field", () => {
    const p = parsePolicy(
      wrap(
        [
          '    - { name: a, match: {}, action: review }',
          '    - name: b',
          '      match: {}',
          '      action: review',
          '      review: { approvals: 2, approvers: [ann, "group:sre", ann], grant: { duration: 1h } }',
          '',
        ].join('\n'),
        '  review: { timeout: 2m, approvers: ["group:ops"], grant: { duration: 10m } }\n',
      ),
    );
    assert.deepEqual(p.review, {
      timeoutMs: 120_000,
      approvals: 1,
      approvers: ['group:ops'],
      grantMs: 600_000,
    });
    assert.deepEqual(p.rules[0]?.review, p.review);
    // Duplicates are one approver.
    assert.deepEqual(p.rules[1]?.review, {
      timeoutMs: 120_000,
      approvals: 2,
      approvers: ['ann', 'group:sre'],
      grantMs: 3_600_000,
    });
    assert.ok(Object.isFrozen(p.rules[1]?.review) && Object.isFrozen(p.rules[1]?.review?.approvers));
  });

  it('checks the spec-level review as it checks a rule', () => {
    assert.throws(
      () =>
        parsePolicy(wrap('    - { name: a, match: {}, action: deny }\n', '  review: { approvals: 99 }\n')),
      /policy: spec\.review\.approvals: must be a whole number of distinct approvers from 1 to 10, got 99/,
    );
    assert.throws(
      () => parsePolicy(wrap('    - { name: a, match: {}, action: deny }\n', '  review: 5m\n')),
      /spec\.review: must be a mapping \(timeout, approvals, approvers, grant\)/,
    );
  });

  it('rejects documents that are not policies', () => {
    assert.throws(() => parsePolicy('a: [1'), /not valid YAML/);
    assert.throws(() => parsePolicy('- 1\n'), /must be a YAML mapping/);
    assert.throws(
      () => parsePolicy('apiVersion: v1\nkind: GuardrailPolicy\nspec: {}'),
      /apiVersion: must be chaperone\.dev\/v1alpha1/,
    );
    assert.throws(
      () => parsePolicy('apiVersion: chaperone.dev/v1alpha1\nkind: Policy\nspec: {}'),
      /kind: must be GuardrailPolicy/,
    );
    assert.throws(
      () =>
        parsePolicy(
          'apiVersion: chaperone.dev/v1alpha1\nkind: GuardrailPolicy\nspec: { defaultAction: mask }',
        ),
      /defaultAction: must be allow, deny or review/,
    );
    assert.throws(
      () => parsePolicy('apiVersion: chaperone.dev/v1alpha1\nkind: GuardrailPolicy\nspec: {}\n---\na: 1'),
      /expected one YAML document, found 2/,
    );
    assert.throws(() => parsePolicy(wrap('    - 3\n')), /rules\[0\]: must be a mapping/);
  });
});
