// Just-in-time approval, the collector's side, against the real control
// plane: sidecars' requests over the approvals WebSocket (a small client
// written here plays the sidecar, with a bound token of a real pod),
// approvers with real tokens checked by TokenReview and authorised by
// SubjectAccessReview through an ordinary Role and RoleBinding; the approval
// store conformance suite and two collector replicas on one real PostgreSQL.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { COLLECTOR_SCHEMA, PostgresStore, type RunningCollector, startCollector } from '@chaperone/collector';
import { approvalStoreConformance } from '@chaperone/collector/testing';
import {
  APPROVAL_SUBPROTOCOL,
  APPROVALS_PATH,
  type ApprovalRequestMessage,
  type ApprovalServerMessage,
  type ApprovalView,
  approvalFingerprint,
  createLogger,
  createRegistry,
  type GrantView,
  type HeldAction,
  parseApprovalServerMessage,
  parseConfig,
} from '@chaperone/shared';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { WebSocket } from 'undici';
import { type AgentPod, boundToken, createAgentPod, tokenIssuer } from './collector-kube.ts';
import { CHAPERONE_BIN, childEnv } from './collector-process.ts';
import {
  createDatabase,
  createNamespace,
  kubeInfo,
  type TestDatabase,
  type TestNamespace,
} from './environment.ts';
import { kubectl } from './kubectl.ts';
import { waitFor } from './process.ts';

const QUERY_TOKEN = 'approvals-test-query-token-0123456789';

async function start(dir: string, extra: Record<string, string> = {}): Promise<RunningCollector> {
  const config = parseConfig(COLLECTOR_SCHEMA, {
    flags: {
      listenHost: '127.0.0.1',
      listenPort: '0',
      queryListenPort: '0',
      metricsHost: '127.0.0.1',
      metricsPort: '0',
      dataDir: mkdtempSync(join(dir, 'data-')),
      kubeconfig: kubeInfo().kubeconfigPath,
      tokenIssuer: tokenIssuer(),
      queryToken: QUERY_TOKEN,
      logLevel: 'warn',
      ...extra,
    },
  });
  return startCollector(config, {
    logger: createLogger({
      name: 'collector',
      level: 'warn',
      destination: new Writable({ write: (_c, _e, cb) => cb() }),
    }),
    registry: createRegistry({ component: 'collector', defaultMetrics: false }),
  });
}

function run(args: readonly string[], input?: string): string {
  const r = kubectl(kubeInfo().kubeconfigPath, args, input === undefined ? {} : { input });
  assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** A token of a service account for the API server's own audience (what `kubectl create token` gives a person). */
function userToken(namespace: string, sa: string, ...more: string[]): string {
  return run(['create', 'token', sa, '-n', namespace, '--duration', '1h', ...more]).trim();
}

/** What the API server's authorizer says now (a SubjectAccessReview, as the collector asks it). */
function canApprove(
  namespace: string,
  user: string,
  groups = ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, 'system:authenticated'],
): boolean {
  const review = {
    apiVersion: 'authorization.k8s.io/v1',
    kind: 'SubjectAccessReview',
    spec: {
      user,
      groups,
      resourceAttributes: { namespace, verb: 'approve', group: 'chaperone.dev', resource: 'approvals' },
    },
  };
  const out = JSON.parse(run(['create', '-f', '-', '-o', 'json'], JSON.stringify(review))) as {
    status?: { allowed?: boolean };
  };
  return out.status?.allowed === true;
}

/** RBAC answers from informers: wait until the API server's authorizer sees the change. */
async function untilRbac(namespace: string, user: string, allowed: boolean): Promise<void> {
  await waitFor(async () => canApprove(namespace, user) === allowed, {
    what: `RBAC to ${allowed ? 'allow' : 'refuse'} ${user} approving in ${namespace}`,
    timeoutMs: 30_000,
    intervalMs: 200,
  });
}

/** The Role an admin gives approvers: verb approve on approvals.chaperone.dev. */
const APPROVER_ROLE = {
  apiVersion: 'rbac.authorization.k8s.io/v1',
  kind: 'Role',
  metadata: { name: 'approver' },
  rules: [{ apiGroups: ['chaperone.dev'], resources: ['approvals'], verbs: ['approve'] }],
};

