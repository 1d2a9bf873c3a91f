import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type ApprovalRequestMessage,
  approvalFingerprint,
  MAX_APPROVAL_MESSAGE_BYTES,
  parseApprovalRequest,
  parseApprovalServerMessage,
} from './approval-protocol.ts';
import { ValidationError } from './errors.ts';

const action = {
  verb: 'patch',
  resource: 'deployments',
  subresource: 'scale',
  namespace: 'shop',
  name: 'web',
};

function request(over: Record<string, unknown> = {}): Record<string, unknown> {
  const base: ApprovalRequestMessage = {
    type: 'request',
    auditId: '6f1c1c1e-0000-4000-8000-000000000001',
    protocol: 'kubernetes',
    summary: 'patch deployments/web/scale -n shop',
    action,
    fingerprint: approvalFingerprint('kubernetes', action),
    rule: 'scale-needs-approval',
    message: 'scaling needs a human',
    approvals: 1,
    approvers: [],
    timeoutMs: 300_000,
    grantMs: 0,
  };
  return { ...base, ...over };
}

test('a well-formed request parses to what was sent', () => {
  const sent = request({ approvers: ['alice', 'group:sre'], approvals: 2, grantMs: 60_000 });
  assert.deepEqual(parseApprovalRequest(JSON.stringify(sent)), sent);
});

test('the fingerprint depends on the protocol and every field of the action, not on key order', () => {
  const a = approvalFingerprint('kubernetes', action);
  assert.equal(
    a,
    approvalFingerprint('kubernetes', {
      name: 'web',
      namespace: 'shop',
      subresource: 'scale',
      resource: 'deployments',
      verb: 'patch',
    }),
  );
  assert.notEqual(a, approvalFingerprint('kubernetes', { ...action, name: 'api' }));
  assert.notEqual(a, approvalFingerprint('exec', action));
  assert.notEqual(
    approvalFingerprint('exec', { verb: 'exec', argv: ['rm', '-rf /'] }),
    approvalFingerprint('exec', { verb: 'exec', argv: ['rm -rf', '/'] }),
  );
});

test('the new members of a held action parse, and the digest is part of the fingerprint', () => {
  const full = {
    ...action,
    query: ['fieldManager=kubectl', 'labelSelector=app=web'],
    body: '{\n  "spec": { "replicas": 3 }\n}',
    stdin: true,
    tty: false,
    params: ['$1 text 6 bytes: viewer'],
    digest: 'a'.repeat(64),
  };
  const sent = request({ action: full, fingerprint: approvalFingerprint('kubernetes', full) });
  assert.deepEqual(parseApprovalRequest(JSON.stringify(sent)), sent);
  assert.notEqual(
    approvalFingerprint('kubernetes', full),
    approvalFingerprint('kubernetes', { ...full, digest: 'b'.repeat(64) }),
  );
});

test('requests with a field out of bounds or unknown are refused, naming the field', () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ approvals: 0 }, /approvals/],
    [{ approvals: 11 }, /approvals/],
    [{ timeoutMs: 0 }, /timeoutMs/],
    [{ timeoutMs: 25 * 3600 * 1000 }, /timeoutMs/],
    [{ grantMs: -1 }, /grantMs/],
    [{ protocol: 'system' }, /protocol/],
    [{ fingerprint: 'abc' }, /fingerprint/],
    [{ auditId: 'a b' }, /auditId/],
    [{ action: { ...action, extra: 1 } }, /extra/],
    [{ action: { resource: 'pods' } }, /verb/],
    [{ approvers: 'alice' }, /approvers/],
    [{ pod: 'someone-else' }, /pod/],
    [{ type: 'decided' }, /type/],
    [{ action: { ...action, digest: 'xyz' } }, /digest/],
    [{ action: { ...action, stdin: 'yes' } }, /stdin/],
    [{ action: { ...action, query: 'a=b' } }, /query/],
    [{ action: { ...action, body: 'x'.repeat(17 * 1024) } }, /body/],
    [{ action: { ...action, params: [1] } }, /params/],
  ];
  for (const [over, field] of cases) {
    assert.throws(
      () => parseApprovalRequest(JSON.stringify(request(over))),
      (err: unknown) => err instanceof ValidationError && field.test(err.message),
      JSON.stringify(over),
    );
  }
});

test('non-JSON, non-objects and oversized messages are refused', () => {
  assert.throws(() => parseApprovalRequest('{'), ValidationError);
  assert.throws(() => parseApprovalRequest('[]'), ValidationError);
  const big = JSON.stringify(request({ summary: 'x'.repeat(MAX_APPROVAL_MESSAGE_BYTES) }));
  assert.throws(() => parseApprovalRequest(big), /larger than/);
});

test('server messages: pending and decided parse; anything else is refused', () => {
  const id = '0b6f8d2e-5a4c-4f7e-9d1a-2b3c4d5e6f70';
  assert.deepEqual(
    parseApprovalServerMessage(
      JSON.stringify({ type: 'pending', approvalId: id, expiresAt: '2026-12-07T05:00:00Z' }),
    ),
    { type: 'pending', approvalId: id, expiresAt: '2026-12-07T05:00:00Z' },
  );
  const decided = {
    type: 'decided',
    approvalId: id,
    state: 'approved',
    decisions: [{ user: 'alice', decision: 'approve', at: '2026-12-07T05:00:00Z', reason: 'ok' }],
    grantId: id,
    grantUntil: '2026-12-07T06:00:00Z',
  };
  assert.deepEqual(parseApprovalServerMessage(JSON.stringify(decided)), decided);
  for (const bad of [
    { ...decided, state: 'pending' },
    { ...decided, approvalId: 'not-a-uuid' },
    { ...decided, decisions: [{ user: 'alice', decision: 'maybe', at: 'x' }] },
    { ...decided, approved: true },
    { type: 'welcome', approvalId: id },
  ]) {
    assert.throws(
      () => parseApprovalServerMessage(JSON.stringify(bad)),
      ValidationError,
      JSON.stringify(bad),
    );
  }
});
