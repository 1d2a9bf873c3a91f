import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Approver } from '../auth/approver-auth.ts';
import { namedApprover, selfApprovalRefusal } from './approver-checks.ts';

const REQUESTER = { namespace: 'agents', pod: 'agent-0', podUID: 'uid-0', serviceAccount: 'agent' };
const person = (user: string, groups: string[] = [], extra: Approver['extra'] = {}): Approver => ({
  user,
  groups,
  extra,
  via: 'tokenreview',
});

describe('selfApprovalRefusal', () => {
  const cases: [string, Approver, boolean][] = [
    ['a person', person('alice'), false],
    ['the pod’s service account', person('system:serviceaccount:agents:agent'), true],
    [
      'the same service account name in another namespace',
      person('system:serviceaccount:other:agent'),
      false,
    ],
    [
      'a token bound to the pod (by uid)',
      person('system:serviceaccount:agents:helper', [], {
        'authentication.kubernetes.io/pod-uid': ['uid-0'],
      }),
      true,
    ],
    [
      'a token bound to the pod (by name, same namespace)',
      person('system:serviceaccount:agents:helper', [], {
        'authentication.kubernetes.io/pod-name': ['agent-0'],
      }),
      true,
    ],
    [
      'a token bound to a pod of the same name elsewhere',
      person('system:serviceaccount:other:helper', [], {
        'authentication.kubernetes.io/pod-name': ['agent-0'],
        'authentication.kubernetes.io/pod-uid': ['uid-9'],
      }),
      false,
    ],
  ];
  for (const [name, who, refused] of cases)
    it(`${refused ? 'refuses' : 'admits'} ${name}`, () => {
      const why = selfApprovalRefusal(who, REQUESTER);
      assert.equal(why !== undefined, refused, why);
      if (why) assert.match(why, /can never approve its own requests/);
    });
});

describe('namedApprover', () => {
  it('admits anyone when the request names nobody', () => assert.equal(namedApprover(person('x'), []), true));
  it('admits a named user or a member of a named group, nobody else', () => {
    const list = ['alice', 'group:sre'];
    assert.equal(namedApprover(person('alice'), list), true);
    assert.equal(namedApprover(person('bob', ['sre']), list), true);
    assert.equal(namedApprover(person('bob', ['dev']), list), false);
    assert.equal(namedApprover(person('sre'), list), false);
    assert.equal(namedApprover(person('group:sre'), ['group:sre']), false);
  });
});