function createApproverRole(namespace: string): void {
  run(['create', '-f', '-'], JSON.stringify({ ...APPROVER_ROLE, metadata: { name: 'approver', namespace } }));
}

function bindApprover(namespace: string, binding: string, sa: { namespace: string; name: string }): void {
  run(
    ['create', '-f', '-'],
    JSON.stringify({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: binding, namespace },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'approver' },
      subjects: [{ kind: 'ServiceAccount', name: sa.name, namespace: sa.namespace }],
    }),
  );
}

const SCALE: HeldAction = {
  verb: 'patch',
  apiGroup: 'apps',
  resource: 'deployments',
  subresource: 'scale',
  name: 'web',
};

function request(over: Partial<ApprovalRequestMessage> = {}): ApprovalRequestMessage {
  const action = over.action ?? SCALE;
  return {
    type: 'request',
    auditId: randomUUID(),
    protocol: 'kubernetes',
    summary: 'scale deployments/web -n shop',
    action,
    fingerprint: approvalFingerprint('kubernetes', action),
    rule: 'scale-needs-review',
    message: 'scaling production needs a human',
    approvals: 1,
    approvers: [],
    timeoutMs: 120_000,
    grantMs: 0,
    ...over,
  };
}

/** The sidecar's end of one held action: connect, send the request, read answers in order. */
interface Held {
  next(): Promise<ApprovalServerMessage>;
  readonly closed: Promise<{ code: number; reason: string }>;
  close(): void;
}

function hold(ingestUrl: string, token: string, req: ApprovalRequestMessage | string): Promise<Held> {
  const ws = new WebSocket(`${ingestUrl.replace(/^http/, 'ws')}${APPROVALS_PATH}`, {
    protocols: [APPROVAL_SUBPROTOCOL],
    headers: { authorization: `Bearer ${token}` },
  });
  const queue: ApprovalServerMessage[] = [];
  const waiters: ((m: ApprovalServerMessage) => void)[] = [];
  ws.addEventListener('message', (e) => {
    const m = parseApprovalServerMessage(String(e.data));
    const w = waiters.shift();
    if (w) w(m);
    else queue.push(m);
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.addEventListener('close', (e) => resolve({ code: e.code, reason: e.reason })),
  );
  return new Promise((resolve, reject) => {
    ws.addEventListener('error', () => reject(new Error('the approvals WebSocket failed to open')));
    ws.addEventListener('open', () => {
      ws.send(typeof req === 'string' ? req : JSON.stringify(req));
      resolve({
        next: () => {
          const m = queue.shift();
          if (m) return Promise.resolve(m);
          return Promise.race([
            new Promise<ApprovalServerMessage>((r) => waiters.push(r)),
            closed.then(({ code, reason }) => {
              throw new Error(`closed (${code} ${reason}) before the next message`);
            }),
          ]);
        },
        closed,
        close: () => ws.close(),
      });
    });
  });
}

async function api<T>(
  base: string,
  token: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: T & { error?: { code: string; message: string } } }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return {
    status: res.status,
    body: (await res.json()) as T & { error?: { code: string; message: string } },
  };
}

const decide = (base: string, token: string, id: string, decision: 'approve' | 'deny', reason?: string) =>
  api<ApprovalView>(base, token, 'POST', `/v1/approvals/${id}/decision`, {
    decision,
    ...(reason ? { reason } : {}),
  });

