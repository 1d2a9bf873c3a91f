// The review client against a contract-speaking test server (test-approval-server.ts):
// every way a hold can end, and that only a `decided approved` lets an action through.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { approvalFingerprint, createLogger, createRegistry, type ReviewOptions } from '@chaperone/shared';
import { ReviewClient, type ReviewRequest } from './review-client.ts';
import { reviewMetrics } from './review-metrics.ts';
import { TEST_TOKEN, TestApprovalServer } from './test-approval-server.ts';

const ID = '0b9e5a1c-3f0e-4d2a-9c1b-7e6f5a4b3c2d';
const OTHER = '1b9e5a1c-3f0e-4d2a-9c1b-7e6f5a4b3c2d';
const GRANT = '2b9e5a1c-3f0e-4d2a-9c1b-7e6f5a4b3c2d';
const log = createLogger({ name: 'test', level: 'silent' });

function held(review: Partial<ReviewOptions> = {}): ReviewRequest {
  return {
    protocol: 'kubernetes',
    action: {
      verb: 'patch',
      apiGroup: 'apps',
      resource: 'deployments',
      subresource: 'scale',
      namespace: 'shop',
      name: 'web',
    },
    summary: 'patch deployments.apps/scale web -n shop',
    auditId: 'a1b2c3',
    rule: 'review-scale',
    message: 'scaling needs an approver',
    review: { timeoutMs: 60_000, approvals: 1, approvers: [], grantMs: 0, ...review },
    noun: 'request',
  };
}

const at = '2026-12-07T04:00:00Z';

