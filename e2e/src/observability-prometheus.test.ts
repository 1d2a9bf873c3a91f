// The dashboard and the alerts on a real Prometheus (Debian's) scraping a real sidecar, collector
// and injector. An agent's request is blocked twice by the sidecar; then every panel's query and
// every alert expression is evaluated through Prometheus's HTTP API, the blocked-commands panels
// must show the request under its rule, namespace and protocol with the count the collector
// stored, and the panels' data link must find the request in the collector's query API.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type AuditEvent, createRegistry } from '@chaperone/shared';
import { boundToken, clusterCollectorArgs, createAgentPod } from './collector-kube.ts';
import { type CollectorProcess, startCollectorProcess } from './collector-process.ts';
import { createNamespace, kubeInfo, type TestNamespace } from './environment.ts';
import {
  type Injector,
  optInNamespace,
  podManifest,
  startInjector,
  waitForServiceAccount,
  waitUntilInjecting,
} from './injector-harness.ts';
import { kubectl } from './kubectl.ts';
import {
  ALL_VARIABLES,
  alertRules,
  documentedMetrics,
  ensurePrometheus,
  expandLink,
  expandQuery,
  groupingOf,
  isBlockedPanel,
  loadDashboard,
  type PanelQuery,
  panelQueries,
  parseExposition,
  type QueryVariables,
  startLocalPrometheus,
} from './observability.ts';
import { freePorts } from './ports.ts';
import { type ManagedProcess, waitFor } from './process.ts';
import { type SidecarUnderTest, startSidecar } from './sidecar-harness.ts';

const RULE = 'no-configmap-deletes';
const MASK_RULE = 'mask-configmap-data';
const POLICY = `apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: e2e }
spec:
  defaultAction: allow
  rules:
    - name: ${RULE}
      match: { verbs: [delete], resources: [configmaps] }
      action: deny
      message: Agents may not delete configmaps.
    - name: ${MASK_RULE}
      match: { verbs: [get], resources: [configmaps] }
      action: mask
      mask: { fields: [data] }
`;
const QUERY_TOKEN = 'observability-query-token-0123456';

/** Panels the scripted session gives data to (the others may have none, e.g. approvals). */
const PANELS_WITH_DATA = [
  'Blocked by rule',
  'Blocked by namespace',
  'Blocked by protocol',
  'Top rules',
  'Denials stored by the collector',
  'Masked values',
  'Proxy overhead (p50, p99)',
  'Requests by decision',
  'Spool backlog',
  'Oldest unshipped event',
  'Policy reloads',
  'Ingest rate',
  'Event lag (p50, p99)',
  'Ingest connections and back-pressure',
  'Admissions by result',
  'Skips by reason',
  'Refused by the validating webhook',
  'Admission latency (p99)',
  'Certificate expiry',
];

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

