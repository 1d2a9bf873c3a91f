import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_RECORD_BYTES } from '../audit/spool.ts';
import { MAX_EVENT_SQL_TEXT, type StatementRecord, statementEvent } from './audit-event.ts';

const record = (text: string): StatementRecord => ({
  identity: {
    user: { username: 'system:serviceaccount:ns:agent' },
    source: { namespace: 'ns', pod: 'agent', serviceAccount: 'agent', sidecarId: 'sc-1' },
  },
  sessionId: 's-1',
  database: 'app',
  dbUser: 'app',
  remoteAddress: '127.0.0.1',
  statement: { kind: 'DeleteStmt', tables: ['orders'] },
  text,
  fingerprint: 'f00dfeed',
  decision: {
    action: 'allow' as const,
    rule: 'default',
    reason: 'policy_default' as const,
    message: 'allowed',
  },
  receivedAt: new Date(0),
  overheadMs: 1,
  outcome: { rows: 1 },
});

describe('statementEvent', () => {
  // Fails if the text were kept whole (eventText not applied): the event would be larger than the
  // spool takes, its write would fail, and a statement that ran would have no event.
  it("shortens a huge statement's text under the spool's record limit, keeping the fingerprint and saying so", () => {
    const huge = `DELETE FROM orders WHERE id NOT IN (${Array.from({ length: 300_000 }, (_, i) => `$${i + 1}`).join(', ')})`;
    const e = statementEvent(record(huge));
    assert.ok(JSON.stringify(e).length < MAX_RECORD_BYTES / 2);
    const text = e.chaperone.sql?.text ?? '';
    assert.ok(text.startsWith(huge.slice(0, MAX_EVENT_SQL_TEXT)));
    assert.match(text, new RegExp(`\\[truncated: ${huge.length - MAX_EVENT_SQL_TEXT} more characters\\]$`));
    assert.equal(e.chaperone.sql?.fingerprint, 'f00dfeed');
    assert.equal(e.chaperone.sql?.rows, 1);
  });

  it('keeps a statement of ordinary size whole', () => {
    assert.equal(statementEvent(record('SELECT 1')).chaperone.sql?.text, 'SELECT 1');
  });
});
