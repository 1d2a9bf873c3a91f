// The Grafana dashboard in deploy/observability: its structure (a datasource variable every panel
// uses, namespace and protocol variables, a layout that fits), every query parsed by Debian's
// promtool with Grafana's variables filled in, every metric it reads listed in docs/metrics.md,
// and every blocked-commands panel linking to a query the collector itself accepts.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseEventFilter } from '@chaperone/collector';
import YAML from 'yaml';
import {
  ALL_VARIABLES,
  type Dashboard,
  documentedMetrics,
  expandLink,
  expandQuery,
  groupingOf,
  isBlockedPanel,
  loadDashboard,
  metricsIn,
  panelQueries,
  promtool,
} from './observability.ts';

/** Grafana's reference to the dashboard's datasource variable. */
const DATASOURCE = ['$', '{datasource}'].join('');

describe('Grafana dashboard', () => {
  let d: Dashboard;
  let dir: string;
  before(() => {
    d = loadDashboard();
    dir = mkdtempSync(join(tmpdir(), 'chaperone-dashboard-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('takes its datasource, namespace, protocol and collector URL from variables', () => {
    assert.ok(d.uid && d.title && d.schemaVersion >= 36);
    const vars = new Map(d.templating.list.map((v) => [v.name, v]));
    const ds = vars.get('datasource');
    assert.equal(ds?.type, 'datasource');
    assert.equal(ds?.query, 'prometheus');
    for (const name of ['namespace', 'protocol']) {
      const v = vars.get(name);
      assert.equal(v?.type, 'query', name);
      assert.equal(v?.datasource?.uid, DATASOURCE, `${name} is read from the chosen datasource`);
      assert.ok(v?.includeAll && v.multi && v.allValue === '.*', `${name}: All and several values`);
      assert.match(JSON.stringify(v?.query), new RegExp(`label_values\\(chaperone_\\w+, ${name}\\)`));
    }
    assert.equal(vars.get('collector_url')?.type, 'textbox');
  });

  it('lays out every panel on the 24-column grid without overlaps, each on the datasource variable', () => {
    const ids = new Set<number>();
    const cells = new Map<string, string>();
    for (const p of d.panels) {
      assert.ok(!ids.has(p.id), `panel id ${p.id} used twice`);
      ids.add(p.id);
      const { x, y, w, h } = p.gridPos;
      assert.ok(x >= 0 && w > 0 && x + w <= 24 && h > 0, `${p.title} fits the grid`);
      for (let i = x; i < x + w; i++)
        for (let j = y; j < y + h; j++) {
          const key = `${i},${j}`;
          assert.ok(!cells.has(key), `${p.title} overlaps ${cells.get(key)}`);
          cells.set(key, p.title);
        }
      if (p.type === 'row') continue;
      assert.ok(p.targets?.length, `${p.title} has queries`);
      assert.ok(p.description, `${p.title} says what it shows`);
      assert.deepEqual(p.datasource, { type: 'prometheus', uid: DATASOURCE }, p.title);
      for (const t of p.targets ?? []) assert.deepEqual(t.datasource, p.datasource, `${p.title} ${t.refId}`);
    }
  });

  it('has the panels an operator needs on day one', () => {
    const all = panelQueries(d)
      .map((q) => q.target.expr)
      .join('\n');
    for (const metric of [
      'chaperone_blocked_total',
      'chaperone_masked_fields_total',
      'chaperone_approvals_pending',
      'chaperone_approvals_decided_total',
      'chaperone_proxy_overhead_seconds_bucket',
      'chaperone_spool_events',
      'chaperone_spool_oldest_unacked_seconds',
      'chaperone_collector_events_total',
      'chaperone_collector_event_lag_seconds_bucket',
      'chaperone_collector_integrity_alerts_total',
      'chaperone_injector_admissions_total',
      'chaperone_injector_admission_duration_seconds_bucket',
      'chaperone_injector_certificate_expiry_timestamp_seconds',
    ]) {
      assert.ok(all.includes(metric), `a panel shows ${metric}`);
    }
    for (const by of ['rule', 'namespace', 'protocol']) {
      assert.ok(
        panelQueries(d).some(
          (q) => /chaperone_blocked_total/.test(q.target.expr) && groupingOf(q.target.expr).join() === by,
        ),
        `blocked commands over time by ${by}`,
      );
    }
  });

  it('has queries promtool parses, reading only metrics listed in docs/metrics.md', () => {
    const documented = new Set(documentedMetrics().map((m) => m.name));
    const rules = panelQueries(d).map(({ panel, target }) => {
      for (const m of metricsIn(target.expr))
        assert.ok(documented.has(m), `${panel.title} reads ${m}, which docs/metrics.md does not list`);
      return {
        record: `chaperone:panel_${panel.id}_${target.refId}`,
        expr: expandQuery(target.expr, ALL_VARIABLES),
      };
    });
    const file = join(dir, 'panels.rules.yml');
    writeFileSync(file, YAML.stringify({ groups: [{ name: 'dashboard', rules }] }));
    const r = promtool(['check', 'rules', file]);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, new RegExp(`SUCCESS: ${rules.length} rules found`));
  });

  it("links each blocked-commands panel to the collector's query of the same series and time range", () => {
    const blocked = d.panels.filter(isBlockedPanel);
    assert.ok(blocked.length >= 4);
    const from = new Date('2026-03-01T10:00:00.000Z');
    const to = new Date('2026-03-01T16:00:00.000Z');
    for (const p of blocked) {
      const links = p.fieldConfig?.defaults.links ?? [];
      assert.equal(links.length, 1, `${p.title} has one data link`);
      const grouping = groupingOf(p.targets?.[0]?.expr ?? '');
      assert.ok(grouping.length > 0, `${p.title} groups its series`);
      const value = (l: string) => (l === 'protocol' ? 'postgres' : `${l}-value`);
      const labels = Object.fromEntries(grouping.map((l) => [l, value(l)]));
      const url = new URL(
        expandLink(links[0]?.url ?? '', { collectorUrl: 'https://collector:8444', labels, from, to }),
      );
      assert.equal(url.pathname, '/v1/events', p.title);
      // What the collector reads from it: the series' labels, denials only, the time range.
      const filter = parseEventFilter((n) => url.searchParams.getAll(n), Date.now() * 1000);
      assert.deepEqual(filter.decision, ['deny'], p.title);
      for (const l of grouping) {
        assert.deepEqual((filter as unknown as Record<string, unknown>)[l], [value(l)], `${p.title}: ${l}`);
      }
      assert.equal(filter.sinceUs, from.getTime() * 1000, `${p.title}: since`);
      assert.equal(filter.untilUs, to.getTime() * 1000, `${p.title}: until`);
    }
  });
});
