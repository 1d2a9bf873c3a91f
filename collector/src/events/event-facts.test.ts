import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { UnchainedEvent } from '@chaperone/shared';
import { type EventSpec, sampleEvent, TEST_SOURCE } from '../testing/test-events.ts';
import { eventFacts } from './event-facts.ts';

function facts(spec: EventSpec, edit: (e: UnchainedEvent) => void = () => {}) {
  const e = sampleEvent(TEST_SOURCE, 1, spec);
  edit(e);
  return eventFacts(e as Parameters<typeof eventFacts>[0]);
}

const sql = (statements: { kind: string; tables: string[]; kinds?: string[] }[]) => (e: UnchainedEvent) => {
  if (e.chaperone.sql) e.chaperone.sql.statements = statements;
};

describe('eventFacts', () => {
  it('reads the outcome: blocked, approved, masked', () => {
    const review = (state: 'approved' | 'denied' | 'expired' | 'unavailable') => (e: UnchainedEvent) => {
      e.chaperone.decision.approval = { state };
    };
    const outcome = (f: ReturnType<typeof eventFacts>) => [f.blocked, f.approved, f.masked];
    assert.deepEqual(outcome(facts({ action: 'deny' })), [true, false, false]);
    assert.deepEqual(outcome(facts({ action: 'review' }, review('approved'))), [false, true, false]);
    for (const s of ['denied', 'expired', 'unavailable'] as const)
      assert.deepEqual(outcome(facts({ action: 'review' }, review(s))), [true, false, false], s);
    assert.deepEqual(outcome(facts({ action: 'review' })), [true, false, false], 'a review with no outcome');
    assert.deepEqual(outcome(facts({ action: 'mask' })), [false, false, true]);
    assert.deepEqual(outcome(facts({}, (e) => (e.chaperone.maskedFields = 3))), [false, false, true]);
  });

  it('files reads and changes as an access review does', () => {
    const of = (f: ReturnType<typeof eventFacts>) => [f.change, f.verb, f.resource];
    assert.deepEqual(of(facts({ verb: 'list', resource: 'pods' })), [false, 'list', 'pods']);
    assert.deepEqual(of(facts({ verb: 'get', resource: 'pods', subresource: 'log' })), [
      false,
      'get',
      'pods/log',
    ]);
    assert.deepEqual(of(facts({ verb: 'patch', resource: 'secrets' })), [true, 'patch', 'secrets']);
    assert.deepEqual(of(facts({ protocol: 'exec', verb: 'get', resource: 'pods', subresource: 'exec' })), [
      true,
      'get',
      'pods/exec',
    ]);
    assert.deepEqual(of(facts({ protocol: 'postgres' })), [false, 'select', 'app/orders']);
    assert.deepEqual(
      of(
        facts(
          { protocol: 'postgres' },
          sql([{ kind: 'SelectStmt', tables: ['b', 'a'], kinds: ['select', 'insert'] }]),
        ),
      ),
      [true, 'select', 'app/a,b'],
      'a SELECT with a data-modifying part changes',
    );
    assert.deepEqual(
      of(
        facts(
          { protocol: 'postgres' },
          sql([{ kind: 'CopyStmt', tables: ['t'], kinds: ['copy', 'copy-to'] }]),
        ),
      ),
      [false, 'copy', 'app/t'],
    );
    assert.deepEqual(
      of(
        facts(
          { protocol: 'postgres' },
          sql([{ kind: 'CopyStmt', tables: ['t'], kinds: ['copy', 'copy-to', 'copy-program'] }]),
        ),
      ),
      [true, 'copy', 'app/t'],
    );
    assert.deepEqual(
      of(
        facts(
          { protocol: 'postgres' },
          sql([{ kind: 'DeleteStmt', tables: ['t'], kinds: ['delete-without-where'] }]),
        ),
      ),
      [true, 'delete-without-where', 'app/t'],
    );
  });

  it('names a session, summarises it and knows its end', () => {
    assert.equal(facts({}).session, undefined);
    assert.deepEqual(
      facts({
        protocol: 'exec',
        resource: 'pods',
        subresource: 'attach',
        argv: ['sh', '-c', 'ls'],
        sessionId: 's',
      }).session,
      { kind: 'attach', summary: 'sh -c ls', closes: false },
    );
    assert.deepEqual(
      facts({ protocol: 'exec', argv: ['ls'], sessionId: 's' }, (e) => {
        if (e.chaperone.exec) e.chaperone.exec.durationMs = 12;
      }).session,
      { kind: 'exec', summary: 'ls', closes: true },
    );
    assert.deepEqual(facts({ protocol: 'postgres', sessionId: 'p' }).session, {
      kind: 'postgres',
      summary: 'app/agent',
      closes: false,
    });
    assert.deepEqual(
      facts({ resource: 'pods', subresource: 'portforward', sessionId: 'f' }, (e) => {
        e.chaperone.portForward = {
          ports: [8080],
          used: [{ port: 5432, connections: 1, refused: 0, bytesToPod: 0, bytesToAgent: 0 }],
          durationMs: 5,
        };
      }).session,
      { kind: 'portforward', summary: '5432,8080', closes: true },
    );
    assert.equal(
      facts({ protocol: 'exec', argv: ['x'.repeat(600)], sessionId: 's' }).session?.summary.length,
      512,
    );
  });
});
