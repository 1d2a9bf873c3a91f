import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ApprovalView, GrantView } from '@chaperone/shared';
import {
  APPROVAL_HEADER,
  approvalRow,
  describeApproval,
  grantRow,
  listCutShort,
  table,
} from './approval-commands.ts';

const A: ApprovalView = {
  id: '7d9c6a4e-1b1a-4c2e-9a43-3c9f3f0e0a01',
  state: 'pending',
  requester: { namespace: 'agents', pod: 'agent-0', podUID: 'u', serviceAccount: 'agent' },
  protocol: 'exec',
  auditId: 'a1',
  summary: 'exec rm -rf /data\u001b[2J',
  action: { verb: 'exec', argv: ['rm', '-rf', '/data\u001b]0;owned\u0007'], container: 'app' },
  rule: 'exec-review',
  message: 'destructive commands need a human',
  approvals: 2,
  approvers: ['group:sre'],
  grantMs: 600_000,
  createdAt: '2026-06-01T09:00:00.000Z',
  expiresAt: '2026-06-01T09:10:00.000Z',
  decisions: [{ user: 'alice', decision: 'approve', at: '2026-06-01T09:01:00.000Z', reason: 'ok\u001b[31m' }],
};

describe('approval commands output', () => {
  it('lists a request in one row, progress as distinct approvers of those needed', () => {
    const [header, row] = table(APPROVAL_HEADER, [approvalRow(A)]);
    assert.match(header ?? '', /^ID\s+STATE\s+POD\s+RULE\s+APPROVED\s+EXPIRES\s+SUMMARY$/);
    assert.match(
      row ?? '',
      /pending\s+agents\/agent-0\s+exec-review\s+1\/2\s+2026-06-01T09:10:00.000Z\s+exec rm -rf \/data\\x1b\[2J$/,
    );
  });

  it('shows everything the agent chose with its control characters made visible', () => {
    const text = describeApproval(A).join('\n');
    const raw = [...text].filter((c) => c !== '\n' && (c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f));
    assert.deepEqual(raw, [], 'no raw control characters');
    assert.match(text, /argv +"rm" "-rf" "\/data\\u001b\]0;owned\\u0007"/);
    assert.match(text, /needs +2 distinct approvers among group:sre \(approved 1\/2\)/);
    assert.match(text, /decision +2026-06-01T09:01:00.000Z {2}alice approved: ok\\x1b\[31m/);
    assert.match(text, /grant +600 s once approved/);
  });

  it('lists a grant with who revoked it', () => {
    const g: GrantView = {
      id: 'g1',
      approvalId: A.id,
      requester: A.requester,
      rule: A.rule,
      fingerprint: 'f'.repeat(64),
      summary: A.summary,
      createdAt: A.createdAt,
      until: '2026-06-01T09:20:00.000Z',
      revokedAt: '2026-06-01T09:05:00.000Z',
      revokedBy: 'bob',
    };
    assert.deepEqual(grantRow(g).slice(0, 5), [
      'g1',
      'agents/agent-0',
      'exec-review',
      '2026-06-01T09:20:00.000Z',
      '2026-06-01T09:05:00.000Z by bob',
    ]);
  });

  it('says when a list was cut short', () => {
    assert.equal(listCutShort(100, 100), undefined);
    assert.equal(listCutShort(3, undefined), undefined);
    assert.match(listCutShort(100, 340) ?? '', /^showing 100 of 340 .*--limit/);
  });

  it('shows the optional details when present, a body line by line', () => {
    const action: ApprovalView['action'] = {
      verb: 'create',
      resource: 'configmaps',
      query: ['dryRun=All\u202e', 'fieldManager=kubectl'],
      params: ["$1 text 5 bytes: 'viewer'"],
      stdin: true,
      tty: false,
      digest: 'ab'.repeat(32),
      body: '{\n  "data": "\u001b[2J"\n}',
    };
    const text = describeApproval({ ...A, action }).join('\n');
    assert.match(text, /^query +dryRun=All\\u\{202e\}\nquery +fieldManager=kubectl$/m);
    assert.match(text, /^param +\$1 text 5 bytes: 'viewer'$/m);
    assert.match(text, /^session +stdin yes, terminal \(tty\) no$/m);
    assert.match(text, /^digest +(ab){32}$/m);
    assert.match(text, /^body +\|\n {2}\| \{\n {2}\| {3}"data": "\\x1b\[2J"\n {2}\| \}$/m);
    const raw = [...text].filter((c) => c !== '\n' && (c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f));
    assert.deepEqual(raw, []);
  });
});
