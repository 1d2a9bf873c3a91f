// Review end to end: a real `chaperone sidecar` in front of the real
// kube-apiserver, driven by the real kubectl (and psql's protocol through node
// pg), holds what a review rule matches until a decision arrives.
//
// The approver's side is, first, a server speaking the collector's approvals
// contract (approval-protocol.ts; @chaperone/sidecar/testing) — a test double,
// so that approval, denial, a request nobody decides and a collector that is
// gone can each be staged precisely for a request, an exec session and a SQL
// statement — and then the real `chaperone collector`, where an approver that
// Kubernetes RBAC allows (verb approve on approvals.chaperone.dev) decides
// through the collector's HTTP API.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type AuditEvent, verifyChain } from '@chaperone/shared';
import { readSpoolDir } from '@chaperone/sidecar';
import { type HeldConnection, TestApprovalServer } from '@chaperone/sidecar/testing';
import pg from 'pg';
import { boundToken, clusterCollectorArgs, createAgentPod } from './collector-kube.ts';
import { type CollectorProcess, startCollectorProcess } from './collector-process.ts';
import { createNamespace, kubeInfo, type TestNamespace } from './environment.ts';
import { waitForServiceAccount } from './injector-harness.ts';
import { kubectl, kubectlAsync, kubectlPath } from './kubectl.ts';
import { freePort } from './ports.ts';
import { waitFor } from './process.ts';
import { type ExecStage, execStageSkip, startExecStage } from './sidecar-exec-stage.ts';
import { type SidecarUnderTest, startSidecar } from './sidecar-harness.ts';
import { type GuardedDatabase, startGuardedDatabase } from './sidecar-postgres-harness.ts';
import { errorCode, RawClient } from './sidecar-postgres-raw.ts';

const POLICY = `apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: e2e-review }
spec:
  defaultAction: allow
  rules:
    - name: review-scale
      match: { apiGroups: [apps], resources: [deployments/scale] }
      action: review
      message: scaling needs an approver
      review: { timeout: 3s, approvers: [alice, bob, "group:sre"] }
    - name: review-secret-reads
      match: { resources: [secrets], verbs: [get] }
      action: review
`;

const CANARY = 'canary-review-4b2e-do-not-leak';

const EXEC_POLICY = `apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: e2e-review-exec }
spec:
  defaultAction: allow
  rules:
    - name: review-shells
      match: { protocols: [exec], exec: { argv0: [sh] } }
      action: review
      message: a shell needs an approver
`;

const SQL_REVIEW_DELETES = `    - name: review-deletes
      match: { protocols: [postgres], sql: { statements: [delete] } }
      action: review
      message: deletes need an approver
`;

const SQL_POLICY = `apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: e2e-review-sql }
spec:
  defaultAction: allow
  rules:
${SQL_REVIEW_DELETES}`;

/** SQL_POLICY tightened: deletes and updates are denied before the review rule is reached. */
const SQL_FROZEN = `apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: e2e-review-sql-frozen }
spec:
  defaultAction: allow
  rules:
    - name: freeze
      match: { protocols: [postgres], sql: { statements: [delete, update] } }
      action: deny
      message: the items are frozen for the audit
${SQL_REVIEW_DELETES}`;

/** Approvers are whoever RBAC lets approve (no list): the approver is a ServiceAccount of the test's namespace. */
const COLLECTOR_POLICY = `apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: e2e-review-collector }
spec:
  defaultAction: allow
  rules:
    - name: review-api-scale
      match: { apiGroups: [apps], resources: [deployments/scale], names: [api] }
      action: review
      review: { timeout: 1m, grant: { duration: 1h } }
    - name: review-scale
      match: { apiGroups: [apps], resources: [deployments/scale] }
      action: review
      review: { timeout: 1m }
`;

const ID = '5d0c7a3e-8f1b-4c2d-9e6a-1b2c3d4e5f60';
const at = () => new Date().toISOString();

/** Answers a held action as the collector would: pending, then one approver's decision. */
function decide(c: HeldConnection, decision: 'approve' | 'deny', user: string, reason?: string): void {
  c.send({ type: 'pending', approvalId: ID, expiresAt: at() });
  c.send({
    type: 'decided',
    approvalId: ID,
    state: decision === 'approve' ? 'approved' : 'denied',
    decisions: [{ user, decision, at: at(), ...(reason ? { reason } : {}) }],
  });
}

/** The sidecar's flags for the stand-in: it speaks only approvals, so audit events stay in the spool, which must not refuse requests. */
const standInArgs = (a: TestApprovalServer) => [
  '--collector-url',
  a.url,
  '--collector-token-file',
  a.tokenFile,
  '--collector-max-lag',
  '0s',
];

