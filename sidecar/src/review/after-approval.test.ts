import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Decision } from '@chaperone/shared';
import { afterApproval } from './after-approval.ts';

const held: Decision = {
  action: 'review',
  rule: 'review-scale',
  reason: 'rule_matched',
  message: 'scaling needs an approver',
};

describe('an approved action judged again', () => {
  it('stands when the same rule still reviews it', () => {
    assert.equal(afterApproval(held, { ...held }), undefined);
  });

  it('follows a policy that now denies it, saying so', () => {
    const now: Decision = {
      action: 'deny',
      rule: 'freeze',
      reason: 'rule_matched',
      message: 'release freeze',
    };
    const r = afterApproval(held, now);
    assert.equal(r?.decision.action, 'deny');
    assert.equal(r?.decision.rule, 'freeze');
    assert.match(
      r?.message ?? '',
      /rule "review-scale" approved .* rule "freeze" now denies it: release freeze/,
    );
  });

  it("refuses it when another rule's review now matches, and goes on when the policy now allows it", () => {
    const other = afterApproval(held, { ...held, rule: 'review-all' });
    assert.equal(other?.decision.action, 'deny');
    assert.match(other?.message ?? '', /rule "review-all" now requires an approval of its own/);
    const allow: Decision = { action: 'allow', rule: 'default', reason: 'policy_default', message: '' };
    assert.equal(afterApproval(held, allow)?.decision, allow);
  });
});
