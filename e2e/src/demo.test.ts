// `chaperone demo`, run as a user runs it (the real CLI, non-interactively),
// against the e2e suite's control plane (so the run starts no second one):
// its summary must match what the collector actually stored.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { AuditEvent } from '@chaperone/shared';
import { type DemoSummary, readSummary } from './demo.ts';
import { kubeInfo } from './environment.ts';
import { kubectl } from './kubectl.ts';
import { waitFor } from './process.ts';

const BIN = fileURLToPath(new URL('../../bin/chaperone.ts', import.meta.url));

async function allEvents(s: DemoSummary): Promise<AuditEvent[]> {
  const out: AuditEvent[] = [];
  let cursor: string | undefined;
  do {
    const u = new URL('/v1/events', s.collectorUrl);
    u.searchParams.set('namespace', s.namespace);
    u.searchParams.set('limit', '200');
    if (cursor) u.searchParams.set('cursor', cursor);
    const res = await fetch(u, { headers: { authorization: `Bearer ${s.queryToken}` } });
    assert.equal(res.status, 200);
    const page = (await res.json()) as { items: AuditEvent[]; nextCursor?: string | null };
    out.push(...page.items);
    cursor = page.nextCursor ?? undefined;
  } while (cursor);
  return out;
}

describe('chaperone demo', () => {
  it('shows a rogue agent stopped, and its summary matches the stored events', {
    timeout: 240_000,
  }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'chaperone-demo-test-'));
    const summaryFile = join(dir, 'summary.json');
    const child = spawn(
      process.execPath,
      [BIN, 'demo', '--keep', '--use-e2e-control-plane', '--summary-file', summaryFile],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let output = '';
    child.stdout.on('data', (d) => {
      output += d;
    });
    child.stderr.on('data', (d) => {
      output += d;
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      await waitFor(async () => existsSync(summaryFile) || child.exitCode !== null, {
        what: 'the demo to print its summary',
        timeoutMs: 180_000,
        intervalMs: 250,
      });
      assert.ok(existsSync(summaryFile), `the demo ended early:\n${output}`);
      const summary = readSummary(summaryFile);

      // What the user sees.
      for (const step of [
        'collector',
        'PostgreSQL',
        'kubelet stand-in',
        'injector',
        'namespace',
        'agent pod',
        'sidecar',
        'agent session',
        'approvals',
        'audit',
      ]) {
        assert.match(output, new RegExp(`✔ ${step}: .* \\(\\d+\\.\\ds\\)`), `step ${step}:\n${output}`);
      }
      assert.match(output, /denied by rule "chaperone-protect-namespaces"/);
      assert.match(output, /masked \(decodes to "\*\*masked\*\*"\)/);
      assert.match(output, /allowed \d+, denied \d+, masked \d+/);
      // kubectl exec through the sidecar to the stand-in kubelet: the allowed command's output,
      // the denied one's rule message. Fails when the exec guard stops passing sessions through
      // (no "hello from agent") or stops refusing rm (no message), or the demo stops saying the
      // kubelet is a stand-in.
      assert.match(output, /a stand-in kubelet: there is no kubelet here/);
      assert.match(output, /\n\s+hello from agent\n\s+→ allowed/);
      assert.match(
        output,
        /rm -rf \.\/data\n.*agents may not delete or overwrite files in pods\n\s+→ denied/,
      );
      // psql as the agent, one session: a query, a masked column, DROP TABLE refused with the
      // rule's message, then a query that still works (the table intact). Fails when the SQL
      // guard stops denying DROP, ends the session on a denial, or stops masking.
      assert.match(output, /ada \| ada@example\.com[\s\S]*→ allowed/);
      assert.match(output, /ada \| \*\*masked\*\*[\s\S]*→ masked by rule "mask-password-columns"/);
      assert.match(
        output,
        /DROP TABLE users;\n\s+ERROR: .*agents may not drop, truncate or empty tables.*\n\s+→ denied; the session goes on/,
      );
      assert.match(
        output,
        /SELECT count\(\*\) AS users FROM users;\n\s+3\n\s+→ allowed: same session, table intact/,
      );
      assert.match(output, /chaperone replay \S+ --collector-url/);
      // A held kubectl scale approved through the CLI, one denied: the agent reads why.
      assert.match(output, /--replicas=3 {3}# as the agent: held[\s\S]*→ approved: applied as if allowed/);
      assert.match(
        output,
        /kubectl: .*not while customers are online[\s\S]*→ denied: the agent reads who and why/,
      );
      assert.match(output, /deployment web has 3 replicas/);
      // The users' passwords reached neither psql's output nor anything else the demo printed.
      assert.doesNotMatch(output, /hunter2-/);

      // The summary is what the collector stored.
      const events = await allEvents(summary);
      assert.equal(summary.events, events.length);
      const count = (action: string) => events.filter((e) => e.chaperone.decision.action === action).length;
      for (const action of ['allow', 'deny', 'mask'])
        assert.equal(summary.decisions[action] ?? 0, count(action), action);
      assert.ok(count('deny') >= 1 && count('mask') >= 1);
      // The console shows the approver (its own token, RBAC in the demo's namespace) that
      // namespace only, with the overview's totals counted as the stored events say.
      assert.deepEqual(summary.console.namespaces, [summary.namespace]);
      const approved = events.filter((e) => e.chaperone.decision.approval?.state === 'approved').length;
      const blocked = events.filter(
        (e) =>
          e.chaperone.decision.action === 'deny' ||
          (e.chaperone.decision.action === 'review' && e.chaperone.decision.approval?.state !== 'approved'),
      ).length;
      const masked = events.filter(
        (e) => e.chaperone.decision.action === 'mask' || e.chaperone.maskedFields > 0,
      ).length;
      assert.deepEqual(
        {
          blocked: summary.console.blocked,
          masked: summary.console.masked,
          approved: summary.console.approved,
        },
        { blocked, masked, approved },
      );
      assert.ok(approved >= 1 && blocked >= 1 && masked >= 1);
      // By protocol: the summary's counts are the stored events', and each protocol was both
      // allowed and denied (exec and SQL too, not only the Kubernetes API).
      for (const protocol of ['kubernetes', 'exec', 'postgres']) {
        const of = events.filter((e) => e.chaperone.protocol === protocol);
        for (const action of ['allow', 'deny', 'mask']) {
          const n = of.filter((e) => e.chaperone.decision.action === action).length;
          assert.equal(summary.protocols[protocol]?.[action] ?? 0, n, `${protocol} ${action}`);
        }
        assert.ok(
          (summary.protocols[protocol]?.allow ?? 0) >= 1 && (summary.protocols[protocol]?.deny ?? 0) >= 1,
          `${protocol}: ${JSON.stringify(summary.protocols[protocol])}`,
        );
      }
      assert.ok(summary.execSessions.length >= 1, 'no exec session to replay');
      for (const rule of [
        'chaperone-protect-namespaces',
        'chaperone-protect-policy',
        'chaperone-no-token-request',
        'chaperone-no-host-namespaces',
        'default',
        'mask-secret-values',
        'no-destructive-exec',
        'no-destructive-sql',
        'mask-password-columns',
      ]) {
        const stored = events.filter((e) => e.chaperone.decision.rule === rule).length;
        assert.ok(stored >= 1, `no stored event for rule ${rule}`);
        assert.equal(summary.rules[rule]?.count, stored, rule);
      }
      for (const e of events) {
        assert.equal(e.chaperone.source.namespace, summary.namespace);
        assert.equal(e.chaperone.source.pod, summary.pod);
      }
      const ns = kubectl(kubeInfo().kubeconfigPath, [
        'get',
        'namespace',
        summary.namespace,
        '-o',
        'jsonpath={.status.phase}',
      ]);
      assert.equal(ns.stdout, 'Active', 'the denied namespace delete did not happen');

      // The Secret's value (read as cluster admin, straight from the API server) reached neither
      // the agent's screen nor any event the collector stored.
      const secret = kubectl(kubeInfo().kubeconfigPath, [
        'get',
        'secret',
        'db-credentials',
        '-n',
        summary.namespace,
        '-o',
        'jsonpath={.data.password}',
      ]);
      assert.equal(secret.code, 0, secret.stderr);
      const value = Buffer.from(secret.stdout, 'base64').toString('utf8');
      assert.ok(value.length >= 8, 'the demo Secret holds a value');
      const stored = JSON.stringify(events);
      for (const form of [value, secret.stdout]) {
        assert.equal(output.includes(form), false, 'the Secret value was shown to the agent');
        assert.equal(stored.includes(form), false, 'the Secret value reached the collector');
      }

      // Ctrl-C stops everything it started.
      child.kill('SIGINT');
      assert.equal(await exited, 0, output);
      assert.match(output, /stopped everything the demo started/);
      await assert.rejects(fetch(`${summary.collectorUrl}/healthz`), /fetch failed/);
    } finally {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('against a real cluster it installs nothing and prints what it would apply', () => {
    const r = kubectl(kubeInfo().kubeconfigPath, ['get', 'mutatingwebhookconfigurations', '-o', 'name']);
    const before = r.stdout;
    const plan = spawn(process.execPath, [BIN, 'demo', '--kubeconfig', kubeInfo().kubeconfigPath]);
    return new Promise<void>((resolve, reject) => {
      let out = '';
      plan.stdout.on('data', (d) => {
        out += d;
      });
      plan.once('exit', (code) => {
        try {
          assert.equal(code, 0, out);
          assert.match(out, /installs nothing/);
          assert.match(out, /kubectl apply -k .*deploy\/overlays\/dev/);
          assert.match(out, /MutatingWebhookConfiguration\//);
          assert.equal(
            kubectl(kubeInfo().kubeconfigPath, ['get', 'mutatingwebhookconfigurations', '-o', 'name']).stdout,
            before,
          );
          resolve();
        } catch (err) {
          reject(err);
        }
      });
    });
  });
});