describe('chaperone policy lint|test: review settings', () => {
  const bin = fileURLToPath(new URL('../../bin/chaperone.ts', import.meta.url));
  const chaperone = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'chaperone-review-policy-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('lint accepts review settings and test shows them', () => {
    const file = join(dir, 'ok.yaml');
    writeFileSync(
      file,
      POLICY.replace(
        'review: { timeout: 3s, approvers: [alice, bob, "group:sre"] }',
        'review: { approvals: 2, approvers: [alice, "group:sre"], grant: { duration: 1h } }',
      ),
    );
    const lint = chaperone('policy', 'lint', file);
    assert.equal(lint.status, 0, lint.stderr);
    const test = chaperone(
      'policy',
      'test',
      file,
      '-r',
      'patch deployments/scale web -n shop -g apps',
      '--expect',
      'review',
    );
    assert.equal(test.status, 0, test.stderr);
    assert.match(test.stdout, /^REVIEW {2}rule=review-scale/m);
    assert.match(
      test.stdout,
      /review: 2 approvals from alice, group:sre, within 5m; an approval lets the same action pass for 1h/,
    );
  });

  it('lint refuses review settings that could never be met, saying which', () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(
      file,
      POLICY.replace('approvers: [alice, bob, "group:sre"]', 'approvals: 3, approvers: [alice, bob]'),
    );
    const lint = chaperone('policy', 'lint', file);
    assert.equal(lint.status, 1);
    assert.match(
      lint.stderr,
      /rule "review-scale" \(rules\[0\]\): review\.approvals: asks for 3 distinct approvers but approvers names only 2 user\(s\) and no group/,
    );
  });
});

describe('sidecar: review holds a request until a human decides', () => {
  const kube = kubeInfo();
  let ns: TestNamespace;
  let sc: SidecarUnderTest;
  let approvals: TestApprovalServer;
  const admin = (args: string[]) => kubectl(kube.kubeconfigPath, args);
  /** The agent's kubectl, not blocking the event loop (the approvals server runs in this process). */
  const agent = (args: string[]) =>
    kubectlAsync(sc.agentKubeconfig, [...args, '--cache-dir', join(sc.dir, 'kube-cache')], {
      timeoutMs: 60_000,
    });
  const replicas = () =>
    admin(['get', 'deployment', 'web', '-n', ns.name, '-o', 'jsonpath={.spec.replicas}']).stdout;
  const nextRequest = () => new Promise<HeldConnection>((resolve) => (approvals.onRequest = resolve));
  const events = () => readSpoolDir(sc.spoolDir);

  before(async () => {
    ns = await createNamespace('review');
    approvals = await TestApprovalServer.start();
    sc = await startSidecar({
      namespace: ns.name,
      policy: POLICY,
      extraArgs: standInArgs(approvals),
    });
    const r = admin(['create', 'deployment', 'web', '--image=registry.k8s.io/pause:3.9', '-n', ns.name]);
    assert.equal(r.code, 0, r.stderr);
    const secret = admin([
      'create',
      'secret',
      'generic',
      'db',
      '-n',
      ns.name,
      `--from-literal=password=${CANARY}`,
    ]);
    assert.equal(secret.code, 0, secret.stderr);
  });
  after(async () => {
    await sc?.stop();
    await approvals?.close();
    await ns?.delete();
  });

  it('holds kubectl scale, which reaches the API server only once approved', async () => {
    const held = nextRequest();
    const run = agent(['scale', 'deployment', 'web', '--replicas=3']);
    const c = await held;
    // What the approver reads: the action as the agent issued it (its body too), the rule and its settings.
    const { digest, query: _query, ...shown } = c.request.action;
    assert.deepEqual(shown, {
      verb: 'patch',
      apiGroup: 'apps',
      resource: 'deployments',
      subresource: 'scale',
      namespace: ns.name,
      name: 'web',
      body: '{\n  "spec": {\n    "replicas": 3\n  }\n}',
    });
    // The raw request is pinned by a keyed digest, part of the fingerprint.
    assert.match(digest ?? '', /^[0-9a-f]{64}$/);
    assert.equal(c.request.protocol, 'kubernetes');
    assert.equal(c.request.rule, 'review-scale');
    assert.equal(c.request.message, 'scaling needs an approver');
    assert.deepEqual(c.request.approvers, ['alice', 'bob', 'group:sre']);
    assert.equal(c.request.timeoutMs, 3000);
    // Held: nothing has reached the API server yet.
    assert.equal(replicas(), '1');
    decide(c, 'approve', 'alice', 'traffic peak');
    const r = await run;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /deployment\.apps\/web scaled/);
    assert.equal(replicas(), '3');
    const e = await waitFor(async () => events().find((x) => x.auditID === c.request.auditId), {
      what: "the held request's audit event",
      timeoutMs: 10_000,
    });
    assert.equal(e.verb, 'patch');
    assert.equal(e.responseStatus?.code, 200);
    assert.equal(e.annotations?.['authorization.k8s.io/decision'], 'allow');
    assert.deepEqual(
      { action: e.chaperone.decision.action, rule: e.chaperone.decision.rule },
      { action: 'review', rule: 'review-scale' },
    );
    const a = e.chaperone.decision.approval;
    assert.equal(a?.state, 'approved');
    assert.equal(a?.id, ID);
    assert.equal(a?.by, 'alice');
    assert.equal(a?.reason, 'traffic peak');
  });

  it('answers a denial with 403 saying who denied it and why, and nothing changes', async () => {
    const held = nextRequest();
    const run = agent(['scale', 'deployment', 'web', '--replicas=5']);
    const c = await held;
    decide(c, 'deny', 'bob', 'change freeze until Monday');
    const r = await run;
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /rule "review-scale" requires a human's approval \(scaling needs an approver\): denied by bob \("change freeze until Monday"\)/,
    );
    assert.equal(replicas(), '3');
    const e = events().find((x) => x.auditID === c.request.auditId) as AuditEvent;
    assert.equal(e.responseStatus?.code, 403);
    assert.equal(e.annotations?.['authorization.k8s.io/decision'], 'forbid');
    assert.deepEqual(
      { state: e.chaperone.decision.approval?.state, by: e.chaperone.decision.approval?.by },
      { state: 'denied', by: 'bob' },
    );
  });

  it('denies when nobody decides within the rule timeout', async () => {
    const held = nextRequest();
    const run = agent(['scale', 'deployment', 'web', '--replicas=7']);
    const c = await held;
    c.send({ type: 'pending', approvalId: ID, expiresAt: at() });
    const r = await run;
    assert.equal(r.code, 1);
    assert.match(r.stderr, /review-scale.*: nobody decided within 3s/);
    assert.equal(replicas(), '3');
    // The sidecar closed the connection: the collector marks the request withdrawn.
    assert.equal(await c.closed, 1000);
    assert.equal(
      events().find((x) => x.auditID === c.request.auditId)?.chaperone.decision.approval?.state,
      'expired',
    );
  });

  it("an approved read of a Secret still has the Secret's values masked", async () => {
    const held = nextRequest();
    const run = agent(['get', 'secret', 'db', '-o', 'json']);
    const c = await held;
    assert.equal(c.request.rule, 'review-secret-reads');
    c.send({
      type: 'decided',
      approvalId: ID,
      state: 'approved',
      decisions: [{ user: 'alice', decision: 'approve', at: at() }],
    });
    const r = await run;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /"name": "db"/);
    assert.doesNotMatch(r.stdout, new RegExp(Buffer.from(CANARY).toString('base64')));
    assert.ok(!r.stdout.includes(CANARY));
    const e = events().find((x) => x.auditID === c.request.auditId);
    assert.equal(e?.chaperone.decision.approval?.state, 'approved');
  });

  it('withdraws the request when kubectl goes away while held', async () => {
    const held = nextRequest();
    const child = spawn(
      kubectlPath(),
      ['scale', 'deployment', 'web', '--replicas=8', '--cache-dir', join(sc.dir, 'kube-cache')],
      { env: { ...process.env, KUBECONFIG: sc.agentKubeconfig }, stdio: 'ignore' },
    );
    const c = await held;
    c.send({ type: 'pending', approvalId: ID, expiresAt: at() });
    child.kill('SIGKILL');
    // The sidecar closes its connection: the collector marks the request withdrawn.
    assert.equal(await c.closed, 1000);
    assert.equal(replicas(), '3');
  });

  it('counts how each hold ended', async () => {
    const text = await (await fetch(sc.metricsUrl)).text();
    const count = (outcome: string) =>
      Number(
        text
          .split('\n')
          .find(
            (l) =>
              l.startsWith('chaperone_sidecar_reviews_total{') &&
              l.includes(`outcome="${outcome}"`) &&
              l.includes('rule="review-scale"'),
          )
          ?.split(' ')
          .at(-1) ?? 0,
      );
    // The withdrawn hold (kubectl went away) is the one unavailable so far.
    assert.deepEqual(['approved', 'denied', 'expired', 'unavailable'].map(count), [1, 1, 1, 1]);
    assert.match(text, /^chaperone_sidecar_reviews_held\{[^}]*\} 0$/m);
  });

  it('denies when the collector cannot be reached, never letting the request through', async () => {
    await approvals.stop();
    const r = await agent(['scale', 'deployment', 'web', '--replicas=9']);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /review-scale.*no decision could be obtained: the collector could not be reached \(.*ECONNREFUSED/,
    );
    assert.equal(replicas(), '3');
    assert.deepEqual(verifyChain(events()).problems, []);
  });
});

