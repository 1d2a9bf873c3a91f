import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  type ApprovalRequestMessage,
  type ApprovalServerMessage,
  approvalFingerprint,
  createRegistry,
  type HeldAction,
} from '@chaperone/shared';
import { SqliteStore } from '../store/sqlite-store.ts';
import { memoryLogger } from '../testing/test-harness.ts';
import { createApprovalMetrics } from './approval-metrics.ts';
import { ApprovalService, type Hold } from './approval-service.ts';

const WHO = {
  namespace: 'agents',
  pod: 'agent-0',
  podUID: '0d6c5f4e-7f7e-4a43-9a43-3c9f3f0e0a02',
  serviceAccount: 'agent',
  username: 'system:serviceaccount:agents:agent',
};
const ACTION: HeldAction = { verb: 'delete', resource: 'secrets', name: 'db' };

function request(): ApprovalRequestMessage {
  return {
    type: 'request',
    auditId: randomUUID(),
    protocol: 'kubernetes',
    summary: 'delete secrets/db',
    action: ACTION,
    fingerprint: approvalFingerprint('kubernetes', ACTION),
    rule: 'secrets-review',
    message: 'deleting a secret needs a human',
    approvals: 1,
    approvers: [],
    timeoutMs: 3_600_000,
    grantMs: 0,
  };
}

function hold(): Hold & { got: ApprovalServerMessage[]; ended: boolean } {
  const h = {
    got: [] as ApprovalServerMessage[],
    ended: false,
    send(m: ApprovalServerMessage) {
      h.got.push(m);
    },
    end() {
      h.ended = true;
    },
  };
  return h;
}

describe('approval service: replicas that go away', () => {
  let dir: string;
  let store: SqliteStore;
  let clock = Date.UTC(2026, 5, 1, 9);
  const logs: string[] = [];
  const service = (replicaId: string) =>
    new ApprovalService({
      store: store.approvals,
      metrics: createApprovalMetrics(
        createRegistry({ component: 'collector', defaultMetrics: false }),
        store.approvals,
      ),
      logger: memoryLogger(logs),
      replicaId,
      leaseMs: 30_000,
      sweepMs: 3_600_000, // swept by hand below
      now: () => clock,
    });

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'chaperone-approval-service-'));
    store = new SqliteStore({ dataDir: dir });
  });
  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  // Fails if requests do not record their replica, or the sweep ignores leases: tried.
  it('withdraws the requests of a replica that stopped renewing its lease, not of one that renews it', async () => {
    const crashed = service('replica-crashed');
    const alive = service('replica-alive');
    await crashed.start();
    await alive.start();
    const h1 = hold();
    await crashed.submit(WHO, request(), h1);
    const h2 = hold();
    await alive.submit({ ...WHO, podUID: randomUUID() }, request(), h2);
    const [p1, p2] = [h1.got[0], h2.got[0]];
    assert.equal(p1?.type, 'pending');
    assert.equal(p2?.type, 'pending');
    // The first replica dies without withdrawing anything: no more heartbeats.
    crashed.stop();
    clock += 20_000;
    await alive.sweep();
    assert.equal((await store.approvals.get(p1?.approvalId as string))?.state, 'pending', 'within the lease');
    clock += 20_000;
    await alive.sweep();
    assert.equal((await store.approvals.get(p1?.approvalId as string))?.state, 'withdrawn');
    assert.equal((await store.approvals.get(p2?.approvalId as string))?.state, 'pending');
    assert.ok(logs.some((l) => l.includes('went away without withdrawing them')));
    alive.stop();
  });
});