describe('approvals: a held action, decided by approvers Kubernetes RBAC names', () => {
  let dir: string;
  let ns: TestNamespace;
  let collector: RunningCollector;
  let pod: AgentPod;
  let podToken: string;
  /** A Slack-compatible incoming webhook: what the collector POSTs to it. */
  let hook: Server;
  const notified: string[] = [];
  const tokens: Record<string, string> = {};
  const user = (sa: string) => `system:serviceaccount:${ns.name}:${sa}`;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'chaperone-approvals-'));
    ns = await createNamespace('approvals');
    for (const sa of ['agent', 'alice', 'bob', 'carol']) run(['create', 'serviceaccount', sa, '-n', ns.name]);
    pod = createAgentPod(ns.name, 'agent-0', 'agent');
    podToken = boundToken(pod);
    for (const sa of ['alice', 'bob', 'carol', 'agent']) tokens[sa] = userToken(ns.name, sa);
    // A token of the pod's own service account, bound to the pod (what the agent could ask for).
    tokens.podBound = userToken(
      ns.name,
      'agent',
      '--bound-object-kind',
      'Pod',
      '--bound-object-name',
      pod.pod,
    );
    createApproverRole(ns.name);
    for (const sa of ['alice', 'bob', 'agent'])
      bindApprover(ns.name, `approver-${sa}`, { namespace: ns.name, name: sa });
    for (const sa of ['alice', 'bob', 'agent']) await untilRbac(ns.name, user(sa), true);
    hook = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => {
        body += c;
      });
      req.on('end', () => {
        notified.push(body);
        res.end('ok');
      });
    });
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
    collector = await start(dir, {
      approvalWebhookUrl: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/services/T0/B0/secret`,
      approvalPageUrl: 'https://chaperone.example',
    });
  });

  after(async () => {
    await collector?.close();
    hook?.closeAllConnections();
    hook?.close();
    await ns?.delete();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('holds a request until an approver RBAC allows approves it; others are refused', async () => {
    const h = await hold(collector.url, podToken, request());
    const pending = await h.next();
    assert.equal(pending.type, 'pending');
    const id = pending.approvalId;
    // carol has no RoleBinding: she sees nothing and may not decide.
    const listed = await api<{ items: ApprovalView[] }>(
      collector.queryUrl,
      tokens.carol as string,
      'GET',
      '/v1/approvals',
    );
    assert.equal(listed.status, 200);
    assert.deepEqual(listed.body.items, []);
    const refused = await decide(collector.queryUrl, tokens.carol as string, id, 'approve');
    assert.equal(refused.status, 403);
    assert.match(
      refused.body.error?.message ?? '',
      /may not approve requests in namespace .*verb approve on resource approvals in API group chaperone\.dev/,
    );
    const shown = await api<ApprovalView>(
      collector.queryUrl,
      tokens.carol as string,
      'GET',
      `/v1/approvals/${id}`,
    );
    assert.equal(shown.status, 404);
    // No token, or a query token, is not an approver.
    assert.equal((await api(collector.queryUrl, 'not-a-token', 'GET', '/v1/approvals')).status, 401);
    assert.equal((await api(collector.queryUrl, QUERY_TOKEN, 'GET', '/v1/approvals')).status, 401);
    // alice may: she sees it, with the requester as the token proved it, and approves.
    const mine = await api<{ items: ApprovalView[] }>(
      collector.queryUrl,
      tokens.alice as string,
      'GET',
      '/v1/approvals',
    );
    const seen = mine.body.items.find((a) => a.id === id);
    assert.deepEqual(seen?.requester, {
      namespace: ns.name,
      pod: pod.pod,
      podUID: pod.uid,
      serviceAccount: 'agent',
    });
    assert.equal(seen?.summary, 'scale deployments/web -n shop');
    const ok = await decide(collector.queryUrl, tokens.alice as string, id, 'approve', 'planned maintenance');
    assert.equal(ok.status, 200);
    assert.equal(ok.body.state, 'approved');
    const decided = await h.next();
    assert.equal(decided.type, 'decided');
    assert.equal(decided.type === 'decided' && decided.state, 'approved');
    assert.deepEqual(
      decided.type === 'decided' && decided.decisions.map((d) => [d.user, d.decision, d.reason]),
      [[user('alice'), 'approve', 'planned maintenance']],
    );
    assert.equal((await h.closed).code, 1000);
    // The webhook was told, with a link to the request on the approval page.
    await waitFor(async () => notified.some((b) => b.includes(id)), {
      what: 'the webhook',
      timeoutMs: 10_000,
    });
    const text = (JSON.parse(notified.find((b) => b.includes(id)) as string) as { text: string }).text;
    assert.match(text, /^Approval needed: `scale deployments\/web -n shop`$/m);
    assert.ok(text.includes(`<https://chaperone.example/approvals/${id}|`));
    // Counted on the collector's metrics.
    const metrics = await (await fetch(collector.metricsUrl)).text();
    assert.match(
      metrics,
      /chaperone_approvals_decided_total\{[^}]*rule="scale-needs-review"[^}]*outcome="approved"[^}]*\} 1\n/,
    );
    assert.match(metrics, /chaperone_approval_decision_seconds_count\{[^}]*outcome="approved"[^}]*\} 1\n/);
    // Decided is final: 409.
    const late = await decide(collector.queryUrl, tokens.bob as string, id, 'deny');
    assert.equal(late.status, 409);
  });

  it('never lets the requesting pod approve its own request, even with approver rights', async () => {
    const h = await hold(collector.url, podToken, request());
    const { approvalId: id } = await h.next();
    for (const token of [tokens.agent, tokens.podBound] as string[]) {
      const r = await decide(collector.queryUrl, token, id, 'approve');
      assert.equal(r.status, 403);
      assert.match(r.body.error?.message ?? '', /can never approve its own requests/);
    }
    // The sidecar's own token (audience chaperone-collector) is not an approver's either.
    assert.equal((await decide(collector.queryUrl, podToken, id, 'approve')).status, 401);
    const d = await decide(collector.queryUrl, tokens.bob as string, id, 'deny', 'not during the freeze');
    assert.equal(d.status, 200);
    const decided = await h.next();
    assert.equal(decided.type === 'decided' && decided.state, 'denied');
    assert.equal(decided.type === 'decided' && decided.decisions[0]?.reason, 'not during the freeze');
  });

  it('needs two distinct approvers when the rule asks for two; the same approver counts once', async () => {
    const h = await hold(collector.url, podToken, request({ approvals: 2 }));
    const { approvalId: id } = await h.next();
    const first = await decide(collector.queryUrl, tokens.alice as string, id, 'approve');
    assert.equal(first.body.state, 'pending');
    const again = await decide(collector.queryUrl, tokens.alice as string, id, 'approve');
    assert.equal(again.status, 409);
    assert.match(again.body.error?.message ?? '', /counts once/);
    assert.equal(
      (await api<ApprovalView>(collector.queryUrl, tokens.bob as string, 'GET', `/v1/approvals/${id}`)).body
        .state,
      'pending',
    );
    const second = await decide(collector.queryUrl, tokens.bob as string, id, 'approve');
    assert.equal(second.body.state, 'approved');
    const decided = await h.next();
    assert.equal(decided.type === 'decided' && decided.state, 'approved');
    assert.deepEqual(decided.type === 'decided' && decided.decisions.map((d) => d.user), [
      user('alice'),
      user('bob'),
    ]);
  });

  it('admits only the approvers a request names', async () => {
    const h = await hold(collector.url, podToken, request({ approvers: [user('bob')] }));
    const { approvalId: id } = await h.next();
    const r = await decide(collector.queryUrl, tokens.alice as string, id, 'approve');
    assert.equal(r.status, 403);
    assert.match(r.body.error?.message ?? '', /not among this request's approvers/);
    assert.equal((await decide(collector.queryUrl, tokens.bob as string, id, 'approve')).status, 200);
    assert.equal(((await h.next()) as { state: string }).state, 'approved');
  });

  // Fails if decide() checks only the requester's namespace (alice would approve at once): tried.
  it('needs approve rights in the namespace the action touches too, when it is another one', async () => {
    const target = await createNamespace('approvals-target');
    try {
      const action: HeldAction = { ...SCALE, namespace: target.name };
      const h = await hold(
        collector.url,
        podToken,
        request({ action, summary: `scale web -n ${target.name}` }),
      );
      const { approvalId: id } = await h.next();
      const refused = await decide(collector.queryUrl, tokens.alice as string, id, 'approve');
      assert.equal(refused.status, 403);
      assert.match(
        refused.body.error?.message ?? '',
        new RegExp(
          `may not approve requests in namespace ${target.name} \\(the namespace the held action touches`,
        ),
      );
      createApproverRole(target.name);
      bindApprover(target.name, 'approver-alice', { namespace: ns.name, name: 'alice' });
      await untilRbac(target.name, user('alice'), true);
      const ok = await decide(collector.queryUrl, tokens.alice as string, id, 'approve');
      assert.equal(ok.status, 200);
      assert.equal(((await h.next()) as { state: string }).state, 'approved');
    } finally {
      await target.delete();
    }
  });

  it('a grant lets the same action through at once until it is revoked', async () => {
    const action: HeldAction = { ...SCALE, name: `web-${randomUUID().slice(0, 8)}` };
    const h = await hold(collector.url, podToken, request({ action, grantMs: 600_000 }));
    const { approvalId: id } = await h.next();
    await decide(collector.queryUrl, tokens.alice as string, id, 'approve');
    const decided = await h.next();
    assert.equal(decided.type, 'decided');
    const grantId = decided.type === 'decided' ? decided.grantId : undefined;
    assert.ok(grantId, 'the approval opened a grant');
    // The same action again: approved by the grant, without a pending.
    const again = await hold(collector.url, podToken, request({ action, grantMs: 600_000 }));
    const byGrant = await again.next();
    assert.equal(byGrant.type, 'decided');
    assert.equal(byGrant.type === 'decided' && byGrant.grantId, grantId);
    assert.equal(byGrant.type === 'decided' && byGrant.state, 'approved');
    // Another action is not covered.
    const other = await hold(collector.url, podToken, request({ action: { ...action, name: 'db' } }));
    assert.equal((await other.next()).type, 'pending');
    other.close();
    const grants = await api<{ items: GrantView[] }>(
      collector.queryUrl,
      tokens.bob as string,
      'GET',
      '/v1/grants',
    );
    assert.ok(grants.body.items.some((g) => g.id === grantId && g.approvalId === id));
    assert.equal(
      (await api(collector.queryUrl, tokens.carol as string, 'DELETE', `/v1/grants/${grantId}`)).status,
      403,
    );
    const revoked = await api<GrantView>(
      collector.queryUrl,
      tokens.bob as string,
      'DELETE',
      `/v1/grants/${grantId}`,
    );
    assert.equal(revoked.status, 200);
    assert.equal(revoked.body.revokedBy, user('bob'));
    assert.equal(
      (await api(collector.queryUrl, tokens.bob as string, 'DELETE', `/v1/grants/${grantId}`)).status,
      409,
    );
    const third = await hold(collector.url, podToken, request({ action, grantMs: 600_000 }));
    assert.equal((await third.next()).type, 'pending');
    third.close();
  });

  it('withdraws a request whose sidecar went away; no later decision counts', async () => {
    const h = await hold(collector.url, podToken, request());
    const { approvalId: id } = await h.next();
    h.close();
    await waitFor(
      async () =>
        (await api<ApprovalView>(collector.queryUrl, tokens.alice as string, 'GET', `/v1/approvals/${id}`))
          .body.state === 'withdrawn',
      { what: 'the request to be withdrawn', timeoutMs: 10_000 },
    );
    assert.equal((await decide(collector.queryUrl, tokens.alice as string, id, 'approve')).status, 409);
  });

  it('expires a request nobody decides in time', async () => {
    const h = await hold(collector.url, podToken, request({ timeoutMs: 1000 }));
    const { approvalId: id } = await h.next();
    const decided = await h.next();
    assert.equal(decided.type === 'decided' && decided.state, 'expired');
    assert.deepEqual(decided.type === 'decided' && decided.decisions, []);
    const shown = await api<ApprovalView>(
      collector.queryUrl,
      tokens.alice as string,
      'GET',
      `/v1/approvals/${id}`,
    );
    assert.equal(shown.body.state, 'expired');
    assert.equal((await decide(collector.queryUrl, tokens.alice as string, id, 'approve')).status, 409);
  });

  it('refuses a request whose fingerprint does not match its action, and one without a pod token', async () => {
    const h = await hold(collector.url, podToken, request({ fingerprint: 'a'.repeat(64) }));
    const closed = await h.closed;
    assert.equal(closed.code, 4400);
    assert.match(closed.reason, /fingerprint/);
    await assert.rejects(hold(collector.url, tokens.alice as string, request()));
  });

  it('approvers decide from the CLI with their own token', async () => {
    const h = await hold(collector.url, podToken, request({ summary: 'scale deployments/api -n shop' }));
    const { approvalId: id } = await h.next();
    const tokenFile = join(dir, 'alice.token');
    writeFileSync(tokenFile, tokens.alice as string, { mode: 0o600 });
    // Asynchronously: the collector answers from this very process.
    const cli = (...args: string[]) =>
      new Promise<{ status: number; stdout: string; stderr: string }>((resolve) => {
        execFile(
          process.execPath,
          [CHAPERONE_BIN, ...args, '--collector-url', collector.queryUrl, '--token-file', tokenFile],
          { encoding: 'utf8', env: childEnv(), timeout: 60_000 },
          (err, stdout, stderr) =>
            resolve({ status: err ? Number((err as { code?: unknown }).code ?? 1) : 0, stdout, stderr }),
        );
      });
    const list = await cli('approvals', 'list');
    assert.equal(list.status, 0, list.stderr);
    assert.match(
      list.stdout,
      new RegExp(`${id}\\s+pending\\s+${ns.name}/agent-0\\s+scale-needs-review\\s+0/1`),
    );
    const show = await cli('approvals', 'show', id);
    assert.match(show.stdout, /summary +scale deployments\/api -n shop/);
    const approve = await cli('approvals', 'deny', id, '--reason', 'wrong deployment');
    assert.equal(approve.status, 0, approve.stderr);
    assert.match(approve.stdout, new RegExp(`${id}: denied`));
    const decided = await h.next();
    assert.equal(decided.type === 'decided' && decided.decisions[0]?.reason, 'wrong deployment');
    const again = await cli('approvals', 'approve', id);
    assert.equal(again.status, 1);
    assert.match(again.stderr, /denied already/);
  });

  it('withdrawn approver rights (RoleBinding deleted) refuse the next decision', async () => {
    run(['delete', 'rolebinding', 'approver-bob', '-n', ns.name]);
    await untilRbac(ns.name, user('bob'), false);
    const h = await hold(collector.url, podToken, request());
    const { approvalId: id } = await h.next();
    const r = await decide(collector.queryUrl, tokens.bob as string, id, 'approve');
    assert.equal(r.status, 403);
    h.close();
  });
});

