// The approvals page in a real browser: Debian's chromium, driven by
// playwright-core, against the collector's console (/console/).
//
// Two targets:
//   - the real collector (`chaperone collector` as a child process, on the e2e control
//     plane for TokenReview and SubjectAccessReview): the page and its headers, sign-in
//     with a token the real API checks, and the approval flows end to end — actions held
//     through the sidecars' approvals WebSocket with a pod's bound token, approved and
//     denied from the page (the held side hears the decision), past requests, a grant
//     revoked;
//   - a STAND-IN for the approvals HTTP API (`approvalsStandIn` below) behind the real
//     console handler, for what the real API cannot be made to produce here: a requester
//     whose pod name carries markup (real pod names come from verified tokens), a
//     PostgreSQL request without a database hold, a request arriving while the page
//     polls, and CSRF and cross-site attempts counted at the API's door. It was written
//     while the approvals API was still being built and speaks only its contract
//     (shared/src/approval-protocol.ts): a bearer token or 401, ApprovalView/GrantView
//     JSON, a decision body checked as the API must.
/// <reference lib="dom" />
// (page.evaluate callbacks run in the browser.)
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createConsole, findAssetsDir, loadAssets, withConsole } from '@chaperone/collector/console';
import {
  APPROVAL_SUBPROTOCOL,
  APPROVALS_PATH,
  type ApprovalRequestMessage,
  type ApprovalView,
  approvalFingerprint,
  createLogger,
  type DecisionBody,
  type GrantView,
  type HeldAction,
} from '@chaperone/shared';
import type { BrowserContext } from 'playwright-core';
import { WebSocket } from 'undici';
import { parse as parseYaml } from 'yaml';
import { boundToken, clusterCollectorArgs, createAgentPod } from './collector-kube.ts';
import { type CollectorProcess, startCollectorProcess } from './collector-process.ts';
import { launchBrowser, newPage, signIn } from './console-browser.ts';
import { createNamespace, kubeInfo, type TestNamespace } from './environment.ts';
import { freePort } from './ports.ts';
import { ensurePackages } from './system-packages.ts';

const SCREENSHOT = fileURLToPath(new URL('../../docs/images/approvals-page.png', import.meta.url));
const XSS = '<img src=x onerror="window.__xss=1">';
const QUERY_TOKEN = 'console-e2e-query-token-0123456789';
const APPROVER_TOKEN = 'approver-alice-token-0123456789';

// ---------------------------------------------------------------------------
// The stand-in approvals API (see the header): state in memory, the contract's routes.
function approvalsStandIn() {
  const approvals = new Map<string, ApprovalView>();
  const grants = new Map<string, GrantView>();
  const calls: string[] = [];
  /** Most pending requests a list answer carries (as the API's limit does), soonest expiry first; `total` counts all. */
  const list = { cap: Number.POSITIVE_INFINITY };
  const send = (res: ServerResponse, status: number, v: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(v));
  };
  const fail = (res: ServerResponse, status: number, code: string, message: string) =>
    send(res, status, { error: { code, message } });
  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let body = '';
    for await (const c of req) body += c;
    const url = new URL(req.url ?? '/', 'http://x');
    calls.push(`${req.method} ${url.pathname}${url.search}`);
    if (req.headers.authorization !== `Bearer ${APPROVER_TOKEN}`)
      return fail(res, 401, 'unauthenticated', 'the bearer token is not valid (TokenReview said no)');
    const user = 'alice@example.com';
    if (req.method === 'GET' && url.pathname === '/v1/whoami')
      return send(res, 200, { subject: user, namespaces: '*', via: 'static' });
    if (req.method === 'GET' && url.pathname === '/v1/approvals') {
      const state = url.searchParams.get('state') ?? 'pending';
      const all = [...approvals.values()].filter((a) =>
        state === 'all' ? true : state === 'pending' ? a.state === 'pending' : a.state !== 'pending',
      );
      if (state === 'pending') all.sort((a, b) => Date.parse(a.expiresAt) - Date.parse(b.expiresAt));
      return send(res, 200, { items: all.slice(0, list.cap), total: all.length });
    }
    let m = /^\/v1\/approvals\/([^/]+)$/.exec(url.pathname);
    if (req.method === 'GET' && m) {
      const a = approvals.get(m[1] as string);
      return a ? send(res, 200, a) : fail(res, 404, 'not_found', 'no such approval');
    }
    m = /^\/v1\/approvals\/([^/]+)\/decision$/.exec(url.pathname);
    if (req.method === 'POST' && m) {
      const a = approvals.get(m[1] as string);
      if (!a) return fail(res, 404, 'not_found', 'no such approval');
      const d = JSON.parse(body) as DecisionBody;
      if (d.decision !== 'approve' && d.decision !== 'deny')
        return fail(res, 400, 'validation_failed', '/decision: must be approve or deny');
      if (a.state !== 'pending') return fail(res, 409, 'conflict', `the request is already ${a.state}`);
      const at = new Date().toISOString();
      const decided: ApprovalView = {
        ...a,
        state: d.decision === 'approve' ? 'approved' : 'denied',
        decidedAt: at,
        decisions: [
          ...a.decisions,
          { user, decision: d.decision, at, ...(d.reason ? { reason: d.reason } : {}) },
        ],
      };
      approvals.set(a.id, decided);
      return send(res, 200, decided);
    }
    if (req.method === 'GET' && url.pathname === '/v1/grants')
      return send(res, 200, { items: [...grants.values()] });
    m = /^\/v1\/grants\/([^/]+)$/.exec(url.pathname);
    if (req.method === 'DELETE' && m) {
      const g = grants.get(m[1] as string);
      if (!g) return fail(res, 404, 'not_found', 'no such grant');
      const revoked = { ...g, revokedAt: new Date().toISOString(), revokedBy: user };
      grants.set(g.id, revoked);
      return send(res, 200, revoked);
    }
    return fail(res, 404, 'not_found', `no route ${url.pathname}`);
  }
  return { approvals, grants, calls, list, handle };
}

