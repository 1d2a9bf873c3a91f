import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { approvalProgress, describeObject, formatArgv, formatRemaining, formatTime } from './format.ts';

describe('page formatting', () => {
  it('counts down', () => {
    assert.equal(formatRemaining(0), 'expired');
    assert.equal(formatRemaining(-5), 'expired');
    assert.equal(formatRemaining(9_999), '9s');
    assert.equal(formatRemaining(245_000), '4m 05s');
    assert.equal(formatRemaining(3_720_000), '1h 02m');
  });

  it('shows times in UTC and keeps what it cannot read', () => {
    assert.equal(formatTime('2026-12-07T04:31:05.123Z'), '2026-12-07 04:31:05 UTC');
    assert.equal(formatTime('soon'), 'soon');
    assert.equal(formatTime(undefined), '');
  });

  it('names the object and quotes argv as a shell would', () => {
    assert.equal(
      describeObject({
        verb: 'update',
        apiGroup: 'apps',
        resource: 'deployments',
        subresource: 'scale',
        name: 'web',
        namespace: 'shop',
      }),
      'apps/deployments/scale web -n shop',
    );
    assert.equal(formatArgv(['sh', '-c', "rm -rf / && echo 'x'"]), `sh -c 'rm -rf / && echo '\\''x'\\'''`);
  });

  it('counts distinct approvers', () => {
    const d = (user: string, decision: 'approve' | 'deny') => ({ user, decision, at: '' });
    assert.equal(
      approvalProgress({ approvals: 2, decisions: [d('a', 'approve'), d('a', 'approve')] }),
      '1 of 2 approvals',
    );
    assert.equal(approvalProgress({ approvals: 1, decisions: [] }), '0 of 1 approval');
  });
});