describe('sidecar: review holds an exec session before it reaches the API server', {
  skip: execStageSkip,
}, () => {
  let stage: ExecStage;
  let approvals: TestApprovalServer;
  const nextRequest = () => new Promise<HeldConnection>((resolve) => (approvals.onRequest = resolve));
  const execs = () => stage.standin.requests.filter((q) => q.kind === 'exec').length;

  before(async () => {
    approvals = await TestApprovalServer.start();
    stage = await startExecStage({
      namespace: 'review-exec',
      policy: EXEC_POLICY,
      sidecarArgs: standInArgs(approvals),
    });
  });
  after(async () => {
    await stage?.stop();
    await approvals?.close();
  });

  it('runs the command once approved', async () => {
    const before = execs();
    const held = nextRequest();
    const run = stage.agent(['exec', stage.pod, '-c', 'main', '--', 'sh', '-c', 'echo hello from the pod']);
    const c = await held;
    assert.equal(c.request.protocol, 'exec');
    const { digest, ...shown } = c.request.action;
    assert.deepEqual(shown, {
      verb: 'exec',
      namespace: stage.ns.name,
      name: stage.pod,
      argv: ['sh', '-c', 'echo hello from the pod'],
      container: 'main',
      stdin: false,
      tty: false,
    });
    assert.match(digest ?? '', /^[0-9a-f]{64}$/);
    // Held before the upgrade reached the API server.
    assert.equal(execs(), before);
    decide(c, 'approve', 'alice');
    const r = await run;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'hello from the pod\n');
    assert.equal(execs(), before + 1);
  });

  it('refuses the session with the Failure Status kubectl prints when denied', async () => {
    const before = execs();
    const held = nextRequest();
    const run = stage.agent(['exec', stage.pod, '-c', 'main', '--', 'sh', '-c', 'echo never']);
    const c = await held;
    decide(c, 'deny', 'bob', 'use the runbook');
    const r = await run;
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(
      r.stderr,
      /error: chaperone: rule "review-shells" requires a human's approval \(a shell needs an approver\): denied by bob \("use the runbook"\)/,
    );
    assert.equal(execs(), before);
  });
});

