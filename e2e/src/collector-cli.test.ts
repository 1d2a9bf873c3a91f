// The operator verbs against a real collector process: chaperone audit
// query / tail -f / alerts / verify and chaperone replay, as an operator
// would run them. Sidecar tokens are signed by a local issuer whose keys the
// collector reads from --jwks-url (a public-issuer setup; no cluster needed).
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SqliteStore } from '@chaperone/collector';
import { makeChain, streamEvents, TestIssuer } from '@chaperone/collector/testing';
import type { AuditEvent } from '@chaperone/shared';
import {
  CHAPERONE_BIN,
  type CollectorProcess,
  childEnv,
  startCollectorProcess,
} from './collector-process.ts';
import { freePort } from './ports.ts';

const SOURCE = {
  namespace: 'agents',
  pod: 'agent-0',
  podUID: 'uid-agent-0',
  serviceAccount: 'agent',
  sidecarId: 'agents/agent-0/uid-agent-0',
};
const CAST =
  '{"version":2,"width":80,"height":24,"timestamp":1768467600}\n[0.25,"o","$ ls\\r\\n"]\n[0.5,"o","README.md\\r\\n"]\n';

describe('chaperone audit and replay', () => {
  let dir: string;
  let jwks: Server;
  let issuer: TestIssuer;
  let collector: CollectorProcess;
  let dataDir: string;
  let env: Record<string, string>;
  let events: AuditEvent[];

  const run = (args: string[]) =>
    spawnSync(process.execPath, [CHAPERONE_BIN, ...args], { encoding: 'utf8', env, timeout: 60_000 });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'chaperone-cli-'));
    dataDir = join(dir, 'data');
    issuer = await TestIssuer.create();
    jwks = createServer((_q, res) => res.writeHead(200).end(JSON.stringify({ keys: [issuer.jwk] })));
    await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', r));
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, 'cli-test-query-token-0123456789', { mode: 0o600 });
    collector = await startCollectorProcess({
      name: 'collector-cli',
      port: await freePort(),
      logDir: dir,
      args: [
        '--data-dir',
        dataDir,
        '--jwks-url',
        `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks`,
        '--query-token-file',
        tokenFile,
        '--log-level',
        'warn',
      ],
    });
    env = childEnv({ CHAPERONE_COLLECTOR_URL: collector.queryUrl, CHAPERONE_TOKEN_FILE: tokenFile });
    events = makeChain(SOURCE, 40, {
      spec: (i) =>
        i === 5
          ? {
              protocol: 'exec',
              argv: ['rm', '-rf', '/data'],
              action: 'deny',
              rule: 'no-destructive-exec',
              sessionId: 'sess-42',
            }
          : i === 6
            ? { protocol: 'exec', argv: ['ls'], sessionId: 'sess-42' }
            : i % 10 === 0
              ? { verb: 'delete', resource: 'secrets', action: 'deny', rule: 'no-secret-deletes' }
              : {},
    });
    const token = await issuer.token(SOURCE);
    await streamEvents({
      url: collector.url,
      token: () => token,
      sidecarId: SOURCE.sidecarId,
      events,
      deadlineMs: 60_000,
    });
    // Recordings have no ingest message yet (see the collector's README): store one as the exec work will.
    const store = new SqliteStore({ dataDir });
    await store.appendRecording('sess-42', SOURCE.sidecarId, SOURCE, 0, CAST);
    await store.close();
  });

  after(async () => {
    await collector?.stop();
    jwks?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('audit query filters like the API and prints a table or JSON', () => {
    const table = run(['audit', 'query', '--decision', 'deny']);
    assert.equal(table.status, 0, table.stderr);
    const lines = table.stdout.trim().split('\n');
    assert.match(lines[0] ?? '', /^TIME\s+NAMESPACE\/POD\s+PROTOCOL\s+VERB\s+DECISION\s+RULE\s+WHAT$/);
    assert.equal(lines.length, 1 + 5);
    assert.match(table.stdout, /deny\s+no-destructive-exec\s+\$ rm -rf \/data/);
    const json = run(['audit', 'query', '--protocol', 'exec', '--search', 'RM -RF', '-o', 'json']);
    assert.equal(json.status, 0, json.stderr);
    const found = JSON.parse(json.stdout) as AuditEvent[];
    assert.deepEqual(
      found.map((e) => e.chaperone.seq),
      [5],
    );
    const paged = run(['audit', 'query', '--all', '-o', 'jsonl']);
    assert.equal(paged.stdout.trim().split('\n').length, 40);
    const limited = run(['audit', 'query', '--limit', '3', '-o', 'jsonl']);
    assert.deepEqual(
      limited.stdout
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as AuditEvent).chaperone.seq),
      [40, 39, 38],
    );
    const bad = run(['audit', 'query', '--decision', 'perhaps']);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /decision: "perhaps" is not one of allow, deny, mask, review/);
    const noToken = spawnSync(process.execPath, [CHAPERONE_BIN, 'audit', 'query'], {
      encoding: 'utf8',
      env: childEnv({
        CHAPERONE_COLLECTOR_URL: collector.queryUrl,
        CHAPERONE_TOKEN: 'wrong-token-wrong-token',
      }),
    });
    assert.equal(noToken.status, 1);
    assert.match(noToken.stderr, /not valid/);
    // The ingest port, which agents may reach, does not answer queries, and says where to go.
    const onIngest = run(['audit', 'query', '--collector-url', collector.url]);
    assert.equal(onIngest.status, 1);
    assert.match(
      onIngest.stderr,
      /not served on the ingest port.*query listener \(--query-listen-port, here \d+\)/,
    );
  });

  it('replay prints a session in order and saves its recording for asciinema', () => {
    const r = run(['replay', 'sess-42', '--recording', join(dir, 'sess-42.cast')]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /session sess-42: 2 events from agents\/agent-0/);
    assert.match(
      r.stdout,
      /\+\s+0\.000s\s+deny\s+\$ rm -rf \/data\s+\[no-destructive-exec\]\n\+\s+0\.001s\s+allow\s+\$ ls\n/,
    );
    assert.equal(readFileSync(join(dir, 'sess-42.cast'), 'utf8'), CAST);
    const missing = run(['replay', 'no-such-session']);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /no events for session no-such-session/);
  });

  it('audit tail -f prints the newest events, then new ones as they are stored', async () => {
    const child = spawn(
      process.execPath,
      [CHAPERONE_BIN, 'audit', 'tail', '-n', '2', '-f', '--interval', '100', '-o', 'jsonl'],
      {
        env,
      },
    );
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
    });
    const seqs = () =>
      out
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => (JSON.parse(l) as AuditEvent).chaperone.seq);
    const until = async (n: number) => {
      for (let i = 0; i < 600 && seqs().length < n; i++) await new Promise((r) => setTimeout(r, 50));
    };
    try {
      await until(2);
      assert.deepEqual(seqs(), [39, 40]);
      const more = makeChain(SOURCE, 5, { startSeq: 41, prevHash: events[39]?.chaperone.hash as string });
      const token = await issuer.token(SOURCE);
      await streamEvents({
        url: collector.url,
        token: () => token,
        sidecarId: SOURCE.sidecarId,
        events: more,
        deadlineMs: 60_000,
      });
      await until(7);
      assert.deepEqual(seqs(), [39, 40, 41, 42, 43, 44, 45]);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('audit report prints the access review as CSV, JSON or Markdown', () => {
    const range = ['--since', '2026-01-01T00:00:00Z', '--until', '2026-02-01T00:00:00Z'];
    const csv = run(['audit', 'report', ...range, '--format', 'csv']);
    assert.equal(csv.status, 0, csv.stderr);
    const lines = csv.stdout.trimEnd().split('\n');
    assert.equal(lines[0], 'namespace,serviceAccount,category,protocol,verb,resource,count,first,last');
    assert.ok(
      lines.some((l) =>
        /^agents,agent,denied,kubernetes,delete,secrets,4,2026-01-15T09:00:00\.010000Z,2026-01-15T09:00:00\.040000Z$/.test(
          l,
        ),
      ),
      csv.stdout,
    );
    const json = run(['audit', 'report', ...range, '--format', 'json', '--service-account', 'agent']);
    assert.equal(json.status, 0, json.stderr);
    const report = JSON.parse(json.stdout) as { rows: { category: string; count: number }[] };
    const denied = report.rows.filter((r) => r.category === 'denied').reduce((n, r) => n + r.count, 0);
    assert.equal(denied, 5, 'four secret deletes and one exec');
    const md = run(['audit', 'report', ...range, '--namespace', 'agents']);
    assert.equal(md.status, 0, md.stderr);
    assert.match(md.stdout, /^# Access review 2026-01-01T00:00:00\.000000Z – 2026-02-01T00:00:00\.000000Z\n/);
    assert.match(md.stdout, /\n## agents \/ agent\n/);
    const none = run(['audit', 'report', ...range, '--format', 'json', '--namespace', 'elsewhere']);
    assert.deepEqual((JSON.parse(none.stdout) as { rows: unknown[] }).rows, []);
    const bad = run(['audit', 'report', '--since', 'last tuesday']);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /since/);
  });

  it('audit verify reads the store offline and reports every chain', () => {
    const r = run(['audit', 'verify', '--data-dir', dataDir]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(
      r.stdout,
      /^OK\s+agents\/agent-0\/uid-agent-0\s+agents\/agent-0\s+\d+ events, head seq \d+$/m,
    );
    assert.match(r.stdout, /1 chains: 1 intact/);
    const alerts = run(['audit', 'alerts']);
    assert.equal(alerts.status, 0, alerts.stderr);
    assert.match(alerts.stdout, /no integrity alerts/);
  });
});