describe('dashboard and alerts on a real Prometheus', () => {
  const kube = kubeInfo();
  let ns: TestNamespace;
  let dir: string;
  let collector: CollectorProcess;
  let collectorMetrics: string;
  let sidecar: SidecarUnderTest;
  let injector: Injector;
  /** The namespace opted in to the injector. */
  let injected: string;
  let prometheus: ManagedProcess;
  let promUrl: string;
  const startedAt = new Date();

  const query = async (expr: string): Promise<Sample[]> => {
    const res = await fetch(`${promUrl}/api/v1/query?${new URLSearchParams({ query: expr })}`);
    const body = (await res.json()) as {
      status: string;
      error?: string;
      data: { resultType: string; result: unknown };
    };
    assert.equal(body.status, 'success', `${expr}: ${body.error}`);
    if (body.data.resultType === 'scalar') return [];
    return body.data.result as Sample[];
  };
  const firstValue = async (expr: string): Promise<number | undefined> => {
    const r = await query(expr);
    return r[0] ? Number(r[0].value[1]) : undefined;
  };
  const agent = (args: string[]) =>
    kubectl(sidecar.agentKubeconfig, [...args, '--cache-dir', join(dir, 'kube-cache')]);
  const waitForValue = (expr: string, want: number, what: string) =>
    waitFor(async () => (await firstValue(expr)) === want, {
      what,
      timeoutMs: 60_000,
      intervalMs: 250,
      process: prometheus,
    });

  before(async () => {
    ensurePrometheus();
    ns = await createNamespace('observability');
    dir = mkdtempSync(join(tmpdir(), 'chaperone-observability-'));
    await waitForServiceAccount(kube, ns.name);
    const sa = kubectl(kube.kubeconfigPath, ['create', 'serviceaccount', 'agent', '-n', ns.name]);
    assert.equal(sa.code, 0, sa.stderr);
    const pod = createAgentPod(ns.name, 'agent-0', 'agent');
    writeFileSync(join(dir, 'query-tokens'), `${QUERY_TOKEN} security *\n`, { mode: 0o600 });
    const tokenFile = join(dir, 'collector-token');
    writeFileSync(tokenFile, boundToken(pod), { mode: 0o600 });
    const [ingestPort, collectorMetricsPort] = (await freePorts(2)) as [number, number];
    collector = await startCollectorProcess({
      name: 'collector-observability',
      port: ingestPort,
      metricsPort: collectorMetricsPort,
      logDir: dir,
      args: [...clusterCollectorArgs(join(dir, 'data')), `--query-tokens-file=${join(dir, 'query-tokens')}`],
    });
    collectorMetrics = `http://127.0.0.1:${collectorMetricsPort}/metrics`;
    sidecar = await startSidecar({
      namespace: ns.name,
      policy: POLICY,
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
    // The injector, answering the real API server for one pod in a namespace opted in to it.
    injector = await startInjector(kube);
    injected = optInNamespace(kube, injector, 'observability');
    await waitUntilInjecting(kube, injected);
    const created = kubectl(kube.kubeconfigPath, ['create', '-n', injected, '-f', '-'], {
      input: podManifest('agent'),
    });
    assert.equal(created.code, 0, created.stderr);

    const started = await startLocalPrometheus({
      dir: join(dir, 'prometheus'),
      sidecars: [sidecar.metricsUrl],
      collector: collectorMetrics,
      injector: `http://127.0.0.1:${injector.metricsPort}/metrics`,
    });
    prometheus = started.process;
    promUrl = started.url;
  });

  after(async () => {
    await prometheus?.stop();
    await sidecar?.stop();
    await collector?.stop();
    await injector?.cleanup();
    await ns?.delete();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('scrapes the sidecar, the collector and the injector, and loads every alert rule', async () => {
    await waitFor(
      async () => {
        const res = await fetch(`${promUrl}/api/v1/targets`);
        const { data } = (await res.json()) as {
          data: { activeTargets: { labels: { job: string }; health: string }[] };
        };
        const up = data.activeTargets.filter((t) => t.health === 'up').map((t) => t.labels.job);
        return up.length === 3;
      },
      { what: 'all three targets to be up', timeoutMs: 60_000, intervalMs: 250, process: prometheus },
    );
    const res = await fetch(`${promUrl}/api/v1/rules`);
    const { data } = (await res.json()) as {
      data: { groups: { rules: { name: string; health: string; lastError?: string }[] }[] };
    };
    const loaded = data.groups.flatMap((g) => g.rules);
    assert.deepEqual(
      loaded.map((r) => r.name).sort(),
      alertRules()
        .map((r) => r.alert)
        .sort(),
    );
    // The "down" alerts name the jobs the way this scrape configuration (and the ServiceMonitors) do.
    for (const alert of ['ChaperoneCollectorDown', 'ChaperoneInjectorDown']) {
      const expr = alertRules().find((r) => r.alert === alert)?.expr ?? '';
      assert.deepEqual(await query(expr), [], `${alert} is quiet while its target is up`);
    }
  });

  it('shows a blocked request in every blocked-commands panel, as many times as the collector stored it', async () => {
    assert.equal(agent(['create', 'configmap', 'notes', '--from-literal=a=b']).code, 0);
    const blockedExpr = `sum(chaperone_blocked_total{namespace="${ns.name}", rule="${RULE}"})`;
    const storedExpr = `sum(chaperone_collector_blocked_events_total{namespace="${ns.name}", rule="${RULE}"})`;
    // Twice, with a scrape in between: a counter's first sample is no increase to Prometheus.
    for (const n of [1, 2]) {
      const denied = agent(['delete', 'configmap', 'notes']);
      assert.equal(denied.code, 1);
      assert.match(denied.stderr, new RegExp(RULE));
      await waitForValue(blockedExpr, n, `Prometheus to see ${n} blocked request(s)`);
      await waitForValue(storedExpr, n, `Prometheus to see the collector store ${n} denial(s)`);
    }
    // A read whose values the sidecar masks, counted under its rule and namespace.
    const read = agent(['get', 'configmap', 'notes', '-o', 'json']);
    assert.equal(read.code, 0, read.stderr);
    assert.doesNotMatch(read.stdout, /"a": "b"/);
    // Two samples of it, so that rates over it exist.
    await waitForValue(
      `count_over_time(chaperone_masked_fields_total{namespace="${ns.name}", rule="${MASK_RULE}"}[1m]) >= 2`,
      2,
      'Prometheus to scrape the masked value twice',
    );
    const stored = await fetch(
      `${collector.queryUrl}/v1/events?${new URLSearchParams({ namespace: ns.name, rule: RULE, decision: 'deny' })}`,
      { headers: { authorization: `Bearer ${QUERY_TOKEN}` } },
    );
    assert.equal(
      ((await stored.json()) as { items: unknown[] }).items.length,
      2,
      'the collector stored both',
    );

    const expected: Record<string, string> = { rule: RULE, namespace: ns.name, protocol: 'kubernetes' };
    const d = loadDashboard();
    const blocked = panelQueries(d).filter((q) => isBlockedPanel(q.panel));
    assert.ok(blocked.length >= 5);
    const vars: QueryVariables = { ...ALL_VARIABLES, range: '10m' };
    for (const v of [vars, { ...vars, namespace: ns.name, protocol: 'kubernetes' }]) {
      for (const { panel, target } of blocked) {
        const grouping = groupingOf(target.expr);
        const rows = await query(expandQuery(target.expr, v));
        const row = rows.find((r) => grouping.every((l) => r.metric[l] === expected[l]));
        assert.ok(
          row,
          `${panel.title} (${JSON.stringify(v)}): no series for ${JSON.stringify(expected)} in ${JSON.stringify(rows)}`,
        );
        assert.ok(Number(row.value[1]) > 0, `${panel.title}: ${row.value[1]}`);
      }
    }
    // Another namespace chosen: the request is not there.
    for (const { panel, target } of blocked) {
      const rows = await query(expandQuery(target.expr, { ...vars, namespace: 'some-other-namespace' }));
      assert.deepEqual(rows, [], panel.title);
    }

    // The data link of the by-rule panel, followed for the series it is on: the collector's answer
    // is the blocked request, both times.
    const byRule = blocked.find((q) => q.panel.title === 'Blocked by rule') as PanelQuery;
    const link = byRule.panel.fieldConfig?.defaults.links?.[0]?.url ?? '';
    const url = expandLink(link, {
      collectorUrl: collector.queryUrl,
      labels: { rule: RULE },
      from: startedAt,
      to: new Date(),
    });
    const res = await fetch(url, { headers: { authorization: `Bearer ${QUERY_TOKEN}` } });
    assert.equal(res.status, 200, url);
    const items = ((await res.json()) as { items: AuditEvent[] }).items.filter(
      (e) => e.chaperone.source.namespace === ns.name,
    );
    assert.equal(items.length, 2, url);
    for (const e of items) {
      assert.equal(e.chaperone.decision.rule, RULE);
      assert.equal(e.chaperone.decision.action, 'deny');
      assert.equal(e.verb, 'delete');
    }
  });

  it('fires the injector alert when pods in an opted-in namespace are refused', async () => {
    // A pod that opts out: the mutating webhook skips it and the validating one refuses it. Twice,
    // with a scrape in between, as for the blocked requests.
    const series = 'chaperone_injector_validations_total{result="denied", reason="opted_out"}';
    for (const n of [1, 2]) {
      const optedOut = kubectl(
        kube.kubeconfigPath,
        ['create', '--dry-run=server', '-n', injected, '-f', '-'],
        {
          input: podManifest('opted-out', { annotations: { 'chaperone.dev/inject': 'false' } }),
        },
      );
      assert.equal(optedOut.code, 1);
      assert.match(optedOut.stderr, /validate\.chaperone\.dev/);
      await waitForValue(`sum(${series})`, n, `Prometheus to see ${n} refused pod(s)`);
    }
    const alert = await waitFor(
      async () => {
        const res = await fetch(`${promUrl}/api/v1/alerts`);
        const { data } = (await res.json()) as {
          data: { alerts: { labels: Record<string, string>; state: string }[] };
        };
        return data.alerts.find(
          (a) => a.labels.alertname === 'ChaperoneInjectorRefusingPods' && a.state === 'firing',
        );
      },
      {
        what: 'ChaperoneInjectorRefusingPods to fire',
        timeoutMs: 60_000,
        intervalMs: 250,
        process: prometheus,
      },
    );
    assert.deepEqual(
      { result: alert.labels.result, reason: alert.labels.reason, severity: alert.labels.severity },
      { result: 'denied', reason: 'opted_out', severity: 'warning' },
    );
  });

  it('evaluates every panel query and alert expression, and the session gives the panels data', async (t) => {
    const empty: string[] = [];
    for (const { panel, target } of panelQueries(loadDashboard())) {
      const rows = await query(expandQuery(target.expr, ALL_VARIABLES));
      if (rows.length === 0) empty.push(`${panel.title} ${target.refId}`);
    }
    t.diagnostic(`panels without data after the session: ${empty.join('; ') || 'none'}`);
    for (const title of PANELS_WITH_DATA) {
      assert.ok(!empty.includes(`${title} A`), `${title} has no data after the session`);
    }
    for (const r of alertRules()) await query(r.expr);
  });

  it('scrapes only metrics that docs/metrics.md lists, with its types and labels', async () => {
    const docs = new Map(documentedMetrics().map((m) => [m.name, m]));
    const defaults = new Set(
      createRegistry({ component: 'x' })
        .getMetricsAsArray()
        .map((m) => (m as unknown as { name: string }).name),
    );
    const bodies = {
      sidecar: await (await fetch(sidecar.metricsUrl)).text(),
      collector: await (await fetch(collectorMetrics)).text(),
      injector: await injector.metrics(),
    };
    for (const [component, body] of Object.entries(bodies)) {
      const families = parseExposition(body);
      assert.ok(families.size > 10, component);
      for (const f of families.values()) {
        if (defaults.has(f.name)) continue;
        const d = docs.get(f.name);
        assert.ok(d, `${component} exposes ${f.name}, which docs/metrics.md does not list`);
        assert.equal(d.type, f.type, f.name);
        assert.equal(d.component, component, f.name);
        for (const l of f.labels) assert.ok(d.labels.includes(l), `${f.name}: label ${l} is not documented`);
      }
    }
  });
});