describe('sidecar: review holds a SQL statement until a human decides', () => {
  let db: GuardedDatabase;
  let approvals: TestApprovalServer;
  let client: pg.Client;
  const nextRequest = () => new Promise<HeldConnection>((resolve) => (approvals.onRequest = resolve));
  const count = (table = 'orders') =>
    db.direct(async (c) => Number((await c.query(`SELECT count(*) AS n FROM ${table}`)).rows[0].n));
  /** Approval requests the sidecar has sent so far. */
  const asked = () => approvals.connections.length;
  /** Writes `policy` and waits until the sidecar decides by it (an UPDATE that changes nothing: denied only when frozen). */
  const usePolicy = async (policy: string) => {
    writeFileSync(db.sidecar.policyFile, policy);
    const probe = new pg.Client({ connectionString: `postgresql://agent:x@127.0.0.1:${db.port}/app` });
    await probe.connect();
    try {
      const frozen = policy === SQL_FROZEN;
      await waitFor(
        async () => {
          const code = await probe.query('UPDATE items SET id = id WHERE false').then(
            () => undefined,
            (err: pg.DatabaseError) => err.code,
          );
          return frozen === (code === '42501');
        },
        { what: 'the sidecar to load the policy written', timeoutMs: 10_000 },
      );
    } finally {
      await probe.end();
    }
  };
  /**
   * Runs a DELETE the review rule holds, tightens the policy while it is held
   * (SQL_FROZEN), then approves it: the error the client gets, and the request.
   */
  const approvedThenFrozen = async (text: string, values?: unknown[]) => {
    const held = nextRequest();
    const run = client.query(text, values).then(
      () => assert.fail('the DELETE ran although the policy now denies it'),
      (err: pg.DatabaseError) => err,
    );
    const c = await held;
    await usePolicy(SQL_FROZEN);
    decide(c, 'approve', 'alice');
    return { err: await run, request: c.request };
  };
  const eventOf = (auditID: string) =>
    waitFor(async () => readSpoolDir(db.sidecar.spoolDir).find((x) => x.auditID === auditID), {
      what: "the held statement's audit event",
      timeoutMs: 10_000,
    });

  before(async () => {
    approvals = await TestApprovalServer.start();
    db = await startGuardedDatabase({
      name: 'review-sql',
      pod: 'agent-0',
      policy: SQL_POLICY,
      setup: async (c) => {
        await c.query('CREATE TABLE orders (id int PRIMARY KEY, note text)');
        await c.query("INSERT INTO orders VALUES (1, 'a'), (2, 'b'), (3, 'c')");
        await c.query('CREATE TABLE items (id int PRIMARY KEY)');
        await c.query('INSERT INTO items SELECT generate_series(1, 20)');
      },
      extraArgs: standInArgs(approvals),
    });
    // The agent's client: the sidecar holds the database's credentials, any password does.
    client = new pg.Client({ connectionString: `postgresql://agent:x@127.0.0.1:${db.port}/app` });
    await client.connect();
  });
  after(async () => {
    await client?.end();
    await db?.stop();
    await approvals?.close();
  });

  it('runs a held DELETE once approved; the approver reads it normalised', async () => {
    const held = nextRequest();
    const run = client.query('DELETE FROM orders WHERE id = 1');
    const c = await held;
    assert.equal(c.request.protocol, 'postgres');
    assert.equal(c.request.rule, 'review-deletes');
    const { digest, ...shown } = c.request.action;
    assert.deepEqual(shown, {
      verb: 'DeleteStmt',
      sql: 'DELETE FROM orders WHERE id = $1',
      database: 'app',
    });
    // The exact text (its values too) is pinned by a keyed digest: an approval of `id = 1` covers nothing else.
    assert.match(digest ?? '', /^[0-9a-f]{64}$/);
    assert.equal(await count(), 3, 'held: not run yet');
    decide(c, 'approve', 'alice');
    const r = await run;
    assert.equal(r.rowCount, 1);
    assert.equal(await count(), 2);
    const e = await waitFor(
      async () => readSpoolDir(db.sidecar.spoolDir).find((x) => x.auditID === c.request.auditId),
      { what: "the held statement's audit event", timeoutMs: 10_000 },
    );
    assert.equal(e.chaperone.protocol, 'postgres');
    assert.deepEqual(
      {
        state: e.chaperone.decision.approval?.state,
        id: e.chaperone.decision.approval?.id,
        by: e.chaperone.decision.approval?.by,
      },
      { state: 'approved', id: ID, by: 'alice' },
    );
  });

  // Fails if a Parse is held too (the first request would show no values, and a second would follow).
  it('asks once per execution of a parameterised statement, at its Bind, showing the values', async () => {
    const before = asked();
    const held = nextRequest();
    const run = client.query('DELETE FROM orders WHERE id = $1', [3]);
    const b = await held;
    assert.equal(b.request.action.sql, 'DELETE FROM orders WHERE id = $1');
    assert.deepEqual(b.request.action.params, ['$1 type 0 text 1 bytes: "3"']);
    assert.equal(await count(), 2, 'held at Bind: not run yet');
    decide(b, 'approve', 'alice');
    assert.equal((await run).rowCount, 1);
    assert.equal(await count(), 1);
    assert.equal(asked() - before, 1, 'one approval request for one execution');
    const items = await count('items');
    // A named statement: prepared and bound, then bound again later with no Parse. Each Bind is asked about once.
    for (const id of [11, 12]) {
      const n = asked();
      const next = nextRequest();
      const again = client.query({
        name: 'delete-item',
        text: 'DELETE FROM items WHERE id = $1',
        values: [id],
      });
      const r = await next;
      assert.deepEqual(r.request.action.params, [`$1 type 0 text 2 bytes: "${id}"`]);
      decide(r, 'approve', 'alice');
      assert.equal((await again).rowCount, 1);
      assert.equal(asked() - n, 1, `one approval request for the execution with ${id}`);
    }
    assert.equal(await count('items'), items - 2);
  });

  it('answers a denial with SQLSTATE 42501 saying who denied it and why, and the session goes on', async () => {
    const held = nextRequest();
    const run = client.query('DELETE FROM orders').then(
      () => assert.fail('the denied DELETE ran'),
      (err: pg.DatabaseError) => err,
    );
    const c = await held;
    decide(c, 'deny', 'bob', 'keep the orders');
    const err = await run;
    assert.equal(err.code, '42501');
    assert.match(
      err.message,
      /rule "review-deletes" requires a human's approval \(deletes need an approver\): denied by bob \("keep the orders"\)/,
    );
    assert.equal(await count(), 1);
    assert.equal((await client.query('SELECT 1 AS one')).rows[0].one, 1);
  });

  // Fails if an approved statement runs under the decision made when its hold began (session.ts #askReview
  // not judging it again): the DELETE would run although the policy now denies it.
  it("refuses an approved statement that a policy tightened during its hold denies, with the new rule's message; the session goes on", async () => {
    const items = await count('items');
    try {
      const { err, request } = await approvedThenFrozen('DELETE FROM items WHERE id = 1');
      assert.equal(err.code, '42501');
      assert.match(
        err.message,
        /rule "review-deletes" approved it, but the policy changed while it was held and rule "freeze" now denies it: the items are frozen for the audit/,
      );
      assert.equal(await count('items'), items);
      assert.equal((await client.query('SELECT 1 AS one')).rows[0].one, 1);
      // Recorded as the Kubernetes path records it: the decision that won, with the approval it overrode.
      const e = await eventOf(request.auditId);
      assert.deepEqual(
        {
          action: e.chaperone.decision.action,
          rule: e.chaperone.decision.rule,
          approval: e.chaperone.decision.approval?.state,
        },
        { action: 'deny', rule: 'freeze', approval: 'approved' },
      );
    } finally {
      await usePolicy(SQL_POLICY);
    }
  });

  it('refuses an approved Bind that a tightened policy denies inside a transaction, which is then aborted as the server would have it', async () => {
    const items = await count('items');
    await client.query('BEGIN');
    const before = asked();
    try {
      const { err } = await approvedThenFrozen('DELETE FROM items WHERE id = $1', [2]);
      assert.equal(err.code, '42501');
      assert.match(err.message, /rule "freeze" now denies it: the items are frozen for the audit/);
      assert.equal(asked() - before, 1);
      // The transaction status stays honest: the refused statement aborted it, as any error does.
      const aborted = await client.query('SELECT 1').then(
        () => undefined,
        (e: pg.DatabaseError) => e.code,
      );
      assert.equal(aborted, '25P02');
    } finally {
      await client.query('ROLLBACK');
      await usePolicy(SQL_POLICY);
    }
    assert.equal((await client.query('SELECT 1 AS one')).rows[0].one, 1);
    assert.equal(await count('items'), items);
  });

  // Fails if a Bind's digest leaves out the Parse's declared types: past the parameters an approver is
  // shown (256), the same values declared int4 and text would be one fingerprint, which a grant covers.
  it('pins the declared parameter types: the same values as text are another action than as int4', async () => {
    const n = 300;
    const text = `DELETE FROM items WHERE id = $1 AND ROW(${Array.from({ length: n - 1 }, (_, i) => `$${i + 2}`).join(', ')}) IS NOT NULL`;
    const int32 = (v: number) => Buffer.from([v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255]);
    const values = Array.from({ length: n }, () => Buffer.from('99'));
    const bind = RawClient.msg('B', '', '', 0, n, ...values.flatMap((v) => [int32(v.length), v]), 0);
    const raw = await RawClient.open(db.port, 'app');
    const held = async (lastType: number) => {
      const types = [...Array.from({ length: n - 1 }, () => 23), lastType];
      const next = nextRequest();
      raw.send(
        RawClient.msg('P', '', text, n, ...types.map(int32)),
        bind,
        RawClient.execute(),
        RawClient.msg('S'),
      );
      const c = await next;
      decide(c, 'approve', 'alice');
      const answer = await raw.until('Z');
      assert.deepEqual(
        answer.filter(([t]) => t === 'E').map(([, b]) => errorCode(b)),
        [],
        'the approved DELETE ran',
      );
      return c.request;
    };
    try {
      const asInt = await held(23);
      const asText = await held(25);
      assert.equal(asInt.action.params?.length, 256);
      assert.deepEqual(asText.action.params, asInt.action.params, 'what the approver reads is the same');
      assert.notEqual(asText.action.digest, asInt.action.digest);
      assert.notEqual(
        asText.fingerprint,
        asInt.fingerprint,
        'a grant of the int4 action does not cover the text one',
      );
    } finally {
      raw.close();
    }
  });

  // Fails if an EXECUTE's digest pins only its own text: its approval (and a grant) would cover whatever
  // is prepared under the name later.
  it('holds an EXECUTE with what it runs: the same EXECUTE of a statement prepared again is another action', async () => {
    const approved = async (sql: string) => {
      const next = nextRequest();
      const run = client.query(sql);
      const c = await next;
      decide(c, 'approve', 'alice');
      await run;
      return c.request;
    };
    const items = await count('items');
    // PREPARE runs nothing: it is not held, each EXECUTE is.
    await client.query('PREPARE del AS DELETE FROM items WHERE id = $1');
    const first = await approved('EXECUTE del(13)');
    assert.equal(
      first.action.sql,
      'EXECUTE del($1)\n-- del was prepared as: PREPARE del AS DELETE FROM items WHERE id = $1',
    );
    assert.equal(await count('items'), items - 1);
    await client.query('DEALLOCATE del');
    await client.query('PREPARE del AS DELETE FROM items WHERE id >= $1');
    const next = nextRequest();
    const again = client.query('EXECUTE del(13)').then(
      () => assert.fail('the EXECUTE ran unapproved'),
      (err: pg.DatabaseError) => err,
    );
    const c = await next;
    assert.match(
      c.request.action.sql ?? '',
      /was prepared as: PREPARE del AS DELETE FROM items WHERE id >= \$1$/,
    );
    assert.notEqual(c.request.action.digest, first.action.digest);
    assert.notEqual(c.request.fingerprint, first.fingerprint);
    decide(c, 'deny', 'bob', 'not all of them');
    assert.equal((await again).code, '42501');
    assert.equal(await count('items'), items - 1);
    await client.query('DEALLOCATE del');
  });

  // Fails if an EXECUTE is judged by what its name held before the query string (session.ts #classify
  // not following the string's own DEALLOCATE and PREPARE): it would be read as the harmless SELECT,
  // asked about by nobody, and the DELETE would run. The PREPARE itself runs nothing and is not asked
  // about (session.ts preparedOnly): one execution, one request.
  it('judges an EXECUTE by a PREPARE earlier in the same query string, and holds it with what it runs', async () => {
    await client.query('PREPARE del2 AS SELECT $1::int AS n');
    const items = await count('items');
    const first = nextRequest();
    const run = client
      .query('DEALLOCATE del2; PREPARE del2 AS DELETE FROM items WHERE id = $1; EXECUTE del2(15)')
      .then(
        () => 'ran' as const,
        (err: pg.DatabaseError) => err,
      );
    const next = await Promise.race([first, run]);
    assert.ok(
      typeof next === 'object' && 'request' in next,
      `the EXECUTE was not asked about: ${String(next)}`,
    );
    assert.match(next.request.action.sql ?? '', /del2 was prepared as: PREPARE del2 AS DELETE FROM items/);
    decide(next, 'deny', 'bob', 'no');
    const err = await run;
    assert.ok(err !== 'ran');
    assert.equal(err.code, '42501');
    assert.equal(await count('items'), items, 'none of the statements ran');
    await client.query('DEALLOCATE del2');
  });
});