describe('ReviewClient', () => {
  let server: TestApprovalServer;
  let registry: ReturnType<typeof createRegistry>;
  let metrics: ReturnType<typeof reviewMetrics>;
  let client: ReviewClient;
  before(async () => {
    server = await TestApprovalServer.start();
  });
  after(() => server.close());
  beforeEach(() => {
    server.onRequest = () => {};
    server.refuseWith = undefined;
    registry = createRegistry({ component: 'sidecar', defaultMetrics: false });
    metrics = reviewMetrics(registry);
    client = new ReviewClient({
      collector: { url: server.url, tokenFile: server.tokenFile },
      metrics,
      log,
      connectTimeoutMs: 300,
    });
  });

  async function counted(outcome: string): Promise<number> {
    const m = await registry.getSingleMetricAsString('chaperone_sidecar_reviews_total');
    const line = m.split('\n').find((l) => l.includes(`outcome="${outcome}"`));
    return line ? Number(line.split(' ').at(-1)) : 0;
  }

  it('sends the request as the contract says and lets the action through on approval', async () => {
    server.onRequest = (c) => {
      c.send({ type: 'pending', approvalId: ID, expiresAt: at });
      c.send({
        type: 'decided',
        approvalId: ID,
        state: 'approved',
        decisions: [{ user: 'alice', decision: 'approve', at, reason: 'ok for the sale' }],
      });
    };
    const r = held({ approvals: 1, approvers: ['alice', 'group:sre'], grantMs: 3_600_000 });
    const o = await client.review(r);
    assert.equal(o.state, 'approved');
    assert.equal(o.approvalId, ID);
    assert.equal(o.granted, false);
    assert.deepEqual(o.record, { state: 'approved', id: ID, by: 'alice', at, reason: 'ok for the sale' });
    assert.match(o.message, /approved by alice \("ok for the sale"\)/);
    const c = server.connections.at(-1);
    assert.equal(c?.authorization, `Bearer ${TEST_TOKEN}`);
    assert.equal(c?.ws.protocol, 'chaperone.approvals.v1');
    assert.deepEqual(c?.request, {
      type: 'request',
      auditId: 'a1b2c3',
      protocol: 'kubernetes',
      summary: r.summary,
      action: r.action,
      fingerprint: approvalFingerprint('kubernetes', r.action),
      rule: 'review-scale',
      message: 'scaling needs an approver',
      approvals: 1,
      approvers: ['alice', 'group:sre'],
      timeoutMs: 60_000,
      grantMs: 3_600_000,
    });
    assert.equal(await counted('approved'), 1);
    assert.match(await registry.getSingleMetricAsString('chaperone_sidecar_reviews_held'), / 0$/m);
  });

  it('passes an action an active grant covers, answered at once without a pending', async () => {
    server.onRequest = (c) =>
      c.send({
        type: 'decided',
        approvalId: ID,
        state: 'approved',
        decisions: [],
        grantId: GRANT,
        grantUntil: at,
      });
    const o = await client.review(held());
    assert.equal(o.state, 'approved');
    assert.equal(o.granted, true);
    assert.equal(o.record.grantId, GRANT);
    assert.equal(await counted('granted'), 1);
  });

  it('holds the connection open while pending (the held gauge counts it)', async () => {
    let release: () => void = () => {};
    server.onRequest = (c) => {
      c.send({ type: 'pending', approvalId: ID, expiresAt: at });
      release = () =>
        c.send({
          type: 'decided',
          approvalId: ID,
          state: 'approved',
          decisions: [{ user: 'a', decision: 'approve', at }],
        });
    };
    const before = server.connections.length;
    const p = client.review(held());
    const held1 = async () =>
      /reviews_held\{[^}]*\} 1$/m.test(
        await registry.getSingleMetricAsString('chaperone_sidecar_reviews_held'),
      );
    while (server.connections.length === before || !(await held1()))
      await new Promise((r) => setTimeout(r, 10));
    release();
    assert.equal((await p).state, 'approved');
  });

  // Every other ending is a denial: none of these may come back approved.
  const denials: [
    string,
    (c: import('./test-approval-server.ts').HeldConnection) => void,
    Partial<ReviewOptions>,
    string,
    RegExp,
  ][] = [
    [
      'an approver denies it (who and why)',
      (c) => {
        c.send({ type: 'pending', approvalId: ID, expiresAt: at });
        c.send({
          type: 'decided',
          approvalId: ID,
          state: 'denied',
          decisions: [{ user: 'bob', decision: 'deny', at, reason: 'not during the freeze' }],
        });
      },
      {},
      'denied',
      /rule "review-scale" requires a human's approval \(scaling needs an approver\): denied by bob \("not during the freeze"\) \(approval 0b9e5a1c-[^)]+\); the request is denied/,
    ],
    [
      'the collector says it expired',
      (c) => {
        c.send({ type: 'pending', approvalId: ID, expiresAt: at });
        c.send({ type: 'decided', approvalId: ID, state: 'expired', decisions: [] });
      },
      {},
      'expired',
      /nobody decided within 1m/,
    ],
    [
      "the rule's timeout passes with no decision (the sidecar's own timer)",
      (c) => c.send({ type: 'pending', approvalId: ID, expiresAt: at }),
      { timeoutMs: 200 },
      'expired',
      /nobody decided within 200ms \(approval 0b9e5a1c-.*\); the request is denied/,
    ],
    [
      'no pending arrives in time',
      () => {},
      {},
      'unavailable',
      /the collector did not acknowledge the approval request within 300ms/,
    ],
    [
      'the connection closes before a decision',
      (c) => {
        c.send({ type: 'pending', approvalId: ID, expiresAt: at });
        c.ws.close(1011, 'store down');
      },
      {},
      'unavailable',
      /the connection to the collector closed before a decision \(code 1011: store down\)/,
    ],
    [
      'the answer is not JSON',
      (c) => c.send('{approved'),
      {},
      'unavailable',
      /the collector's answer could not be read \(approval answer is not JSON/,
    ],
    [
      'the answer has an unknown state',
      (c) => c.send(JSON.stringify({ type: 'decided', approvalId: ID, state: 'ok', decisions: [] })),
      {},
      'unavailable',
      /could not be read \(\/state/,
    ],
    [
      'a binary answer',
      (c) =>
        c.ws.send(
          Buffer.from(JSON.stringify({ type: 'decided', approvalId: ID, state: 'approved', decisions: [] })),
        ),
      {},
      'unavailable',
      /could not be read \(a binary message\)/,
    ],
    [
      'the decision is on another approval',
      (c) => {
        c.send({ type: 'pending', approvalId: ID, expiresAt: at });
        c.send({
          type: 'decided',
          approvalId: OTHER,
          state: 'approved',
          decisions: [{ user: 'a', decision: 'approve', at }],
        });
      },
      {},
      'unavailable',
      /a decision on approval 1b9e5a1c-.*, not on 0b9e5a1c-/,
    ],
    [
      'an approval by fewer distinct approvers than the rule needs',
      (c) => {
        c.send({ type: 'pending', approvalId: ID, expiresAt: at });
        c.send({
          type: 'decided',
          approvalId: ID,
          state: 'approved',
          decisions: [
            { user: 'alice', decision: 'approve', at },
            { user: 'alice', decision: 'approve', at },
          ],
        });
      },
      { approvals: 2 },
      'unavailable',
      /an approval by 1 distinct approver\(s\), and the rule needs 2/,
    ],
    [
      'a second pending',
      (c) => {
        c.send({ type: 'pending', approvalId: ID, expiresAt: at });
        c.send({ type: 'pending', approvalId: ID, expiresAt: at });
      },
      {},
      'unavailable',
      /a second pending/,
    ],
  ];
  for (const [name, script, review, state, message] of denials) {
    it(`denies when ${name}`, async () => {
      server.onRequest = script;
      const o = await client.review(held(review));
      assert.notEqual(o.state, 'approved');
      assert.equal(o.state, state);
      assert.match(o.message, message);
      assert.equal(o.record.state, state);
      assert.equal(await counted('approved'), 0);
      assert.equal(await counted(state), 1);
    });
  }

  it('closes its connection once the hold ends, so the collector withdraws the request', async () => {
    server.onRequest = (c) => c.send({ type: 'pending', approvalId: ID, expiresAt: at });
    const o = await client.review(held({ timeoutMs: 100 }));
    assert.equal(o.state, 'expired');
    assert.equal(await server.connections.at(-1)?.closed, 1000);
  });

  it('denies when the collector refuses the upgrade', async () => {
    server.refuseWith = { status: 401, message: 'the token has expired' };
    const o = await client.review(held());
    assert.equal(o.state, 'unavailable');
    assert.match(o.message, /the collector refused the approval request \(HTTP 401: the token has expired\)/);
  });

  it('denies when the collector cannot be reached', async () => {
    const gone = await TestApprovalServer.start();
    const url = gone.url;
    await gone.close();
    const c = new ReviewClient({ collector: { url, tokenFile: server.tokenFile }, metrics, log });
    const o = await c.review(held());
    assert.equal(o.state, 'unavailable');
    assert.match(
      o.message,
      /no decision could be obtained: the collector could not be reached \(.*ECONNREFUSED/,
    );
  });

  it('denies when the token cannot be read, without connecting', async () => {
    const before = server.connections.length;
    const c = new ReviewClient({
      collector: { url: server.url, tokenFile: '/nonexistent/token' },
      metrics,
      log,
    });
    const o = await c.review(held());
    assert.equal(o.state, 'unavailable');
    assert.match(o.message, /the collector token could not be read \(ENOENT/);
    assert.equal(server.connections.length, before);
  });

  it('denies with the existing words when no collector is configured', async () => {
    const c = new ReviewClient({ metrics, log });
    assert.equal(c.configured, false);
    const o = await c.review(held());
    assert.equal(o.state, 'unavailable');
    assert.equal(
      o.message,
      `rule "review-scale" requires a human's approval (scaling needs an approver), and no approval service is configured for this sidecar; the request is denied`,
    );
  });

  it('withdraws the request when the client goes away', async () => {
    const ac = new AbortController();
    server.onRequest = (c) => {
      c.send({ type: 'pending', approvalId: ID, expiresAt: at });
      setImmediate(() => ac.abort());
    };
    const o = await client.review(held(), ac.signal);
    assert.equal(o.state, 'unavailable');
    assert.match(
      o.message,
      /no decision could be obtained: the client went away; the approval request is withdrawn/,
    );
    assert.equal(await server.connections.at(-1)?.closed, 1000);
  });

  it('ends every hold as a denial when the sidecar shuts down, and denies later reviews at once', async () => {
    server.onRequest = (c) => {
      c.send({ type: 'pending', approvalId: ID, expiresAt: at });
      setImmediate(() => client.close());
    };
    const o = await client.review(held());
    assert.equal(o.state, 'unavailable');
    assert.match(o.message, /the sidecar is shutting down/);
    const later = await client.review(held());
    assert.equal(later.state, 'unavailable');
    assert.match(later.message, /the sidecar is shutting down/);
  });

  it('denies at once beyond the most actions held at once', async () => {
    const c = new ReviewClient({
      collector: { url: server.url, tokenFile: server.tokenFile },
      metrics,
      log,
      maxHeld: 1,
    });
    server.onRequest = (h) => h.send({ type: 'pending', approvalId: ID, expiresAt: at });
    const first = c.review(held());
    const second = await c.review(held());
    assert.equal(second.state, 'unavailable');
    assert.match(second.message, /1 actions of this pod are already held for approval/);
    c.close();
    assert.equal((await first).state, 'unavailable');
  });

  it('denies a held action that cannot be sent (the contract refuses it) without connecting', async () => {
    const before = server.connections.length;
    const o = await client.review({ ...held(), auditId: 'not an id!' });
    assert.equal(o.state, 'unavailable');
    assert.match(o.message, /the held action cannot be sent for approval \(\/auditId/);
    assert.equal(server.connections.length, before);
  });
});

describe('ReviewClient pings', () => {
  it('denies when the collector stops answering pings', async () => {
    const silent = await TestApprovalServer.start({ autoPong: false });
    try {
      silent.onRequest = (c) => c.send({ type: 'pending', approvalId: ID, expiresAt: at });
      const client = new ReviewClient({
        collector: { url: silent.url, tokenFile: silent.tokenFile },
        metrics: reviewMetrics(createRegistry({ component: 'sidecar', defaultMetrics: false })),
        log,
        pingIntervalMs: 50,
      });
      const o = await client.review(held());
      assert.equal(o.state, 'unavailable');
      assert.match(o.message, /the collector stopped answering pings/);
    } finally {
      await silent.close();
    }
  });

  it('keeps a hold alive while the collector answers pings', async () => {
    const s = await TestApprovalServer.start();
    try {
      s.onRequest = (c) => {
        c.send({ type: 'pending', approvalId: ID, expiresAt: at });
        // Decide after several ping rounds.
        setTimeout(
          () =>
            c.send({
              type: 'decided',
              approvalId: ID,
              state: 'approved',
              decisions: [{ user: 'a', decision: 'approve', at }],
            }),
          300,
        );
      };
      const client = new ReviewClient({
        collector: { url: s.url, tokenFile: s.tokenFile },
        metrics: reviewMetrics(createRegistry({ component: 'sidecar', defaultMetrics: false })),
        log,
        pingIntervalMs: 20,
      });
      assert.equal((await client.review(held())).state, 'approved');
    } finally {
      await s.close();
    }
  });
});