let seq = 0;
function pendingRequest(over: Partial<ApprovalView> = {}): ApprovalView {
  seq++;
  const now = Date.now();
  return {
    id: `0f8fad5b-d9cb-469f-a165-7086772895${String(seq).padStart(2, '0')}`,
    state: 'pending',
    requester: { namespace: 'shop', pod: `agent-${seq}`, serviceAccount: 'agent' },
    protocol: 'kubernetes',
    auditId: `audit-${seq}`,
    summary: 'patch deployments/web -n shop (scale to 0)',
    action: {
      verb: 'patch',
      apiGroup: 'apps',
      resource: 'deployments',
      subresource: 'scale',
      namespace: 'shop',
      name: 'web',
    },
    rule: 'review-scale-down',
    message: 'Scaling production to zero needs a human.',
    approvals: 1,
    approvers: [],
    grantMs: 0,
    createdAt: new Date(now - 20_000).toISOString(),
    expiresAt: new Date(now + 9 * 60_000).toISOString(),
    decisions: [],
    ...over,
  };
}

/**
 * Holds an action as a sidecar does: the approvals WebSocket on the collector's ingest
 * port with the pod's bound token, one request; resolves `pending` with its id, then
 * `decided` with the collector's final word.
 */
function holdAction(ingestUrl: string, token: string, action: HeldAction, summary: string, grantMs = 0) {
  const ws = new WebSocket(`${ingestUrl.replace(/^http/, 'ws')}${APPROVALS_PATH}`, {
    protocols: [APPROVAL_SUBPROTOCOL],
    headers: { authorization: `Bearer ${token}` },
  });
  const messages: Record<string, unknown>[] = [];
  const waiters: (() => void)[] = [];
  ws.addEventListener('message', (e) => {
    messages.push(JSON.parse(String(e.data)) as Record<string, unknown>);
    for (const w of waiters.splice(0)) w();
  });
  const next = (type: string, what: string) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${what} from the collector within 20 s`)), 20_000);
      const check = () => {
        const m = messages.find((x) => x.type === type);
        if (m) {
          clearTimeout(timer);
          resolve(m);
        } else waiters.push(check);
      };
      check();
    });
  ws.addEventListener('open', () => {
    const request: ApprovalRequestMessage = {
      type: 'request',
      auditId: `console-e2e-${Date.now()}-${Math.random().toString(16).slice(2)}`,
      protocol: 'exec',
      summary,
      action,
      fingerprint: approvalFingerprint('exec', action),
      rule: 'review-exec',
      message: `Shell into the database pod ${XSS}`,
      approvals: 1,
      approvers: [],
      timeoutMs: 10 * 60_000,
      grantMs,
    };
    ws.send(JSON.stringify(request));
  });
  return {
    pending: next('pending', 'pending'),
    decided: next('decided', 'decision'),
    close: () => ws.close(),
  };
}

// ---------------------------------------------------------------------------

describe('the approvals page in Chromium', () => {
  let dir: string;
  let collector: CollectorProcess;
  let context: BrowserContext;
  let flowsServer: Server;
  let flows: string;
  let otherSite: Server;
  let standIn: ReturnType<typeof approvalsStandIn>;
  let closeConsole: () => void;
  let adminToken: string;
  let ns: TestNamespace | undefined;

  before(async () => {
    ensurePackages(['chromium'], 'headless Chromium for the approvals page test', (l) =>
      process.stderr.write(`${l}\n`),
    );
    const assetsDir = findAssetsDir();
    assert.ok(assetsDir, 'the console page is built (pnpm --filter @chaperone/collector build)');
    dir = mkdtempSync(join(tmpdir(), 'chaperone-console-'));
    // The real collector, on the e2e control plane (approvers are checked by TokenReview and RBAC).
    const tokenFile = join(dir, 'query-token');
    writeFileSync(tokenFile, QUERY_TOKEN, { mode: 0o600 });
    collector = await startCollectorProcess({
      name: 'collector-console',
      port: await freePort(),
      logDir: dir,
      args: [
        ...clusterCollectorArgs(join(dir, 'data')),
        '--query-token-file',
        tokenFile,
        '--log-level',
        'warn',
      ],
    });

    // The flows: the real console handler in front of the stand-in approvals API.
    standIn = approvalsStandIn();
    const web = createConsole({
      api: standIn.handle,
      assets: loadAssets(assetsDir),
      tls: false,
      logger: createLogger({ name: 'console-e2e', level: 'warn' }),
    });
    closeConsole = () => web.close();
    flowsServer = createServer(withConsole(standIn.handle, web));
    await new Promise<void>((r) => flowsServer.listen(0, '127.0.0.1', r));
    flows = `http://127.0.0.1:${(flowsServer.address() as AddressInfo).port}`;

    // Another origin (another port) for the cross-site attempt.
    otherSite = createServer((_q, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(
        `<form id="f" method="POST" enctype="text/plain" action="${flows}/console/api/v1/approvals/x/decision"><input name='{"decision":"approve","x":"' value='"}'></form>`,
      );
    });
    await new Promise<void>((r) => otherSite.listen(0, '127.0.0.1', r));

    context = await launchBrowser(join(dir, 'profile'), { width: 1200, height: 900 });
  });

  after(async () => {
    await context?.close();
    await collector?.stop();
    await ns?.delete();
    closeConsole?.();
    flowsServer?.close();
    otherSite?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the real collector serves the page; sign-in is checked by its query API; no inline script runs', async () => {
    const { page, violations, errors } = await newPage(context);
    const res = await page.goto(`${collector.queryUrl}/console/approvals`);
    const csp = res?.headers()['content-security-policy'] ?? '';
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.equal(await page.locator('#nav').isVisible(), false, 'no views before sign-in');
    await signIn(page, 'not-a-valid-token-0000000000');
    await page.getByText('the token was not accepted').waitFor();
    // The cluster admin's token from the control plane's kubeconfig: TokenReview knows it, RBAC lets it approve.
    const kubeconfig = parseYaml(readFileSync(kubeInfo().kubeconfigPath, 'utf8')) as {
      users: { user: { token?: string } }[];
    };
    const token = kubeconfig.users[0]?.user.token;
    assert.ok(token, 'the control plane kubeconfig holds a bearer token');
    adminToken = token;
    await signIn(page, adminToken);
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
    // What the real API answers for /v1/approvals (a list, or its error) is what the page shows.
    const probe = await fetch(`${collector.queryUrl}/v1/approvals?state=pending`, {
      headers: { authorization: `Bearer ${adminToken}` },
    });
    if (probe.ok) await page.getByText('No requests are waiting for a decision.').waitFor();
    else {
      const { error } = (await probe.json()) as { error: { message: string } };
      await page.locator('#error').getByText(error.message).waitFor();
    }
    const cookies = await context.cookies(`${collector.queryUrl}/console/`);
    const session = cookies.find((c) => c.name === 'chaperone-console');
    assert.ok(session, 'a session cookie');
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, 'Strict');
    assert.equal(session.path, '/console');
    assert.ok(!(await page.content()).includes(adminToken), 'the token is not in the page');
    assert.equal(await page.evaluate(() => document.cookie), '', 'the page script cannot read the cookie');
    assert.deepEqual(violations, []);
    assert.deepEqual(errors, []);

    // The policy is enforced: an inline script injected into the page does not run.
    await page.evaluate(() => {
      const s = document.createElement('script');
      s.textContent = 'window.__inline = 1';
      document.body.append(s);
    });
    assert.equal(await page.evaluate(() => (window as unknown as { __inline?: number }).__inline), undefined);
    await page.waitForFunction(() => true);
    const reported: string[] = violations; // (assert.deepEqual above narrowed it to never[])
    assert.ok(
      reported.some((v) => v.startsWith('script-src')),
      `a script-src violation: ${reported.join(', ')}`,
    );
    await page.close();
  });

  it('with the real approvals API: held actions approved and denied from the page, the sidecar side hears it; a grant revoked', async () => {
    assert.ok(adminToken, 'signed in to the real collector by the first test');
    ns = await createNamespace('console');
    const pod = createAgentPod(ns.name, 'agent-0');
    const token = boundToken(pod);
    const action: HeldAction = {
      verb: 'exec',
      resource: 'pods',
      subresource: 'exec',
      namespace: ns.name,
      name: 'db-0',
      container: 'db',
      argv: ['sh', '-c', `echo ${XSS}`],
    };
    const approveMe = holdAction(collector.url, token, action, `exec db-0 -- sh -c ${XSS}`);
    const denyMe = holdAction(
      collector.url,
      token,
      { ...action, argv: ['psql', '-c', 'DROP TABLE orders'] },
      'exec db-0 -- psql',
    );
    const approveId = String((await approveMe.pending).approvalId);
    const denyId = String((await denyMe.pending).approvalId);

    const { page, violations, errors } = await newPage(context);
    await page.goto(`${collector.queryUrl}/console/approvals`);
    const card = page.locator(`article[data-id="${approveId}"]`);
    await card.waitFor({ timeout: 15_000 });
    await card.getByText(`${ns.name}/agent-0 (service account default)`).waitFor();
    await card.getByText(`sh -c 'echo ${XSS}'`).waitFor();
    assert.equal(await page.locator('img').count(), 0);
    await card.getByLabel('Reason').fill('looked at the query first');
    await card.getByRole('button', { name: 'Approve' }).click();
    await card.getByText('Decided: approved.').waitFor();
    assert.equal(
      await card.getByRole('button', { name: 'Approve' }).isVisible(),
      false,
      'no buttons once decided',
    );
    const approved = await approveMe.decided;
    assert.equal(approved.state, 'approved');
    assert.deepEqual(
      (approved.decisions as { decision: string; reason?: string }[]).map((d) => [d.decision, d.reason]),
      [['approve', 'looked at the query first']],
    );

    // The same request by its own link (what a notification points at), then denied there.
    await page.goto(`${collector.queryUrl}/console/approvals/${denyId}`);
    const denyCard = page.locator(`article[data-id="${denyId}"]`);
    await denyCard.getByText('psql -c', { exact: false }).waitFor();
    await denyCard.getByLabel('Reason').fill('no schema changes today');
    await denyCard.getByRole('button', { name: 'Deny' }).click();
    await denyCard.getByText('Decided: denied.').waitFor();
    assert.equal((await denyMe.decided).state, 'denied');

    // The page's old address of the tab (before the console had other views) still leads there.
    await page.goto(`${collector.queryUrl}/console/#history`);
    await page.locator(`tr[data-id="${approveId}"]`).getByText('approved', { exact: true }).waitFor();
    await page
      .locator(`tr[data-id="${denyId}"]`)
      .getByText(/no schema changes today/)
      .waitFor();

    // An approval with a grant window opens a grant; it is listed and revoked from the page.
    const grantMe = holdAction(
      collector.url,
      token,
      { ...action, argv: ['ls', '/data'] },
      'exec db-0 -- ls /data',
      3_600_000,
    );
    const grantApprovalId = String((await grantMe.pending).approvalId);
    await page.goto(`${collector.queryUrl}/console/approvals/${grantApprovalId}`);
    const grantCard = page.locator(`article[data-id="${grantApprovalId}"]`);
    await grantCard.getByRole('button', { name: 'Approve' }).click();
    await grantCard.getByText('Decided: approved.').waitFor();
    const grantId = String((await grantMe.decided).grantId);
    await page.goto(`${collector.queryUrl}/console/approvals#grants`);
    const grantRow = page.locator(`tr[data-id="${grantId}"]`);
    await grantRow.getByText('active', { exact: true }).waitFor();
    await grantRow.getByRole('button', { name: 'Revoke' }).click();
    await grantRow.getByText(/^revoked by /).waitFor();
    approveMe.close();
    denyMe.close();
    grantMe.close();
    assert.deepEqual(violations, []);
    assert.deepEqual(errors, []);
    await page.close();
  });

  it('shows a pending request in full, values as text; approve with a reason; see it decided', async () => {
    const xss = pendingRequest({
      requester: { namespace: 'shop', pod: `agent-${XSS}`, serviceAccount: 'agent' },
      protocol: 'exec',
      summary: `exec agent-x -- sh -c ${XSS}`,
      action: {
        verb: 'exec',
        resource: 'pods',
        subresource: 'exec',
        namespace: 'shop',
        name: 'db-0',
        container: 'db',
        argv: ['sh', '-c', `echo ${XSS}`],
      },
      rule: 'review-exec',
      message: `Shell into the database pod ${XSS}`,
    });
    const sql = pendingRequest({
      protocol: 'postgres',
      summary: 'psql: DROP TABLE orders',
      action: { verb: 'DROP', sql: 'DROP TABLE orders', database: 'shop' },
      rule: 'review-ddl',
      message: 'Schema changes need a DBA.',
      requester: { namespace: 'shop', pod: 'agent-7f9c', serviceAccount: 'agent' },
    });
    const scale = pendingRequest();
    for (const a of [scale, xss, sql]) standIn.approvals.set(a.id, a);

    const { page, violations, errors } = await newPage(context);
    await page.goto(`${flows}/console/approvals`);
    await signIn(page, APPROVER_TOKEN);
    const card = page.locator(`article[data-id="${xss.id}"]`);
    await card.waitFor();
    // Every value rendered as text: the markup is visible as characters, never an element.
    await card.getByText(`shop/agent-${XSS} (service account agent)`).waitFor();
    await card.getByText(`sh -c 'echo ${XSS}'`).waitFor();
    await card.getByText(`Shell into the database pod ${XSS}`).waitFor();
    assert.equal(await page.locator('img').count(), 0);
    assert.equal(await page.evaluate(() => (window as unknown as { __xss?: number }).__xss), undefined);
    await page
      .locator(`article[data-id="${sql.id}"]`)
      .getByText('DROP TABLE orders', { exact: true })
      .waitFor();
    await card.getByText(/expires in \d+m \d\ds/).waitFor();

    // The README's picture of the page: rewritten only when asked, so a test run leaves the tree as it was.
    const shot = await page.screenshot({ fullPage: true });
    assert.ok(shot.length > 10_000, 'the page rendered');
    if (process.env.UPDATE_SCREENSHOTS === '1') writeFileSync(SCREENSHOT, shot);

    // Approve with a reason.
    await card.getByLabel('Reason').fill('checked with the on-call DBA');
    await card.getByRole('button', { name: 'Approve' }).click();
    await card.getByText('Decided: approved.').waitFor();
    const stored = standIn.approvals.get(xss.id);
    assert.equal(stored?.state, 'approved');
    assert.deepEqual(
      stored?.decisions.map((d) => [d.user, d.decision, d.reason]),
      [['alice@example.com', 'approve', 'checked with the on-call DBA']],
    );

    // Deny another.
    const sqlCard = page.locator(`article[data-id="${sql.id}"]`);
    await sqlCard.getByLabel('Reason').fill('not during business hours');
    await sqlCard.getByRole('button', { name: 'Deny' }).click();
    await sqlCard.getByText('Decided: denied.').waitFor();
    assert.equal(standIn.approvals.get(sql.id)?.state, 'denied');

    // Past requests: outcomes and approvers.
    await page.getByRole('link', { name: 'Past requests' }).click();
    const row = page.locator(`tr[data-id="${xss.id}"]`);
    await row.getByText('approved', { exact: true }).waitFor();
    await row.getByText('alice@example.com').waitFor();
    await page.locator(`tr[data-id="${sql.id}"]`).getByText('denied', { exact: true }).waitFor();
    await page
      .locator(`tr[data-id="${sql.id}"]`)
      .getByText(/not during business hours/)
      .waitFor();

    // Polling: a request that arrives while the page is open appears without a reload.
    await page.getByRole('link', { name: 'Pending' }).click();
    const late = pendingRequest({ summary: 'delete secrets/db-password -n shop' });
    standIn.approvals.set(late.id, late);
    await page.locator(`article[data-id="${late.id}"]`).waitFor({ timeout: 15_000 });
    assert.ok(standIn.approvals.get(scale.id)?.state === 'pending');
    assert.deepEqual(violations, []);
    assert.deepEqual(errors, []);
    await page.close();
  });

  it('refuses a decision posted without the CSRF token or from another site', async () => {
    const target = pendingRequest({ summary: 'delete namespace shop' });
    standIn.approvals.set(target.id, target);
    const { page } = await newPage(context);
    await page.goto(`${flows}/console/approvals`);
    // Signed in from the previous test (same browser profile): the cookie is there.
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
    const status = await page.evaluate(async (id) => {
      const r = await fetch(`/console/api/v1/approvals/${id}/decision`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ decision: 'approve' }),
      });
      return { status: r.status, body: await r.text() };
    }, target.id);
    assert.equal(status.status, 403);
    assert.match(status.body, /CSRF token/);

    // A form on another origin posting to the console. Another port of the same host is
    // the same *site*: the SameSite cookie goes along, and Sec-Fetch-Site refuses it (403).
    // Another host name (localhost) is another site: no cookie at all (401).
    const port = (otherSite.address() as AddressInfo).port;
    await page.close(); // (no console page left polling the API)
    const other = await context.newPage();
    for (const [host, status] of [
      ['127.0.0.1', 403],
      ['localhost', 401],
    ] as const) {
      const before = standIn.calls.length;
      const apiCalls = () => standIn.calls.slice(before).filter((c) => c.includes(' /v1/'));
      await other.goto(`http://${host}:${port}/`);
      const [answer] = await Promise.all([
        other.waitForResponse((r) => r.url().includes('/console/api/')),
        other.evaluate(() => (document.getElementById('f') as HTMLFormElement).submit()),
      ]);
      await other.waitForURL(/\/console\/api\//);
      assert.equal(answer.status(), status, `a form posted from ${host}:${port}`);
      assert.deepEqual(apiCalls(), [], 'nothing reached the API');
    }
    assert.equal(standIn.approvals.get(target.id)?.state, 'pending');
    await other.close();
  });

  it('lists grants and revokes one; signs out', async () => {
    const approval = pendingRequest({ state: 'approved', grantMs: 3_600_000 });
    standIn.approvals.set(approval.id, approval);
    const grant: GrantView = {
      id: '7c9e6679-7425-40de-944b-e07fc1f90ae7',
      approvalId: approval.id,
      requester: approval.requester,
      rule: approval.rule,
      fingerprint: 'a'.repeat(64),
      summary: approval.summary,
      createdAt: new Date().toISOString(),
      until: new Date(Date.now() + 3_600_000).toISOString(),
    };
    standIn.grants.set(grant.id, grant);
    const { page, violations } = await newPage(context);
    await page.goto(`${flows}/console/approvals#grants`);
    const row = page.locator(`tr[data-id="${grant.id}"]`);
    await row.getByText('active').waitFor();
    await row.getByRole('button', { name: 'Revoke' }).click();
    await row.getByText(/revoked by alice@example.com/).waitFor();
    assert.equal(standIn.grants.get(grant.id)?.revokedBy, 'alice@example.com');

    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByText('Signed out.').waitFor();
    const after = await page.evaluate(async () => (await fetch('/console/api/v1/grants')).status);
    assert.equal(after, 401);
    assert.deepEqual(violations, []);
    await page.close();
  });

  it('writes out bidi, control and invisible characters, warns on the card, and says how many are not shown', async () => {
    // A command that run by sh deletes /srv/prod; drawn raw, the controls would make it read like a comment.
    const RLO = '\u202e';
    const LRI = '\u2066';
    const PDI = '\u2069';
    const script = `echo "rotating logs" ;${RLO} ${LRI}rm -rf /srv/prod${PDI} ; ${LRI}# comment${PDI}`;
    for (const a of standIn.approvals.values()) standIn.approvals.delete(a.id);
    const bidi = pendingRequest({
      protocol: 'exec',
      summary: `exec web-0 -- sh -c ${script}`,
      action: {
        verb: 'exec',
        resource: 'pods',
        subresource: 'exec',
        name: 'web-0',
        container: 'app\u200b',
        argv: ['sh', '-c', script],
      },
      rule: 'review-exec',
      message: `rotate logs\u2028Approved by security already`,
      expiresAt: new Date(Date.now() + 60_000).toISOString(),
    });
    // Plain, with the details a Kubernetes write carries: its line breaks are layout, not a warning.
    const plain = pendingRequest({
      action: {
        verb: 'update',
        resource: 'configmaps',
        name: 'settings',
        query: ['fieldManager=kubectl', 'dryRun=All'],
        body: '{\n  "data": {\n    "mode": "fast"\n  }\n}',
        digest: 'ab'.repeat(32),
      },
      expiresAt: new Date(Date.now() + 120_000).toISOString(),
    });
    const later = pendingRequest({ expiresAt: new Date(Date.now() + 600_000).toISOString() });
    for (const a of [later, plain, bidi]) standIn.approvals.set(a.id, a);
    standIn.list.cap = 2;
    const { page, violations, errors } = await newPage(context);
    await page.goto(`${flows}/console/approvals`);
    await signIn(page, APPROVER_TOKEN);
    const card = page.locator(`article[data-id="${bidi.id}"]`);
    await card.waitFor();
    const shownArgv = `sh -c 'echo "rotating logs" ;\\u{202e} \\u{2066}rm -rf /srv/prod\\u{2069} ; \\u{2066}# comment\\u{2069}'`;
    await card.locator('code.argv').getByText(shownArgv, { exact: true }).waitFor();
    const text = (await card.textContent()) ?? '';
    for (const c of [RLO, LRI, PDI, '\u200b', '\u2028'])
      assert.ok(!text.includes(c), `U+${c.charCodeAt(0).toString(16)} is not drawn raw`);
    assert.ok(text.includes('app\\u{200b}'), 'the container name too');
    assert.ok(text.includes('rotate logs\\u{2028}Approved by security already'), 'the message too');
    await card
      .getByRole('alert')
      .getByText(/control, bidirectional or invisible characters/)
      .waitFor();
    const plainCard = page.locator(`article[data-id="${plain.id}"]`);
    await plainCard.waitFor();
    assert.equal(await plainCard.getByRole('alert').count(), 0, 'no warning on a plain request');
    assert.equal(
      await plainCard.locator('pre.body').textContent(),
      '{\n  "data": {\n    "mode": "fast"\n  }\n}',
      'the body in a pre block, its lines kept',
    );
    await plainCard.locator('ul.query').getByText('dryRun=All', { exact: true }).waitFor();
    await plainCard.locator('code.digest').getByText('ab'.repeat(32)).waitFor();
    // Two of three pending requests, the soonest to expire: the page says so.
    await page.getByText('Showing 2 of 3 pending requests', { exact: false }).waitFor();
    assert.equal(await page.locator(`article[data-id="${later.id}"]`).count(), 0);
    standIn.list.cap = Number.POSITIVE_INFINITY;
    await page.locator(`article[data-id="${later.id}"]`).waitFor({ timeout: 15_000 });
    await page.getByText('Showing 2 of 3', { exact: false }).waitFor({ state: 'hidden' });
    assert.deepEqual(violations, []);
    assert.deepEqual(errors, []);
    await page.close();
  });
});
