// Property tests of the ingest decision: whatever way a sidecar splits,
// repeats and resends its chain (as at-least-once delivery does), each event
// is stored exactly once, the head ends at the last event and no integrity
// alert is raised; and a chain with an event removed, edited or moved is
// always flagged.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type AuditEvent, type ChainHead, GENESIS_HASH } from '@chaperone/shared';
import fc from 'fast-check';
import { prepareEvent } from '../events/incoming-event.ts';
import { makeChain } from '../testing/test-events.ts';
import { type ExistingEvent, planBatch } from './ingest-plan.ts';
import type { IncomingBatch, IntegrityAlert } from './store.ts';

const WHO = { namespace: 'agents', pod: 'agent-0', podUID: 'u0', serviceAccount: 'agent' };
const SOURCE = { ...WHO, sidecarId: 'sc-0' };
const CHAIN = makeChain(SOURCE, 30);

/** A minimal store over planBatch: what the real stores do inside their transaction. */
function simulate(batches: readonly (readonly AuditEvent[])[]) {
  const stored = new Map<string, ExistingEvent>();
  let head: ChainHead = { seq: 0, hash: GENESIS_HASH };
  const alerts: IntegrityAlert[] = [];
  let storedCount = 0;
  for (const events of batches) {
    const batch: IncomingBatch = {
      sidecarId: SOURCE.sidecarId,
      identity: WHO,
      events: events.map((e) => prepareEvent(e, 1)),
      receivedUs: 1,
      rejectLeadingGap: true,
    };
    const plan = planBatch(batch, { head, owner: WHO }, stored, '2026-01-15T10:00:00.000000Z');
    alerts.push(...plan.alerts);
    if (plan.kind === 'rejected') continue;
    for (const e of plan.events)
      stored.set(e.auditID, { sidecarId: SOURCE.sidecarId, hash: e.chaperone.hash });
    storedCount += plan.events.length;
    head = plan.head;
  }
  return { stored, head, alerts, storedCount };
}

describe('ingest plan', () => {
  it('stores every event exactly once however resends overlap, without alerts', () => {
    // Batches are windows [from, to) where each starts at or before the acknowledged head + 1,
    // as a client that resumes from welcome.head or resends unacknowledged batches produces.
    const windows = fc.array(fc.tuple(fc.nat(29), fc.integer({ min: 1, max: 12 })), {
      minLength: 1,
      maxLength: 40,
    });
    fc.assert(
      fc.property(windows, (ws) => {
        let acked = 0;
        const batches: AuditEvent[][] = [];
        for (const [back, len] of ws) {
          const from = Math.max(0, acked - (back % (acked + 1)));
          const slice = CHAIN.slice(from, Math.min(CHAIN.length, from + len));
          if (slice.length === 0) continue;
          batches.push(slice);
          acked = Math.max(acked, from + slice.length);
        }
        batches.push(CHAIN); // a final full resend finishes the chain
        const r = simulate(batches);
        assert.equal(r.storedCount, CHAIN.length);
        assert.equal(r.stored.size, CHAIN.length);
        assert.deepEqual(r.head, { seq: 30, hash: CHAIN[29]?.chaperone.hash });
        assert.deepEqual(r.alerts, []);
      }),
      { numRuns: 300 },
    );
  });

  it('flags any removed, edited or moved event', () => {
    const damage = fc.oneof(
      fc.record({ kind: fc.constant('remove' as const), at: fc.integer({ min: 1, max: 28 }) }),
      fc.record({ kind: fc.constant('edit' as const), at: fc.integer({ min: 0, max: 29 }) }),
      fc.record({ kind: fc.constant('swap' as const), at: fc.integer({ min: 0, max: 28 }) }),
    );
    fc.assert(
      fc.property(damage, fc.integer({ min: 1, max: 30 }), (d, size) => {
        const events = [...CHAIN];
        if (d.kind === 'remove') events.splice(d.at, 1);
        if (d.kind === 'edit') events[d.at] = { ...(events[d.at] as AuditEvent), verb: 'delete' };
        if (d.kind === 'swap')
          [events[d.at], events[d.at + 1]] = [events[d.at + 1] as AuditEvent, events[d.at] as AuditEvent];
        const batches: AuditEvent[][] = [];
        for (let i = 0; i < events.length; i += size) batches.push(events.slice(i, i + size));
        // Gaps inside a connection's first batch are evidence, not transport loss.
        const stored = new Map<string, ExistingEvent>();
        let head: ChainHead = { seq: 0, hash: GENESIS_HASH };
        const alerts: IntegrityAlert[] = [];
        for (const b of batches) {
          const plan = planBatch(
            {
              sidecarId: SOURCE.sidecarId,
              identity: WHO,
              events: b.map((e) => prepareEvent(e, 1)),
              receivedUs: 1,
              rejectLeadingGap: false,
            },
            { head, owner: WHO },
            stored,
            '2026-01-15T10:00:00.000000Z',
          );
          alerts.push(...plan.alerts);
          if (plan.kind === 'stored') {
            for (const e of plan.events)
              stored.set(e.auditID, { sidecarId: SOURCE.sidecarId, hash: e.chaperone.hash });
            head = plan.head;
          }
        }
        assert.ok(alerts.length > 0, `${d.kind} at ${d.at} went unnoticed`);
        const expected = { remove: ['gap'], edit: ['hash_mismatch'], swap: ['gap', 'reorder'] }[d.kind];
        for (const k of expected)
          assert.ok(
            alerts.some((a) => a.kind === k),
            `${d.kind}: expected a ${k} alert`,
          );
      }),
      { numRuns: 300 },
    );
  });

  it('refuses a chain to a different pod, and a leading gap after a lost batch', () => {
    const other = { ...WHO, pod: 'agent-1', podUID: 'u1' };
    const batch = (
      events: readonly AuditEvent[],
      identity = WHO,
      rejectLeadingGap = false,
    ): IncomingBatch => ({
      sidecarId: SOURCE.sidecarId,
      identity,
      events: events.map((e) => prepareEvent(e, 1)),
      receivedUs: 1,
      rejectLeadingGap,
    });
    const head = { seq: 0, hash: GENESIS_HASH };
    const owned = planBatch(batch(CHAIN.slice(0, 2), other), { head, owner: WHO }, new Map(), 't');
    assert.equal(owned.kind, 'rejected');
    assert.equal(owned.kind === 'rejected' && owned.code, 'identity_mismatch');
    const gap = planBatch(batch(CHAIN.slice(5, 8), WHO, true), { head, owner: WHO }, new Map(), 't');
    assert.equal(gap.kind === 'rejected' && gap.code, 'out_of_order');
    const accepted = planBatch(batch(CHAIN.slice(5, 8), WHO, false), { head, owner: WHO }, new Map(), 't');
    assert.deepEqual(
      accepted.alerts.map((a) => [a.kind, a.seq, a.expectedSeq]),
      [['gap', 6, 1]],
    );
  });
});
