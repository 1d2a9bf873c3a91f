/**
 * The approval store's conformance suite: both backends get the same
 * requests and decisions and must give the same answers. Run by
 * sqlite-store.test.ts and, against a real PostgreSQL, by
 * e2e/src/collector-approvals.test.ts.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { type ApproverDecision, approvalFingerprint, type HeldAction } from '@chaperone/shared';
import type { ApprovalRecord } from './approval-plan.ts';
import type { AuditStore } from './store.ts';

export interface ApprovalStoreHarness {
  /** A new, empty store. */
  open(): Promise<AuditStore>;
  /**
   * Another handle on the same database, as another replica holds it (the
   * embedded store is one process: the same store).
   */
  peer(store: AuditStore): Promise<AuditStore>;
  destroy(): Promise<void>;
}

const T0 = Date.UTC(2026, 5, 1, 9, 0, 0);
const MIN = 60_000;
const POD = {
  namespace: 'agents',
  pod: 'agent-0',
  podUID: '11111111-1111-4111-8111-111111111111',
  serviceAccount: 'agent',
};
const OTHER = {
  namespace: 'shop',
  pod: 'web-1',
  podUID: '22222222-2222-4222-8222-222222222222',
  serviceAccount: 'web',
};
const ACTION: HeldAction = {
  verb: 'patch',
  resource: 'deployments',
  subresource: 'scale',
  namespace: 'shop',
  name: 'web',
};

function request(
  over: Partial<ApprovalRecord> & { requester?: ApprovalRecord['requester'] } = {},
): ApprovalRecord {
  const action = over.action ?? ACTION;
  return {
    id: randomUUID(),
    state: 'pending',
    requester: POD,
    protocol: 'kubernetes',
    auditId: randomUUID(),
    summary: 'scale deployments/web -n shop',
    action,
    fingerprint: approvalFingerprint('kubernetes', action),
    rule: 'scale-needs-review',
    message: 'scaling production needs a human',
    approvals: 1,
    approvers: [],
    grantMs: 0,
    createdAt: new Date(T0).toISOString(),
    expiresAt: new Date(T0 + 10 * MIN).toISOString(),
    decisions: [],
    ...over,
  };
}

const LIMITS = { perPod: 32, perNamespace: 256 };

const decision = (user: string, d: 'approve' | 'deny', at: number, reason?: string): ApproverDecision => ({
  user,
  decision: d,
  at: new Date(at).toISOString(),
  ...(reason ? { reason } : {}),
});