approvalStoreConformance('PostgreSQL', async () => {
  const db = await createDatabase('approvals');
  return {
    open: () => PostgresStore.open({ url: db.url, poolSize: 2 }),
    peer: () => PostgresStore.open({ url: db.url, poolSize: 2 }),
    destroy: () => db.drop(),
  };
});

describe('approvals: two collector replicas on one PostgreSQL', () => {
  let dir: string;
  let ns: TestNamespace;
  let db: TestDatabase;
  let a: RunningCollector;
  let b: RunningCollector;
  let pod: AgentPod;
  let alice: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'chaperone-approvals-pg-'));
    ns = await createNamespace('approvals-pg');
    for (const sa of ['agent', 'alice']) run(['create', 'serviceaccount', sa, '-n', ns.name]);
    pod = createAgentPod(ns.name, 'agent-0', 'agent');
    alice = userToken(ns.name, 'alice');
    createApproverRole(ns.name);
    bindApprover(ns.name, 'approver-alice', { namespace: ns.name, name: 'alice' });
    await untilRbac(ns.name, `system:serviceaccount:${ns.name}:alice`, true);
    db = await createDatabase('approvals_replicas');
    const pgFlags = { storage: 'postgres', postgresUrl: db.url, withoutCheckpoints: 'true' };
    a = await start(dir, pgFlags);
    b = await start(dir, pgFlags);
  });

  after(async () => {
    await a?.close();
    await b?.close();
    await db?.drop();
    await ns?.delete();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a decision taken through one replica reaches the sidecar held by the other', async () => {
    const h = await hold(a.url, boundToken(pod), request());
    const { approvalId: id } = await h.next();
    const shown = await api<ApprovalView>(b.queryUrl, alice, 'GET', `/v1/approvals/${id}`);
    assert.equal(shown.body.state, 'pending');
    assert.equal((await decide(b.queryUrl, alice, id, 'approve')).status, 200);
    const decided = await h.next();
    assert.equal(decided.type === 'decided' && decided.state, 'approved');
    // And the other way round, with a denial.
    const h2 = await hold(b.url, boundToken(pod), request());
    const { approvalId: id2 } = await h2.next();
    assert.equal((await decide(a.queryUrl, alice, id2, 'deny', 'no')).status, 200);
    assert.equal(((await h2.next()) as { state: string }).state, 'denied');
  });

  it('a replica shutting down withdraws the requests it holds', async () => {
    const h = await hold(a.url, boundToken(pod), request());
    const { approvalId: id } = await h.next();
    await a.close();
    assert.equal((await h.closed).code, 1001);
    const shown = await api<ApprovalView>(b.queryUrl, alice, 'GET', `/v1/approvals/${id}`);
    assert.equal(shown.body.state, 'withdrawn');
    assert.equal((await decide(b.queryUrl, alice, id, 'approve')).status, 409);
  });
});

