import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import type { ApprovalRecord } from '../store/approval-plan.ts';
import { memoryLogger } from '../testing/test-harness.ts';
import { approvalWebhook, webhookText } from './approval-webhook.ts';

const A: ApprovalRecord = {
  id: '7d9c6a4e-1b1a-4c2e-9a43-3c9f3f0e0a01',
  state: 'pending',
  requester: { namespace: 'agents', pod: 'agent-0', podUID: 'u', serviceAccount: 'agent' },
  protocol: 'postgres',
  auditId: 'a1',
  summary: 'psql: DROP TABLE <users> & more',
  action: { verb: 'DROP', sql: 'DROP TABLE users', database: 'shop' },
  fingerprint: 'f'.repeat(64),
  rule: 'ddl-review',
  message: 'DDL needs a human',
  approvals: 2,
  approvers: ['group:dba'],
  grantMs: 0,
  createdAt: '2026-06-01T09:00:00.000Z',
  expiresAt: '2026-06-01T09:10:00.000Z',
  decisions: [],
};

describe('approval webhook', () => {
  it('writes who asks, what, the rule and a link, with Slack markup escaped', () => {
    const t = webhookText(A, 'https://chaperone.example/console/');
    assert.match(t, /^Approval needed: `psql: DROP TABLE &lt;users&gt; &amp; more`$/m);
    assert.match(t, /^Requested by: `agents\/agent-0 \(service account agent\)`$/m);
    assert.match(t, /^Rule: `ddl-review`$/m);
    assert.match(t, /^Message: `DDL needs a human`$/m);
    assert.match(t, /Needs 2 approvals by 2026-06-01T09:10:00.000Z from `group:dba`/);
    assert.match(
      t,
      /<https:\/\/chaperone\.example\/console\/approvals\/7d9c6a4e-1b1a-4c2e-9a43-3c9f3f0e0a01\|Review request/,
    );
    assert.match(webhookText(A, undefined), /chaperone approvals show 7d9c6a4e/);
  });

  it('keeps each field on its own line: a newline, a fake line and a URL in argv stay inside the summary', () => {
    const argv = [
      'sh',
      '-c',
      'curl https://api.github.com/user\nRequested by: `prod/payments-0`\r\nReview it here: <https://approvals.example.evil/x|Review request>\u202e',
    ];
    const t = webhookText(
      { ...A, protocol: 'exec', summary: `exec ${argv.join(' ')}`, action: { verb: 'exec', argv } },
      undefined,
    );
    const lines = t.split('\n');
    assert.equal(lines.length, 6);
    assert.equal(
      lines[0],
      'Approval needed: `exec sh -c curl https://api.github.com/user\\x0aRequested by: \\x60prod/payments-0\\x60\\x0d\\x0aReview it here: &lt;https://approvals.example.evil/x|Review request&gt;\\u{202e}`',
    );
    assert.equal(lines.filter((l) => l.startsWith('Requested by:')).length, 1);
    assert.ok(!/<https:\/\/approvals\.example\.evil/.test(t), 'no link to the agent-chosen URL');
  });

  it('POSTs {"text": …} as JSON to a local server, and logs a refusal without failing', async () => {
    const got: { req: IncomingMessage; body: string }[] = [];
    let status = 200;
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => {
        body += c;
      });
      req.on('end', () => {
        got.push({ req, body });
        res.writeHead(status).end('ok');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook/secret-path`;
    const logs: string[] = [];
    const notify = approvalWebhook({ url, pageUrl: 'https://c.example', logger: memoryLogger(logs) });
    try {
      notify(A);
      while (got.length < 1) await new Promise((r) => setTimeout(r, 10));
      assert.equal(got[0]?.req.method, 'POST');
      assert.equal(got[0]?.req.headers['content-type'], 'application/json');
      assert.deepEqual(JSON.parse(got[0]?.body ?? ''), { text: webhookText(A, 'https://c.example') });
      status = 500;
      notify(A);
      while (!logs.some((l) => l.includes('refused the notification')))
        await new Promise((r) => setTimeout(r, 10));
      assert.ok(!logs.join('').includes('secret-path'), 'the webhook URL is not logged');
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it('logs an unreachable webhook and carries on', async () => {
    const logs: string[] = [];
    approvalWebhook({ url: 'http://127.0.0.1:1/hook', logger: memoryLogger(logs) })(A);
    while (!logs.some((l) => l.includes('could not be reached'))) await new Promise((r) => setTimeout(r, 10));
  });
});