export function approvalStoreConformance(
  name: string,
  makeHarness: () => Promise<ApprovalStoreHarness>,
): void {
  describe(`approval store conformance: ${name}`, () => {
    async function withStore(fn: (s: AuditStore, h: ApprovalStoreHarness) => Promise<void>): Promise<void> {
      const h = await makeHarness();
      const s = await h.open();
      try {
        await fn(s, h);
      } finally {
        await s.close();
        await h.destroy();
      }
    }

    it('stores a request as given and lists it by state and namespace, newest first', () =>
      withStore(async (s) => {
        const a = request({ approvers: ['alice', 'group:sre'], grantMs: 5 * MIN });
        const b = request({ requester: OTHER, createdAt: new Date(T0 + MIN).toISOString() });
        assert.deepEqual(await s.approvals.create(a, LIMITS), { kind: 'created' });
        assert.deepEqual(await s.approvals.create(b, LIMITS), { kind: 'created' });
        assert.deepEqual(await s.approvals.get(a.id), a);
        assert.equal(await s.approvals.get(randomUUID()), undefined);
        assert.deepEqual(
          (await s.approvals.list({ limit: 10 })).map((x) => x.id),
          [b.id, a.id],
        );
        assert.deepEqual(
          (await s.approvals.list({ namespaces: ['agents'], limit: 10 })).map((x) => x.id),
          [a.id],
        );
        assert.deepEqual(await s.approvals.list({ namespaces: [], limit: 10 }), []);
        assert.deepEqual(await s.approvals.list({ states: ['approved'], limit: 10 }), []);
        assert.deepEqual(await s.approvals.namespaces(['pending']), ['agents', 'shop']);
        assert.deepEqual(await s.approvals.namespaces(['denied']), []);
      }));

    it('refuses a request beyond the limit of pending requests per pod', () =>
      withStore(async (s) => {
        for (let i = 0; i < 2; i++)
          assert.equal(
            (await s.approvals.create(request(), { perPod: 2, perNamespace: 256 })).kind,
            'created',
          );
        assert.deepEqual(await s.approvals.create(request(), { perPod: 2, perNamespace: 256 }), {
          kind: 'limit',
          scope: 'pod',
          pending: 2,
        });
        assert.equal(
          (await s.approvals.create(request({ requester: OTHER }), { perPod: 2, perNamespace: 256 })).kind,
          'created',
        );
        const [first] = await s.approvals.list({ namespaces: ['agents'], limit: 1 });
        await s.approvals.finish((first as ApprovalRecord).id, 'withdrawn', T0 + MIN);
        assert.equal((await s.approvals.create(request(), { perPod: 2, perNamespace: 256 })).kind, 'created');
      }));

    it('refuses a request beyond the limit per namespace, whichever of its pods asks', () =>
      withStore(async (s) => {
        const limits = { perPod: 10, perNamespace: 3 };
        const pod = (i: number) => ({ ...POD, pod: `agent-${i}`, podUID: randomUUID() });
        for (let i = 0; i < 3; i++)
          assert.equal((await s.approvals.create(request({ requester: pod(i) }), limits)).kind, 'created');
        assert.deepEqual(await s.approvals.create(request({ requester: pod(3) }), limits), {
          kind: 'limit',
          scope: 'namespace',
          pending: 3,
        });
        assert.equal((await s.approvals.create(request({ requester: OTHER }), limits)).kind, 'created');
      }));

    it('lists pending requests soonest expiry first and counts all that match', () =>
      withStore(async (s) => {
        const at = (createdMin: number, expiresMin: number) =>
          request({
            createdAt: new Date(T0 + createdMin * MIN).toISOString(),
            expiresAt: new Date(T0 + expiresMin * MIN).toISOString(),
          });
        const late = at(0, 60);
        const soon = at(1, 5);
        const mid = at(2, 20);
        for (const x of [late, soon, mid]) await s.approvals.create(x, LIMITS);
        assert.deepEqual(
          (await s.approvals.list({ states: ['pending'], limit: 2 })).map((x) => x.id),
          [soon.id, mid.id],
        );
        assert.deepEqual(
          (await s.approvals.list({ limit: 10 })).map((x) => x.id),
          [mid.id, soon.id, late.id],
        );
        assert.equal(await s.approvals.count({ states: ['pending'] }), 3);
        assert.equal(await s.approvals.count({ states: ['pending'], namespaces: ['shop'] }), 0);
        assert.equal(await s.approvals.count({ namespaces: [] }), 0);
        await s.approvals.finish(soon.id, 'withdrawn', T0 + 3 * MIN);
        assert.equal(await s.approvals.count({ states: ['pending'], namespaces: ['agents'] }), 2);
        assert.equal(await s.approvals.count({}), 3);
      }));

    // Fails if orphans ignore the lease (all withdrawn) or are never found: tried.
    it('withdraws the pending requests of a replica whose lease ran out, and only those', () =>
      withStore(async (s) => {
        await s.approvals.heartbeat('replica-a', T0);
        await s.approvals.heartbeat('replica-b', T0);
        const ofA = request();
        const ofB = request({ requester: OTHER });
        const ownerless = request();
        const decidedOfA = request();
        await s.approvals.create(ofA, LIMITS, 'replica-a');
        await s.approvals.create(ofB, LIMITS, 'replica-b');
        await s.approvals.create(ownerless, LIMITS);
        await s.approvals.create(decidedOfA, LIMITS, 'replica-a');
        await s.approvals.decide(decidedOfA.id, decision('alice', 'deny', T0 + MIN), T0 + MIN, randomUUID());
        // b renews its lease; a does not (it crashed).
        await s.approvals.heartbeat('replica-b', T0 + 2 * MIN);
        assert.deepEqual(
          await s.approvals.withdrawOrphans(T0 - MIN, T0 + 2 * MIN, 100),
          [],
          'both leases live',
        );
        const gone = await s.approvals.withdrawOrphans(T0 + MIN, T0 + 2 * MIN, 100);
        assert.deepEqual(
          gone.map((a) => [a.id, a.state]),
          [[ofA.id, 'withdrawn']],
        );
        assert.equal((await s.approvals.get(ofB.id))?.state, 'pending');
        assert.equal((await s.approvals.get(ownerless.id))?.state, 'pending');
        assert.equal((await s.approvals.get(decidedOfA.id))?.state, 'denied');
        // A replica never seen at all (its row forgotten) counts as gone too.
        const ofC = request({ requester: OTHER });
        await s.approvals.create(ofC, LIMITS, 'replica-c');
        assert.deepEqual(
          (await s.approvals.withdrawOrphans(T0 + MIN, T0 + 3 * MIN, 100)).map((a) => a.id),
          [ofC.id],
        );
      }));

    it('needs N distinct approvers, counts the same approver once, and opens a grant', () =>
      withStore(async (s) => {
        const a = request({ approvals: 2, grantMs: 30 * MIN });
        await s.approvals.create(a, LIMITS);
        const grantId = randomUUID();
        const one = await s.approvals.decide(
          a.id,
          decision('alice', 'approve', T0 + MIN, 'ok'),
          T0 + MIN,
          grantId,
        );
        assert.equal(one.kind, 'recorded');
        assert.equal(one.kind === 'recorded' && one.approval.state, 'pending');
        const again = await s.approvals.decide(
          a.id,
          decision('alice', 'approve', T0 + 2 * MIN),
          T0 + 2 * MIN,
          grantId,
        );
        assert.equal(again.kind, 'refused');
        assert.equal(again.kind === 'refused' && again.code, 'conflict');
        assert.match(again.kind === 'refused' ? again.message : '', /counts once/);
        const two = await s.approvals.decide(
          a.id,
          decision('bob', 'approve', T0 + 3 * MIN),
          T0 + 3 * MIN,
          grantId,
        );
        assert.equal(two.kind, 'recorded');
        const stored = await s.approvals.get(a.id);
        assert.equal(stored?.state, 'approved');
        assert.equal(stored?.decidedAt, new Date(T0 + 3 * MIN).toISOString());
        assert.equal(stored?.grantId, grantId);
        assert.deepEqual(stored?.decisions, [
          decision('alice', 'approve', T0 + MIN, 'ok'),
          decision('bob', 'approve', T0 + 3 * MIN),
        ]);
        const g = await s.approvals.getGrant(grantId);
        assert.equal(g?.until, new Date(T0 + 33 * MIN).toISOString());
        assert.equal(g?.approvalId, a.id);
        assert.deepEqual(g?.requester, POD);
        // Same pod, rule and fingerprint within the window: covered. Anything else: not.
        assert.equal(
          (await s.approvals.findGrant(POD.podUID, a.rule, a.fingerprint, T0 + 10 * MIN))?.id,
          grantId,
        );
        assert.equal(
          await s.approvals.findGrant(OTHER.podUID, a.rule, a.fingerprint, T0 + 10 * MIN),
          undefined,
        );
        assert.equal(
          await s.approvals.findGrant(POD.podUID, 'other-rule', a.fingerprint, T0 + 10 * MIN),
          undefined,
        );
        assert.equal(
          await s.approvals.findGrant(POD.podUID, a.rule, 'f'.repeat(64), T0 + 10 * MIN),
          undefined,
        );
        assert.equal(
          await s.approvals.findGrant(POD.podUID, a.rule, a.fingerprint, T0 + 33 * MIN),
          undefined,
        );
        assert.equal((await s.approvals.listGrants({ activeAt: T0 + 10 * MIN, limit: 10 })).length, 1);
        assert.equal((await s.approvals.listGrants({ namespaces: ['shop'], limit: 10 })).length, 0);
        // Revoked: covers nothing more, listed as revoked, and cannot be revoked twice.
        const r = await s.approvals.revokeGrant(grantId, 'carol', T0 + 11 * MIN);
        assert.equal(r.kind, 'revoked');
        assert.equal(
          await s.approvals.findGrant(POD.podUID, a.rule, a.fingerprint, T0 + 12 * MIN),
          undefined,
        );
        assert.equal((await s.approvals.listGrants({ activeAt: T0 + 12 * MIN, limit: 10 })).length, 0);
        const [listed] = await s.approvals.listGrants({ limit: 10 });
        assert.equal(listed?.revokedBy, 'carol');
        assert.equal(listed?.revokedAt, new Date(T0 + 11 * MIN).toISOString());
        const twice = await s.approvals.revokeGrant(grantId, 'carol', T0 + 12 * MIN);
        assert.equal(twice.kind === 'refused' && twice.code, 'conflict');
        const none = await s.approvals.revokeGrant(randomUUID(), 'carol', T0 + 12 * MIN);
        assert.equal(none.kind === 'refused' && none.code, 'not_found');
        await s.approvals.prune(T0 + 11 * MIN);
        assert.equal((await s.approvals.listGrants({ limit: 10 })).length, 1, 'revoked at the cutoff: kept');
        await s.approvals.prune(T0 + 12 * MIN);
        assert.deepEqual(await s.approvals.listGrants({ limit: 10 }), []);
      }));

    it('ends a request on one deny, and refuses decisions on a request that has ended', () =>
      withStore(async (s) => {
        const a = request({ approvals: 3 });
        await s.approvals.create(a, LIMITS);
        await s.approvals.decide(a.id, decision('alice', 'approve', T0 + MIN), T0 + MIN, randomUUID());
        const d = await s.approvals.decide(
          a.id,
          decision('bob', 'deny', T0 + 2 * MIN, 'not now'),
          T0 + 2 * MIN,
          randomUUID(),
        );
        assert.equal(d.kind === 'recorded' && d.approval.state, 'denied');
        assert.equal((await s.approvals.get(a.id))?.state, 'denied');
        assert.equal((await s.approvals.get(a.id))?.grantId, undefined);
        const late = await s.approvals.decide(
          a.id,
          decision('carol', 'approve', T0 + 3 * MIN),
          T0 + 3 * MIN,
          randomUUID(),
        );
        assert.equal(late.kind === 'refused' && late.code, 'conflict');
        const missing = await s.approvals.decide(
          randomUUID(),
          decision('carol', 'approve', T0),
          T0,
          randomUUID(),
        );
        assert.equal(missing.kind === 'refused' && missing.code, 'not_found');
        assert.equal(await s.approvals.finish(a.id, 'withdrawn', T0 + 4 * MIN), undefined);
        // An approval without a grant window opens no grant.
        const b = request();
        await s.approvals.create(b, LIMITS);
        await s.approvals.decide(b.id, decision('alice', 'approve', T0 + MIN), T0 + MIN, randomUUID());
        assert.equal((await s.approvals.get(b.id))?.state, 'approved');
        assert.deepEqual(await s.approvals.listGrants({ limit: 10 }), []);
      }));

    it('withdraws and expires only pending requests, and refuses decisions after the time is over', () =>
      withStore(async (s) => {
        const a = request();
        const b = request({ expiresAt: new Date(T0 + 2 * MIN).toISOString() });
        const c = request({ expiresAt: new Date(T0 + 20 * MIN).toISOString() });
        for (const x of [a, b, c]) await s.approvals.create(x, LIMITS);
        const w = await s.approvals.finish(a.id, 'withdrawn', T0 + MIN);
        assert.equal(w?.state, 'withdrawn');
        assert.equal((await s.approvals.get(a.id))?.decidedAt, new Date(T0 + MIN).toISOString());
        const late = await s.approvals.decide(
          b.id,
          decision('alice', 'approve', T0 + 3 * MIN),
          T0 + 3 * MIN,
          randomUUID(),
        );
        assert.match(late.kind === 'refused' ? late.message : '', /expired/);
        const due = await s.approvals.expireDue(T0 + 3 * MIN, 100);
        assert.deepEqual(
          due.map((x) => [x.id, x.state]),
          [[b.id, 'expired']],
        );
        assert.equal((await s.approvals.get(b.id))?.state, 'expired');
        assert.equal((await s.approvals.get(c.id))?.state, 'pending');
        assert.deepEqual(await s.approvals.expireDue(T0 + 3 * MIN, 100), []);
        // Retention: what ended before the cutoff goes, a pending request stays.
        await s.approvals.prune(T0 + 2 * MIN);
        assert.equal(await s.approvals.get(a.id), undefined);
        assert.equal((await s.approvals.get(b.id))?.state, 'expired');
        await s.approvals.prune(T0 + 4 * MIN);
        assert.equal(await s.approvals.get(b.id), undefined);
        assert.equal((await s.approvals.get(c.id))?.state, 'pending');
      }));

    it('announces every change to listeners on every handle of the database', () =>
      withStore(async (s, h) => {
        const peer = await h.peer(s);
        try {
          const seen: (string | undefined)[] = [];
          let wake: () => void = () => {};
          const stop = await peer.approvals.onChange((id) => {
            seen.push(id);
            wake();
          });
          const waitFor = (n: number) =>
            new Promise<void>((resolve) => {
              wake = () => {
                if (seen.length >= n) resolve();
              };
              wake();
            });
          const a = request();
          await s.approvals.create(a, LIMITS);
          await waitFor(1);
          await s.approvals.decide(a.id, decision('alice', 'deny', T0 + MIN), T0 + MIN, randomUUID());
          await waitFor(2);
          assert.deepEqual(seen, [a.id, a.id]);
          stop();
          const b = request();
          await s.approvals.create(b, LIMITS);
          await s.approvals.finish(b.id, 'withdrawn', T0 + MIN);
          // A listener of the writing handle sees both; the stopped one nothing more.
          assert.deepEqual(seen, [a.id, a.id]);
        } finally {
          if (peer !== s) await peer.close();
        }
      }));
  });
}
