import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  APPROVAL_SUBPROTOCOL,
  type ApprovalRequestMessage,
  type ApprovalServerMessage,
  approvalFingerprint,
  createRegistry,
  type HeldAction,
  parseApprovalServerMessage,
  type Registry,
} from '@chaperone/shared';
import WebSocket from 'ws';
import { JwksVerifier } from '../auth/jwks-verifier.ts';
import { SqliteStore } from '../store/sqlite-store.ts';
import { memoryLogger, TEST_ISSUER, TestIssuer } from '../testing/test-harness.ts';
import { createApprovalMetrics } from './approval-metrics.ts';
import { ApprovalService } from './approval-service.ts';
import { ApprovalSocket, CLOSE_PENDING_LIMIT } from './approval-socket.ts';

const POD = {
  namespace: 'agents',
  pod: 'agent-0',
  podUID: '0d6c5f4e-7f7e-4a43-9a43-3c9f3f0e0a01',
  serviceAccount: 'agent',
};
const ACTION: HeldAction = { verb: 'delete', resource: 'secrets', namespace: 'agents', name: 'db' };

function request(over: Partial<ApprovalRequestMessage> = {}): ApprovalRequestMessage {
  const action = over.action ?? ACTION;
  return {
    type: 'request',
    auditId: randomUUID(),
    protocol: 'kubernetes',
    summary: 'delete secrets/db -n agents',
    action,
    fingerprint: approvalFingerprint('kubernetes', action),
    rule: 'secrets-review',
    message: 'deleting a secret needs a human',
    approvals: 1,
    approvers: [],
    timeoutMs: 60_000,
    grantMs: 0,
    ...over,
  };
}

interface Client {
  next(): Promise<ApprovalServerMessage>;
  readonly closed: Promise<{ code: number; reason: string }>;
  close(): void;
}