/** SQL_POLICY with vault.secret masked: what a reload during a hold adds. */
const SQL_MASKED = `${SQL_POLICY}    - name: mask-vault
      match: { sql: { tables: [vault], columns: [secret] } }
      action: mask
`;
const VAULT_CANARY = 'canary-vault-19d3-do-not-leak';

describe('sidecar: masks added while a SQL statement is held for review', () => {
  let db: GuardedDatabase;
  let approvals: TestApprovalServer;
  const nextRequest = () => new Promise<HeldConnection>((resolve) => (approvals.onRequest = resolve));
  const items = () =>
    db.direct(async (c) => Number((await c.query('SELECT count(*) AS n FROM items')).rows[0].n));
  const agent = async () => {
    const c = new pg.Client({ connectionString: `postgresql://agent:x@127.0.0.1:${db.port}/app` });
    await c.connect();
    return c;
  };
  /** Writes `policy` and waits until a plain read of vault.secret shows it masked (or not). */
  const useMasks = async (policy: string, masked: boolean) => {
    writeFileSync(db.sidecar.policyFile, policy);
    const probe = await agent();
    try {
      await waitFor(
        async () => {
          const shown = (await probe.query('SELECT secret FROM vault')).rows[0].secret;
          return (shown !== VAULT_CANARY) === masked;
        },
        { what: 'the sidecar to load the policy written', timeoutMs: 10_000 },
      );
    } finally {
      await probe.end();
    }
  };
  /** Runs `run` (which a review rule holds), masks vault.secret while it is held, then approves it: the error. */
  const approvedThenMasked = async (run: (c: pg.Client) => Promise<unknown>) => {
    const c = await agent();
    try {
      const held = nextRequest();
      const result = run(c).then(
        (r) =>
          assert.fail(
            `it ran under the new masks (the canary came back: ${JSON.stringify(r).includes(VAULT_CANARY)})`,
          ),
        (err: pg.DatabaseError) => err,
      );
      const request = await held;
      await useMasks(SQL_MASKED, true);
      decide(request, 'approve', 'alice');
      const err = await result;
      assert.ok(!JSON.stringify({ ...err, message: err.message }).includes(VAULT_CANARY));
      // What the client sent after the held statement (a Bind's Execute and Sync) is still answered.
      const stuck = new Promise<'stuck'>((resolve) => setTimeout(() => resolve('stuck'), 10_000).unref());
      const next = c.query('SELECT 1 AS one').then((r) => r.rows[0].one as number);
      assert.equal(await Promise.race([next, stuck]), 1, 'the session goes on');
      return err;
    } finally {
      await c.end();
    }
  };

  before(async () => {
    approvals = await TestApprovalServer.start();
    db = await startGuardedDatabase({
      name: 'review-remask',
      pod: 'agent-remask',
      policy: SQL_POLICY,
      setup: async (c) => {
        await c.query('CREATE TABLE items (id int PRIMARY KEY)');
        await c.query('INSERT INTO items SELECT generate_series(1, 20)');
        await c.query(`CREATE TABLE vault (secret text); INSERT INTO vault VALUES ('${VAULT_CANARY}')`);
      },
      extraArgs: standInArgs(approvals),
    });
  });
  after(async () => {
    await db?.stop();
    await approvals?.close();
  });

  // Fails if the approved Bind runs without masking being checked again under the masks in force once
  // its hold ended (session.ts #bindAs → #maskedAgain): RETURNING's lower(secret) has no column the
  // RowDescription masking could find, and the canary came back with the deleted row.
  it('refuses an approved Bind that reads a column masked during its hold through an expression', async () => {
    const before = await items();
    try {
      const err = await approvedThenMasked((c) =>
        c.query('DELETE FROM items WHERE id = $1 RETURNING (SELECT lower(secret) FROM vault)', [5]),
      );
      assert.equal(err.code, '42501');
      assert.match(err.message, /masks in force changed after the statement was prepared/);
    } finally {
      await useMasks(SQL_POLICY, false);
    }
    assert.equal(await items(), before, 'the DELETE did not run');
  });

  // Fails if the statements of a query string that were not held run under the decision made before the
  // hold (session.ts #afterApproval not judging them again): the SELECT had no masks then, and its
  // lower(secret) would come back unmasked after the approved DELETE.
  it('judges the other statements of a query string again when the policy changed during the hold', async () => {
    const before = await items();
    try {
      const err = await approvedThenMasked((c) =>
        c.query('DELETE FROM items WHERE id = 6; SELECT lower(secret) AS s FROM vault'),
      );
      assert.equal(err.code, '42501');
      assert.match(err.message, /mask/);
    } finally {
      await useMasks(SQL_POLICY, false);
    }
    assert.equal(await items(), before, 'none of the statements ran');
    const events = readSpoolDir(db.sidecar.spoolDir);
    assert.ok(!JSON.stringify(events).includes(VAULT_CANARY));
  });
});

