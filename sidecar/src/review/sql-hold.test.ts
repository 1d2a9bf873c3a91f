import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Decision, SqlMask } from '@chaperone/shared';
import { judgedAgain } from './sql-hold.ts';

const approval: NonNullable<Decision['approval']> = { state: 'approved', id: 'a-1', by: 'alice' };
const masks: SqlMask[] = [{ rule: 'mask-emails', columns: ['email'] }];
const held: Decision = {
  action: 'review',
  rule: 'review-deletes',
  reason: 'rule_matched',
  message: 'deletes need an approver',
};
const approved: Decision = { ...held, approval, sqlMasks: [{ rule: 'old-mask' }] };

describe('an approved statement judged again', () => {
  it('stands when the same rule still reviews it, with the masks in force now (nobody is asked twice)', () => {
    assert.deepEqual(judgedAgain(approved, held, masks), { ...held, approval, sqlMasks: masks });
    assert.deepEqual(judgedAgain(approved, held, []), { ...held, approval });
  });

  it('is refused by a policy tightened during the hold, with the new rule and its message, the approval recorded', () => {
    const freeze: Decision = {
      action: 'deny',
      rule: 'freeze',
      reason: 'rule_matched',
      message: 'release freeze',
    };
    const d = judgedAgain(approved, freeze, masks);
    assert.equal(d.action, 'deny');
    assert.equal(d.rule, 'freeze');
    assert.equal(d.approval, approval);
    assert.match(
      d.message,
      /rule "review-deletes" approved it, but .*rule "freeze" now denies it: release freeze/,
    );
  });

  it("is refused when another rule's review now matches, and runs as an allow or mask now says", () => {
    const other = judgedAgain(approved, { ...held, rule: 'review-all' }, masks);
    assert.equal(other.action, 'deny');
    assert.match(other.message, /rule "review-all" now requires an approval of its own/);
    const mask: Decision = {
      action: 'mask',
      rule: 'm',
      reason: 'rule_matched',
      message: 'masked',
      sqlMasks: masks,
    };
    assert.deepEqual(judgedAgain(approved, mask, masks), { ...mask, approval });
  });

  it('leaves a statement that was not approved as it is', () => {
    const denied: Decision = { ...held, approval: { ...approval, state: 'denied' } };
    assert.equal(judgedAgain(denied, { ...held, action: 'allow' }, masks), denied);
  });
});