describe('the approvals WebSocket', () => {
  let dir: string;
  let store: SqliteStore;
  let service: ApprovalService;
  let socket: ApprovalSocket;
  let server: Server;
  let url: string;
  let issuer: TestIssuer;
  let registry: Registry;
  const logs: string[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'chaperone-approval-socket-'));
    store = new SqliteStore({ dataDir: dir });
    issuer = await TestIssuer.create();
    const logger = memoryLogger(logs);
    registry = createRegistry({ component: 'collector', defaultMetrics: false });
    service = new ApprovalService({
      store: store.approvals,
      metrics: createApprovalMetrics(registry, store.approvals),
      logger,
      maxPendingPerPod: 2,
    });
    await service.start();
    socket = new ApprovalSocket({
      service,
      verifier: new JwksVerifier({
        fetchJwks: async () => ({ keys: [issuer.jwk] }),
        issuer: TEST_ISSUER,
        audience: 'chaperone-collector',
        logger,
      }),
      logger,
    });
    server = createServer();
    server.on('upgrade', (req, s, head) => socket.handleUpgrade(req, s, head));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}/v1/approvals`;
  });

  after(async () => {
    await socket.close();
    service.stop();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function connect(req: ApprovalRequestMessage | string, token?: string): Promise<Client> {
    const ws = new WebSocket(url, [APPROVAL_SUBPROTOCOL], {
      headers: { authorization: `Bearer ${token ?? (await issuer.token(POD))}` },
    });
    const queue: ApprovalServerMessage[] = [];
    const waiters: ((m: ApprovalServerMessage) => void)[] = [];
    ws.on('message', (d) => {
      const m = parseApprovalServerMessage(String(d));
      const w = waiters.shift();
      if (w) w(m);
      else queue.push(m);
    });
    const closed = new Promise<{ code: number; reason: string }>((r) =>
      ws.on('close', (code, reason) => r({ code, reason: String(reason) })),
    );
    await new Promise<void>((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    ws.send(typeof req === 'string' ? req : JSON.stringify(req));
    return {
      next: () => {
        const m = queue.shift();
        if (m) return Promise.resolve(m);
        return Promise.race([
          new Promise<ApprovalServerMessage>((r) => waiters.push(r)),
          closed.then((c) => {
            throw new Error(`closed ${c.code} ${c.reason}`);
          }),
        ]);
      },
      closed,
      close: () => ws.close(),
    };
  }

  const approve = (id: string, user: string) =>
    store.approvals.decide(
      id,
      { user, decision: 'approve', at: new Date().toISOString() },
      Date.now(),
      randomUUID(),
    );

  it('answers pending, then the decision taken elsewhere, with the requester from the token', async () => {
    const c = await connect(request());
    const pending = await c.next();
    assert.equal(pending.type, 'pending');
    const stored = await store.approvals.get(pending.approvalId);
    assert.deepEqual(stored?.requester, POD);
    assert.equal(stored?.state, 'pending');
    await approve(pending.approvalId, 'alice');
    const decided = await c.next();
    assert.equal(decided.type === 'decided' && decided.state, 'approved');
    assert.deepEqual(decided.type === 'decided' && decided.decisions.map((d) => d.user), ['alice']);
    assert.equal((await c.closed).code, 1000);
    const text = await registry.metrics();
    assert.match(
      text,
      /chaperone_approvals_requested_total\{namespace="agents",rule="secrets-review",protocol="kubernetes"[^}]*\} 1\n/,
    );
  });

  it('withdraws a request whose connection closes before a decision', async () => {
    const c = await connect(request());
    const { approvalId } = await c.next();
    c.close();
    await c.closed;
    for (let i = 0; i < 100 && (await store.approvals.get(approvalId))?.state === 'pending'; i++)
      await new Promise((r) => setTimeout(r, 20));
    assert.equal((await store.approvals.get(approvalId))?.state, 'withdrawn');
    assert.equal((await approve(approvalId, 'alice')).kind, 'refused');
  });

  it('lets a request a grant covers through at once, and only that one', async () => {
    const action: HeldAction = { ...ACTION, name: 'granted' };
    const first = await connect(request({ action, grantMs: 60_000 }));
    const { approvalId } = await first.next();
    await approve(approvalId, 'alice');
    const decided = await first.next();
    assert.ok(decided.type === 'decided' && decided.grantId);
    const again = await connect(request({ action, grantMs: 60_000 }));
    const byGrant = await again.next();
    assert.equal(byGrant.type, 'decided');
    assert.equal(byGrant.type === 'decided' && byGrant.grantId, decided.grantId);
    assert.equal(byGrant.type === 'decided' && byGrant.approvalId, approvalId);
    const otherRule = await connect(request({ action, rule: 'other' }));
    assert.equal((await otherRule.next()).type, 'pending');
    otherRule.close();
  });

  it('expires a request nobody decides in time', async () => {
    const c = await connect(request({ timeoutMs: 200 }));
    const { approvalId } = await c.next();
    const decided = await c.next();
    assert.equal(decided.type === 'decided' && decided.state, 'expired');
    assert.equal((await store.approvals.get(approvalId))?.state, 'expired');
    assert.match(
      await registry.metrics(),
      /chaperone_approvals_decided_total\{[^}]*outcome="expired"[^}]*\} 1\n/,
    );
  });

  it('refuses a pod more pending requests than its limit, naming the limit', async () => {
    const held = [await connect(request()), await connect(request())];
    for (const h of held) assert.equal((await h.next()).type, 'pending');
    assert.match(await registry.metrics(), /chaperone_approvals_pending\{namespace="agents"[^}]*\} 2\n/);
    const third = await connect(request());
    const closed = await third.closed;
    assert.equal(closed.code, CLOSE_PENDING_LIMIT);
    assert.match(closed.reason, /2 approval requests waiting/);
    for (const h of held) h.close();
  });

  it('refuses malformed requests and mismatched fingerprints with the field', async () => {
    const bad = await connect(JSON.stringify({ ...request(), approvals: 0 }));
    const c1 = await bad.closed;
    assert.equal(c1.code, 4400);
    assert.match(c1.reason, /approvals/);
    const forged = await connect(request({ fingerprint: 'b'.repeat(64) }));
    const c2 = await forged.closed;
    assert.equal(c2.code, 4400);
    assert.match(c2.reason, /fingerprint/);
  });

  it('refuses an upgrade without the subprotocol or without a valid pod token', async () => {
    const status = (protocols: string[], token?: string) =>
      new Promise<number>((resolve) => {
        const ws = new WebSocket(
          url,
          protocols,
          token ? { headers: { authorization: `Bearer ${token}` } } : {},
        );
        ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        ws.on('open', () => resolve(101));
        ws.on('error', () => {});
      });
    assert.equal(await status(['chaperone.ingest.v2'], await issuer.token(POD)), 400);
    assert.equal(await status([APPROVAL_SUBPROTOCOL]), 401);
    assert.equal(await status([APPROVAL_SUBPROTOCOL], await issuer.token(POD, { audience: 'other' })), 401);
    assert.equal(
      await status(
        [APPROVAL_SUBPROTOCOL],
        await issuer.token({ namespace: 'agents', serviceAccount: 'agent' }),
      ),
      403,
    );
  });
});
