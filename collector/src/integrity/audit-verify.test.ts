import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { AuditEvent } from '@chaperone/shared';
import { prepareEvent } from '../events/incoming-event.ts';
import { SQLITE_FILE, SqliteStore } from '../store/sqlite-store.ts';
import type { Identity } from '../store/store.ts';
import { makeChain } from '../testing/test-events.ts';
import { type ChainReport, verifyStore } from './audit-verify.ts';

const RECEIVED = Date.UTC(2026, 0, 15, 12, 0, 0) * 1000;
const POD_A: Identity & { sidecarId: string } = {
  namespace: 'agents',
  pod: 'agent-0',
  podUID: '11111111-1111-4111-8111-111111111111',
  serviceAccount: 'agent',
  sidecarId: 'sc-agent-0',
};
const POD_B: Identity & { sidecarId: string } = {
  namespace: 'payments',
  pod: 'worker-7',
  podUID: '22222222-2222-4222-8222-222222222222',
  serviceAccount: 'worker',
  sidecarId: 'sc-worker-7',
};

/** JSON text of an object nested `depth` deep (JSON.stringify itself would overflow the stack). */
function deepJson(depth: number): string {
  return `${'{"a":'.repeat(depth)}"x"${'}'.repeat(depth)}`;
}

describe('audit verify', () => {
  let dir: string;
  let store: SqliteStore;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'chaperone-verify-'));
    store = new SqliteStore({ dataDir: dir });
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function append(who: typeof POD_A, events: readonly AuditEvent[]): Promise<void> {
    const { sidecarId, ...identity } = who;
    const [o] = await store.append([
      {
        sidecarId,
        identity,
        events: events.map((e) => prepareEvent(e, RECEIVED)),
        receivedUs: RECEIVED,
        rejectLeadingGap: false,
      },
    ]);
    assert.equal(o?.kind, 'stored');
  }

  // Fails if the per-event handling in verifyStoredChain is removed (the hash is then computed by
  // verifyChain itself and the deep event's encoding error aborts the whole run): tried.
  it('reports a stored event nested 10,000 deep and goes on with the chain and the store', async () => {
    const a = makeChain(POD_A, 5);
    const b = makeChain(POD_B, 3);
    await append(POD_A, a);
    await append(POD_B, b);
    // Someone with database access (or an old collector without the depth limit) stored it.
    const db = new DatabaseSync(join(dir, SQLITE_FILE));
    const bad = `${JSON.stringify(a[2]).slice(0, -1)},"requestObject":${deepJson(10_000)}}`;
    db.prepare('UPDATE events SET event_json = ? WHERE audit_id = ?').run(bad, a[2]?.auditID as string);
    db.close();
    const reports: ChainReport[] = [];
    for await (const r of verifyStore(store)) reports.push(r);
    const ra = reports.find((r) => r.sidecarId === POD_A.sidecarId);
    const rb = reports.find((r) => r.sidecarId === POD_B.sidecarId);
    assert.equal(ra?.status, 'tampered');
    assert.equal(ra?.events, 5);
    assert.deepEqual(
      ra?.problems.map((p) => [p.kind, p.seq]),
      [['unverifiable', 3]],
    );
    assert.match(ra?.problems[0]?.message ?? '', /cannot be re-hashed.*nest more than 1000 levels/);
    // The events after it are still checked: their links hold.
    assert.deepEqual(ra?.verifiedHead, { seq: 5, hash: a[4]?.chaperone.hash });
    assert.equal(rb?.status, 'ok');
  });
});
