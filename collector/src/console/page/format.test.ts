import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ApprovalView } from '@chaperone/shared';
import { visible } from '../../cli/terminal-safe.ts';
import {
  abilityText,
  approvalProgress,
  bucketName,
  describeObject,
  formatArgv,
  formatRemaining,
  formatTime,
  hiddenCharacters,
  scopeText,
  shown,
  shownLines,
} from './format.ts';

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

  it('writes out bidi, control and invisible characters in agent-chosen text, as the CLI does', () => {
    const script = 'echo "rotating logs" ;\u202e \u2066rm -rf /srv/prod\u2069 ; \u2066# comment\u2069';
    const argv = formatArgv(['sh', '-c', script]);
    assert.equal(
      argv,
      `sh -c 'echo "rotating logs" ;\\u{202e} \\u{2066}rm -rf /srv/prod\\u{2069} ; \\u{2066}# comment\\u{2069}'`,
    );
    assert.equal(shown('a\u200bb\nc\u00adok'), 'a\\u{200b}b\\x0ac\u00adok');
    assert.equal(shown('x\u2028y\ufeff'), visible('x\u2028y\ufeff'));
    assert.equal(describeObject({ verb: 'get', resource: 'pods', name: 'web\u202e0' }), 'pods web\\u{202e}0');
  });

  it('finds hidden characters in any agent-chosen field, nested ones included', () => {
    const base: ApprovalView = {
      id: 'x',
      state: 'pending',
      requester: { namespace: 'ns', pod: 'p', serviceAccount: 'sa' },
      protocol: 'exec',
      auditId: 'a',
      summary: 'exec',
      action: { verb: 'exec', argv: ['ls'] },
      rule: 'r',
      message: 'm',
      approvals: 1,
      approvers: [],
      grantMs: 0,
      createdAt: '',
      expiresAt: '',
      decisions: [],
    };
    assert.equal(hiddenCharacters(base), false);
    // A pretty-printed body's line breaks are layout (shown as lines), not hidden characters.
    assert.equal(hiddenCharacters({ ...base, action: { verb: 'create', body: '{\n  "a": 1\n}' } }), false);
    assert.equal(hiddenCharacters({ ...base, action: { verb: 'create', body: '{\n  "a": "\r"\n}' } }), true);
    assert.equal(shownLines('{\n  "a": "x\ry\u2066"\n}'), '{\n  "a": "x\\x0dy\\u{2066}"\n}');
    assert.equal(hiddenCharacters({ ...base, action: { verb: 'exec', argv: ['ls', 'a\u2066b'] } }), true);
    assert.equal(hiddenCharacters({ ...base, rule: 'r\u200b' }), true);
    assert.equal(hiddenCharacters({ ...base, requester: { ...base.requester, pod: 'p\x1b' } }), true);
    assert.equal(
      hiddenCharacters({
        ...base,
        action: { verb: 'x', extra: { deep: ['\u202e'] } } as unknown as ApprovalView['action'],
      }),
      true,
    );
  });

  it('names chart buckets and who is signed in', () => {
    assert.equal(bucketName(60), 'minute');
    assert.equal(bucketName(300), '5 minutes');
    assert.equal(bucketName(3600), 'hour');
    assert.equal(bucketName(21_600), '6 hours');
    assert.equal(bucketName(86_400), 'day');
    assert.equal(scopeText({ subject: 'alice', namespaces: '*' }), 'Signed in as alice (all namespaces)');
    assert.equal(scopeText({ subject: 'bob', namespaces: ['shop'] }), 'Signed in as bob (namespace shop)');
    assert.equal(
      scopeText({ subject: 'eve\u202e', namespaces: ['a', 'b'] }),
      'Signed in as eve\\u{202e} (namespaces a, b)',
    );
    assert.equal(scopeText({ subject: 'x', namespaces: [] }), 'Signed in as x (no namespaces)');
  });

  it('says what a session may do', () => {
    assert.equal(abilityText({ read: true, approve: true }), 'may read the audit log and decide approvals');
    assert.equal(abilityText({ read: true, approve: false }), 'may read the audit log, not decide approvals');
    assert.equal(abilityText({ read: false, approve: true }), 'may decide approvals, not read the audit log');
  });
});
