import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  decidedOutcome,
  expiredOutcome,
  formatDuration,
  type HeldFor,
  reviewSummary,
  unavailableOutcome,
} from './review-outcome.ts';

const h: HeldFor = {
  rule: 'r',
  message: 'm',
  review: { timeoutMs: 90_000, approvals: 2, approvers: [], grantMs: 0 },
  noun: 'statement',
};
const ID = '0b9e5a1c-3f0e-4d2a-9c1b-7e6f5a4b3c2d';
const now = new Date('2026-12-07T04:00:00Z');

describe('review outcomes', () => {
  it('writes durations as a policy does', () => {
    assert.deepEqual([500, 1000, 90_000, 3_600_000, 5_400_000, 7 * 86_400_000].map(formatDuration), [
      '500ms',
      '1s',
      '1m30s',
      '1h',
      '1h30m',
      '7d',
    ]);
  });

  it('names every approver of an approval, and records them', () => {
    const o = decidedOutcome(
      h,
      {
        approvalId: ID,
        state: 'approved',
        decisions: [
          { user: 'ann', decision: 'approve', at: 't1', reason: 'ok' },
          { user: 'bo', decision: 'approve', at: 't2' },
        ],
      },
      false,
      now,
    );
    assert.equal(o.state, 'approved');
    assert.match(o.message, /^approved by ann \("ok"\), bo \(approval /);
    assert.deepEqual(o.record, { state: 'approved', id: ID, by: 'ann, bo', at: 't2', reason: 'ok' });
  });

  it('says who denied and why; an approval given before the denial is not named as its author', () => {
    const o = decidedOutcome(
      h,
      {
        approvalId: ID,
        state: 'denied',
        decisions: [
          { user: 'ann', decision: 'approve', at: 't1' },
          { user: 'cy', decision: 'deny', at: 't2', reason: 'no' },
        ],
      },
      false,
      now,
    );
    assert.equal(o.state, 'denied');
    assert.equal(
      o.message,
      `rule "r" requires a human's approval (m): denied by cy ("no") (approval ${ID}); the statement is denied`,
    );
    assert.deepEqual(o.record, { state: 'denied', id: ID, by: 'cy', at: 't2', reason: 'no' });
  });

  it('says how many approvals an expired review got', () => {
    const o = expiredOutcome(h, now, ID, [{ user: 'ann', decision: 'approve', at: 't1' }]);
    assert.match(o.message, /nobody decided within 1m30s \(1 of the 2 approvals it needs were given\)/);
    assert.equal(o.record.state, 'expired');
  });

  it('keeps what an audit event takes', () => {
    const o = unavailableOutcome(h, 'x'.repeat(5000), now);
    assert.equal(o.record.reason?.length, 1024);
    assert.equal(o.state, 'unavailable');
  });

  it('sums up a review rule', () => {
    assert.equal(
      reviewSummary({ timeoutMs: 300_000, approvals: 1, approvers: [], grantMs: 0 }),
      'review: 1 approval from anyone RBAC lets approve, within 5m; no grant',
    );
  });
});