describe('approvals: approvers with OIDC ID tokens', () => {
  let dir: string;
  let ns: TestNamespace;
  let collector: RunningCollector;
  let issuerServer: Server;
  let issuer: string;
  let sign: (sub: string, groups: string[]) => Promise<string>;
  let pod: AgentPod;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'chaperone-approvals-oidc-'));
    // A local OIDC issuer: discovery and its keys, as a real provider publishes them.
    const { privateKey, publicKey } = await generateKeyPair('RS256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
    issuerServer = createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      if (req.url === '/.well-known/openid-configuration')
        res.end(JSON.stringify({ issuer, jwks_uri: `${issuer}/keys` }));
      else if (req.url === '/keys') res.end(JSON.stringify({ keys: [jwk] }));
      else res.writeHead(404).end('{}');
    });
    await new Promise<void>((r) => issuerServer.listen(0, '127.0.0.1', r));
    issuer = `http://127.0.0.1:${(issuerServer.address() as AddressInfo).port}`;
    sign = (sub, groups) =>
      new SignJWT({ groups })
        .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
        .setIssuer(issuer)
        .setAudience('chaperone')
        .setSubject(sub)
        .setIssuedAt()
        .setExpirationTime('10m')
        .sign(privateKey);
    ns = await createNamespace('approvals-oidc');
    run(['create', 'serviceaccount', 'agent', '-n', ns.name]);
    pod = createAgentPod(ns.name, 'agent-0', 'agent');
    run(
      ['create', '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'List',
        items: [
          { ...APPROVER_ROLE, metadata: { name: 'approver', namespace: ns.name } },
          {
            apiVersion: 'rbac.authorization.k8s.io/v1',
            kind: 'RoleBinding',
            metadata: { name: 'approver-sre', namespace: ns.name },
            roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'approver' },
            // OIDC groups reach RBAC behind --oidc-groups-prefix (default oidc:), as the API server names them.
            subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: 'oidc:sre' }],
          },
        ],
      }),
    );
    await waitFor(async () => canApprove(ns.name, 'oidc:dana', ['oidc:sre']), {
      what: 'RBAC to let group oidc:sre approve',
      timeoutMs: 30_000,
      intervalMs: 200,
    });
    collector = await start(dir, {
      queryAuth: 'oidc',
      oidcIssuer: issuer,
      oidcAudience: 'chaperone',
    });
  });

  after(async () => {
    await collector?.close();
    issuerServer?.closeAllConnections();
    issuerServer?.close();
    await ns?.delete();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('authorises an OIDC user through the groups of the ID token, by RBAC', async () => {
    const h = await hold(collector.url, boundToken(pod), request());
    const { approvalId: id } = await h.next();
    const outsider = await decide(collector.queryUrl, await sign('eve', ['dev']), id, 'approve');
    assert.equal(outsider.status, 403);
    const forged = await decide(collector.queryUrl, `${await sign('dana', ['sre'])}x`, id, 'approve');
    assert.equal(forged.status, 401);
    // Unprefixed, system:masters would be cluster-admin to SubjectAccessReview.
    const masters = await decide(
      collector.queryUrl,
      await sign('system:admin', ['system:masters']),
      id,
      'approve',
    );
    assert.equal(masters.status, 403);
    const ok = await decide(collector.queryUrl, await sign('dana', ['sre']), id, 'approve', 'on call');
    assert.equal(ok.status, 200);
    const decided = await h.next();
    assert.deepEqual(decided.type === 'decided' && decided.decisions.map((d) => [d.user, d.reason]), [
      ['oidc:dana', 'on call'],
    ]);
  });
});
