import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createRegistry } from '@chaperone/shared';
import type { Spool } from '../audit/spool.ts';
import { sidecarMetrics } from '../metrics.ts';
import { auditRefusal, countedAuditRefusal } from './guard.ts';

/** Only what auditRefusal reads of a spool: its capacity, depth and last write failure. */
function spoolState(s: { capacity: boolean; depth?: number; writeFailure?: string }): Spool {
  return {
    hasCapacity: () => s.capacity,
    depth: s.depth ?? 0,
    writeFailure: s.writeFailure,
  } as unknown as Spool;
}

describe('PostgreSQL statements that cannot be recorded', () => {
  it('are refused with the reason the Kubernetes path counts, and counted where the alerts read them', async () => {
    const registry = createRegistry({ component: 'sidecar' });
    const metrics = sidecarMetrics(registry, { namespace: 'agents' });
    const full = auditRefusal(spoolState({ capacity: false, depth: 9 }), false, undefined);
    assert.equal(full?.reason, 'spool_full');
    assert.match(countedAuditRefusal(full, metrics) ?? '', /audit spool is full \(9 events/);
    const failed = auditRefusal(spoolState({ capacity: true, writeFailure: 'ENOSPC' }), false, undefined);
    assert.equal(failed?.reason, 'spool_write_failed');
    countedAuditRefusal(failed, metrics);
    const behind = auditRefusal(
      spoolState({ capacity: true }),
      false,
      { maxLagMs: 1000, behindSince: () => 0 },
      5000,
    );
    assert.equal(behind?.reason, 'collector_behind');
    countedAuditRefusal(behind, metrics);
    assert.equal(
      countedAuditRefusal(auditRefusal(spoolState({ capacity: true }), false, undefined), metrics),
      undefined,
    );
    const text = await registry.metrics();
    for (const reason of ['spool_full', 'spool_write_failed', 'collector_behind'])
      assert.match(
        text,
        new RegExp(
          `chaperone_audit_unrecordable_requests_total\\{reason="${reason}",outcome="refused"[^}]*\\} 1`,
        ),
        reason,
      );
    assert.match(text, /chaperone_spool_full_total\{outcome="refused"[^}]*\} 1/);
  });

  it('fail open leaves a full or failing spool alone, never a collector that is behind', () => {
    assert.equal(
      auditRefusal(spoolState({ capacity: false, writeFailure: 'EIO' }), true, undefined),
      undefined,
    );
    assert.equal(
      auditRefusal(spoolState({ capacity: true }), true, { maxLagMs: 1000, behindSince: () => 0 }, 5000)
        ?.reason,
      'collector_behind',
    );
  });
});
