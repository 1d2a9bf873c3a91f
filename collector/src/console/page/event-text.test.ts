import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AuditEvent } from '@chaperone/shared';
import { testEvent } from '@chaperone/shared/testing';
import { decisionClass, decisionText, eventObject, eventSource, eventText } from './event-text.ts';

/** A stored event (its chain fields do not matter here). */
const ev = (over: Parameters<typeof testEvent>[1]): AuditEvent =>
  ({
    ...testEvent(1, over),
    chaperone: { ...testEvent(1, over).chaperone, seq: 1, prevHash: '', hash: '' },
  }) as AuditEvent;

describe('what an event did, in words', () => {
  it('gives an exec its full command line, quoted as a shell reads it', () => {
    const e = ev({
      verb: 'exec',
      chaperone: { protocol: 'exec', exec: { argv: ['sh', '-c', 'rm -rf /srv/*'] } },
    });
    assert.equal(eventText(e), `sh -c 'rm -rf /srv/*'`);
    assert.equal(
      eventText(ev({ chaperone: { protocol: 'exec', exec: { argv: ['sh'], line: 'echo \u202eok' } } })),
      'input line: echo \\u{202e}ok',
    );
  });

  it('gives a Kubernetes request its verb and object, a statement its normalised SQL, a port-forward its ports', () => {
    const k = ev({
      verb: 'delete',
      objectRef: { resource: 'secrets', name: 'db-password', namespace: 'shop' },
    });
    assert.equal(eventText(k), 'delete secrets db-password -n shop');
    assert.equal(
      eventObject(
        ev({ objectRef: { apiGroup: 'apps', resource: 'deployments', subresource: 'scale', name: 'web' } }),
      ),
      'apps/deployments/scale web',
    );
    const sql = ev({
      chaperone: {
        protocol: 'postgres',
        sql: {
          statements: [{ kind: 'DeleteStmt', tables: ['orders'] }],
          text: 'DELETE FROM orders WHERE id = $1',
        },
      },
    });
    assert.equal(eventText(sql), 'DELETE FROM orders WHERE id = $1');
    assert.equal(
      eventText(ev({ chaperone: { protocol: 'exec', portForward: { ports: [8080, 5432] } } })),
      'port-forward 8080, 5432',
    );
  });

  it('says how the decision went, review outcomes and masking included', () => {
    const deny = ev({
      chaperone: { decision: { action: 'deny', rule: 'no-delete', reason: 'rule_matched' } },
    });
    assert.deepEqual([decisionText(deny), decisionClass(deny)], ['deny', 'blocked']);
    const approved = ev({
      chaperone: {
        decision: {
          action: 'review',
          rule: 'r',
          reason: 'rule_matched',
          approval: { state: 'approved', id: 'x' },
        },
      },
    });
    assert.deepEqual([decisionText(approved), decisionClass(approved)], ['review → approved', 'approved']);
    const expired = ev({
      chaperone: {
        decision: { action: 'review', rule: 'r', reason: 'rule_matched', approval: { state: 'expired' } },
      },
    });
    assert.equal(decisionClass(expired), 'blocked');
    const masked = ev({ chaperone: { maskedFields: 2 } });
    assert.deepEqual([decisionText(masked), decisionClass(masked)], ['allow (2 masked)', 'masked']);
    assert.equal(decisionClass(ev({})), 'allowed');
    assert.equal(eventSource(ev({})), 'a/p');
  });
});
