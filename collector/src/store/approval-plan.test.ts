import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type ApprovalRecord, approversSoFar, grantCovers, planDecision } from './approval-plan.ts';

const T0 = Date.UTC(2026, 5, 1, 9);
const base: ApprovalRecord = {
  id: '7d9c6a4e-1b1a-4c2e-9a43-3c9f3f0e0a01',
  state: 'pending',
  requester: { namespace: 'agents', pod: 'agent-0', podUID: 'u0', serviceAccount: 'agent' },
  protocol: 'exec',
  auditId: 'a1',
  summary: 'exec rm -rf /data',
  action: { verb: 'exec', argv: ['rm', '-rf', '/data'] },
  fingerprint: 'f'.repeat(64),
  rule: 'exec-review',
  message: 'm',
  approvals: 2,
  approvers: [],
  grantMs: 0,
  createdAt: new Date(T0).toISOString(),
  expiresAt: new Date(T0 + 60_000).toISOString(),
  decisions: [],
};
const d = (user: string, decision: 'approve' | 'deny') => ({
  user,
  decision,
  at: new Date(T0).toISOString(),
});

describe('planDecision', () => {
  it('stays pending until N distinct approvers', () => {
    const p = planDecision(base, d('alice', 'approve'), T0 + 1, 'g');
    assert.equal(p.kind === 'record' && p.state, 'pending');
    const a2 = { ...base, decisions: [d('alice', 'approve')] };
    const p2 = planDecision(a2, d('bob', 'approve'), T0 + 2, 'g');
    assert.equal(p2.kind === 'record' && p2.state, 'approved');
    assert.equal(p2.kind === 'record' && p2.grant, undefined);
  });
  it('counts the same approver once', () => {
    const p = planDecision(
      { ...base, decisions: [d('alice', 'approve')] },
      d('alice', 'approve'),
      T0 + 1,
      'g',
    );
    assert.equal(p.kind, 'refused');
    assert.deepEqual(approversSoFar([d('a', 'approve'), d('a', 'approve'), d('b', 'deny')]), ['a']);
  });
  it('ends on a single deny, even after approvals', () => {
    const p = planDecision({ ...base, decisions: [d('alice', 'approve')] }, d('alice', 'deny'), T0 + 1, 'g');
    assert.equal(p.kind === 'record' && p.state, 'denied');
  });
  it('refuses decisions on ended or expired requests', () => {
    for (const state of ['approved', 'denied', 'expired', 'withdrawn'] as const)
      assert.equal(planDecision({ ...base, state }, d('x', 'approve'), T0, 'g').kind, 'refused');
    assert.equal(planDecision(base, d('x', 'approve'), T0 + 60_000, 'g').kind, 'refused');
  });
  it('opens a grant of grantMs when approved', () => {
    const p = planDecision({ ...base, approvals: 1, grantMs: 5000 }, d('alice', 'approve'), T0 + 10, 'g1');
    assert.equal(p.kind === 'record' && p.grant?.id, 'g1');
    assert.equal(p.kind === 'record' && p.grant?.until, new Date(T0 + 5010).toISOString());
    const g = p.kind === 'record' ? p.grant : undefined;
    assert.ok(g);
    assert.equal(grantCovers(g, 'u0', 'exec-review', 'f'.repeat(64), T0 + 5009), true);
    assert.equal(grantCovers(g, 'u0', 'exec-review', 'f'.repeat(64), T0 + 5010), false);
    assert.equal(grantCovers(g, 'u1', 'exec-review', 'f'.repeat(64), T0), false);
    assert.equal(
      grantCovers({ ...g, revokedAt: new Date(T0).toISOString() }, 'u0', 'exec-review', 'f'.repeat(64), T0),
      false,
    );
  });
});