describe('sidecar: review decided through the real collector by an approver RBAC allows', () => {
  const kube = kubeInfo();
  let ns: TestNamespace;
  let dir: string;
  let collector: CollectorProcess;
  let sc: SidecarUnderTest;
  let approverToken: string;
  const admin = (args: string[]) => kubectl(kube.kubeconfigPath, args);
  const agent = (args: string[]) =>
    kubectlAsync(sc.agentKubeconfig, [...args, '--cache-dir', join(dir, 'kube-cache')], {
      timeoutMs: 60_000,
    });
  const replicas = (name = 'web') =>
    admin(['get', 'deployment', name, '-n', ns.name, '-o', 'jsonpath={.spec.replicas}']).stdout;
  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${collector.queryUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${approverToken}`, 'content-type': 'application/json' },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  /** The one pending request of the namespace, once the collector has it. */
  const pending = () =>
    waitFor(
      async () => {
        const r = await api('GET', `/v1/approvals?state=pending&namespace=${ns.name}`);
        assert.equal(r.status, 200, JSON.stringify(r.body));
        return (r.body.items as { id: string; summary: string; rule: string }[])[0];
      },
      { what: 'the approval request to reach the collector', timeoutMs: 20_000, intervalMs: 100 },
    );

  before(async () => {
    ns = await createNamespace('review-collector');
    dir = mkdtempSync(join(tmpdir(), 'chaperone-review-'));
    await waitForServiceAccount(kube, ns.name);
    for (const sa of ['agent', 'approver'])
      assert.equal(admin(['create', 'serviceaccount', sa, '-n', ns.name]).code, 0);
    const pod = createAgentPod(ns.name, 'agent-0', 'agent');
    // Approver rights are ordinary RBAC: verb approve on approvals.chaperone.dev in the agent's namespace.
    // (A manifest: kubectl create role checks resources against discovery, and approvals is no served resource.)
    const role = kubectl(kube.kubeconfigPath, ['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'Role',
        metadata: { name: 'approver', namespace: ns.name },
        rules: [
          { apiGroups: ['chaperone.dev'], resources: ['approvals'], verbs: ['approve', 'get', 'list'] },
        ],
      }),
    });
    assert.equal(role.code, 0, role.stderr);
    const binding = admin([
      'create',
      'rolebinding',
      'approver',
      '-n',
      ns.name,
      '--role=approver',
      `--serviceaccount=${ns.name}:approver`,
    ]);
    assert.equal(binding.code, 0, binding.stderr);
    const token = admin(['create', 'token', 'approver', '-n', ns.name]);
    assert.equal(token.code, 0, token.stderr);
    approverToken = token.stdout.trim();
    const tokenFile = join(dir, 'collector-token');
    writeFileSync(tokenFile, boundToken(pod), { mode: 0o600 });
    const queryTokenFile = join(dir, 'query-token');
    writeFileSync(queryTokenFile, 'review-e2e-query-token-0123456789', { mode: 0o600 });
    collector = await startCollectorProcess({
      name: 'collector-review',
      port: await freePort(),
      logDir: dir,
      // The events query API needs a token of its own; approvers use theirs (RBAC decides).
      args: [
        ...clusterCollectorArgs(join(dir, 'data')),
        '--query-token-file',
        queryTokenFile,
        '--log-level',
        'warn',
      ],
    });
    sc = await startSidecar({
      namespace: ns.name,
      policy: COLLECTOR_POLICY,
      pod: 'agent-0',
      extraArgs: [
        '--pod-uid',
        pod.uid,
        '--collector-url',
        collector.url,
        '--collector-token-file',
        tokenFile,
      ],
    });
    for (const name of ['web', 'api']) {
      const r = admin(['create', 'deployment', name, '--image=registry.k8s.io/pause:3.9', '-n', ns.name]);
      assert.equal(r.code, 0, r.stderr);
    }
  });
  after(async () => {
    await sc?.stop();
    await collector?.stop();
    await ns?.delete();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('applies a held kubectl scale once an approver approves it through the HTTP API', async () => {
    const run = agent(['scale', 'deployment', 'web', '--replicas=4']);
    const p = await pending();
    assert.equal(p.rule, 'review-scale');
    assert.equal(replicas(), '1');
    const d = await api('POST', `/v1/approvals/${p.id}/decision`, {
      decision: 'approve',
      reason: 'release day',
    });
    assert.equal(d.status, 200, JSON.stringify(d.body));
    const r = await run;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(replicas(), '4');
    const e = await waitFor(
      async () =>
        readSpoolDir(sc.spoolDir).find(
          (x) => x.chaperone.decision.approval?.id === p.id && x.verb === 'patch',
        ),
      { what: "the held request's audit event", timeoutMs: 10_000 },
    );
    assert.equal(e.chaperone.decision.approval?.state, 'approved');
    assert.equal(e.chaperone.decision.approval?.by, `system:serviceaccount:${ns.name}:approver`);
  });

  it('refuses a held kubectl scale an approver denies, naming them and their reason', async () => {
    const run = agent(['scale', 'deployment', 'web', '--replicas=6']);
    const p = await pending();
    const d = await api('POST', `/v1/approvals/${p.id}/decision`, { decision: 'deny', reason: 'not today' });
    assert.equal(d.status, 200, JSON.stringify(d.body));
    const r = await run;
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      new RegExp(`denied by system:serviceaccount:${ns.name}:approver \\("not today"\\)`),
    );
    assert.equal(replicas(), '4');
  });

  it("lets the same action through under an approval's grant, without asking again", async () => {
    const first = agent(['scale', 'deployment', 'api', '--replicas=2']);
    const p = await pending();
    assert.equal(p.rule, 'review-api-scale');
    const d = await api('POST', `/v1/approvals/${p.id}/decision`, { decision: 'approve' });
    assert.equal(d.status, 200, JSON.stringify(d.body));
    assert.equal((await first).code, 0);
    // The same request again: no one is asked.
    const again = await agent(['scale', 'deployment', 'api', '--replicas=2']);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(replicas('api'), '2');
    const list = await api('GET', `/v1/approvals?state=pending&namespace=${ns.name}`);
    assert.deepEqual(list.body.items, []);
    const events = readSpoolDir(sc.spoolDir).filter((x) => x.chaperone.decision.rule === 'review-api-scale');
    const opened = events.find((x) => x.chaperone.decision.approval?.id === p.id)?.chaperone.decision
      .approval;
    const granted = events.at(-1)?.chaperone.decision.approval;
    assert.equal(opened?.state, 'approved');
    assert.ok(opened?.grantId, 'the approval opened a grant');
    assert.deepEqual(
      { state: granted?.state, grantId: granted?.grantId },
      { state: 'approved', grantId: opened?.grantId },
    );
    assert.equal(events.length, 2);
    assert.match(granted?.reason ?? '', /^covered by grant /);
  });

  it('a grant covers only the request approved: another body on the same object is asked about again', async () => {
    // The grant of the test before covers `scale api --replicas=2` only; replicas=5 is another request body.
    const other = agent(['scale', 'deployment', 'api', '--replicas=5']);
    const p = await pending();
    assert.equal(p.rule, 'review-api-scale');
    const view = await api('GET', `/v1/approvals/${p.id}`);
    assert.match(String((view.body.action as { body?: string }).body), /"replicas": 5/);
    assert.equal(replicas('api'), '2', 'held: the grant did not let it through');
    const d = await api('POST', `/v1/approvals/${p.id}/decision`, {
      decision: 'deny',
      reason: 'two is enough',
    });
    assert.equal(d.status, 200, JSON.stringify(d.body));
    const r = await other;
    assert.equal(r.code, 1);
    assert.equal(replicas('api'), '2');
    // The approved request itself still passes by the grant.
    const same = await agent(['scale', 'deployment', 'api', '--replicas=2']);
    assert.equal(same.code, 0, same.stderr);
    const list = await api('GET', `/v1/approvals?state=pending&namespace=${ns.name}`);
    assert.deepEqual(list.body.items, []);
  });
});
