import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AuditEvent } from '@chaperone/shared';
import { testEvent } from '@chaperone/shared/testing';
import { describeRequest, formatSummary, summarize } from './summary.ts';

/** The `seq`-th event of a chain, decided `action` (its rule named after the action). */
function event(
  seq: number,
  action: 'allow' | 'deny' | 'mask' | 'review',
  over: Parameters<typeof testEvent>[1] = {},
): AuditEvent {
  const e = testEvent(seq, over);
  return {
    ...e,
    chaperone: {
      ...e.chaperone,
      decision: { action, rule: action === 'allow' ? 'default' : `rule-${action}`, reason: 'rule_matched' },
      seq,
      prevHash: '',
      hash: '',
    },
  };
}

describe('the session summary', () => {
  const events = [
    event(1, 'allow'),
    event(2, 'mask', {
      verb: 'get',
      objectRef: { resource: 'secrets', name: 'db', namespace: 'dev' },
      chaperone: { maskedFields: 2 },
    }),
    event(3, 'deny', {
      verb: 'delete',
      objectRef: { resource: 'deployments', name: 'web', namespace: 'dev', apiGroup: 'apps' },
    }),
    event(4, 'allow', {
      chaperone: {
        protocol: 'exec',
        sessionId: 's-1',
        exec: { argv: ['ls', '-l'] } as AuditEvent['chaperone']['exec'],
      },
    }),
    event(5, 'review', {
      chaperone: {
        protocol: 'postgres',
        sql: { text: 'DROP TABLE users', database: 'shop', statements: [] },
      },
    }),
  ];

  it('counts decisions and masked values, and lists what was refused or held', () => {
    const s = summarize(events);
    assert.deepEqual([s.events, s.allowed, s.denied, s.masked, s.held, s.maskedValues], [5, 2, 1, 1, 1, 2]);
    assert.deepEqual(s.execSessions, ['s-1']);
    assert.deepEqual(s.notable, [
      { decision: 'deny', rule: 'rule-deny', what: 'delete deployments web -n dev' },
      { decision: 'review', rule: 'rule-review', what: 'sql shop DROP TABLE users' },
    ]);
    const ns = event(6, 'deny', {
      verb: 'delete',
      objectRef: { resource: 'namespaces', name: 'dev', namespace: 'dev' },
    });
    assert.equal(describeRequest(ns), 'delete namespaces dev');
    const text = formatSummary(s);
    assert.match(
      text,
      /5 request\(s\) through the guard: 2 allowed, 1 denied, 1 masked, 1 held for review; 2 value\(s\) masked/,
    );
    assert.match(text, /chaperone replay <session>/);
  });

  it('never writes control characters from a request to the terminal', () => {
    const e = event(1, 'deny', {
      chaperone: {
        protocol: 'exec',
        exec: { argv: ['echo', '\u001b]0;owned\u0007'] } as AuditEvent['chaperone']['exec'],
      },
    });
    assert.equal(describeRequest(e), 'exec echo ?]0;owned?');
  });
});
