import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ValidationError } from '@chaperone/shared';
import { isApprovalPath, parseDecisionBody } from './approval-routes.ts';

describe('parseDecisionBody', () => {
  it('reads a decision and an optional reason', () => {
    assert.deepEqual(parseDecisionBody('{"decision":"approve"}'), { decision: 'approve' });
    assert.deepEqual(parseDecisionBody('{"decision":"deny","reason":"no"}'), {
      decision: 'deny',
      reason: 'no',
    });
  });
  const bad: [string, RegExp][] = [
    ['not json', /must be JSON/],
    ['[]', /object/],
    ['{"decision":"maybe"}', /decision/],
    ['{}', /decision/],
    ['{"decision":"deny","reason":7}', /reason/],
    [`{"decision":"deny","reason":"${'x'.repeat(1025)}"}`, /reason/],
    ['{"decision":"deny","by":"me"}', /by/],
  ];
  for (const [body, want] of bad)
    it(`refuses ${body.slice(0, 40)} naming the field`, () => {
      assert.throws(
        () => parseDecisionBody(body),
        (e: unknown) =>
          e instanceof ValidationError && want.test(`${e.message} ${JSON.stringify(e.details)}`),
      );
    });
});

describe('isApprovalPath', () => {
  it('claims the approval and grant routes only', () => {
    for (const p of ['/v1/approvals', '/v1/approvals/x/decision', '/v1/grants', '/v1/grants/x'])
      assert.equal(isApprovalPath(p), true, p);
    for (const p of ['/v1/events', '/v1/approvalsx', '/v1/grant', '/approvals'])
      assert.equal(isApprovalPath(p), false, p);
  });
});
