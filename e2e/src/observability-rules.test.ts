// The alert rules in deploy/observability: Debian's promtool checks both forms (the plain rule
// file and the PrometheusRule's spec) and runs the unit tests beside them, every alert has a
// test where it fires and one where it stays quiet, and a runbook section its annotation links.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import YAML from 'yaml';
import {
  alertRules,
  documentedMetrics,
  loadRules,
  METRICS_DOC,
  metricsIn,
  OBSERVABILITY_DIR,
  PROMETHEUS_RULE_FILE,
  promtool,
  RULES_FILE,
  RULES_TEST_FILE,
  RUNBOOKS_DOC,
} from './observability.ts';

interface RulesTestFile {
  rule_files: string[];
  tests: {
    name: string;
    input_series: { series: string; values: string }[];
    alert_rule_test?: { eval_time: string; alertname: string; exp_alerts: unknown[] }[];
  }[];
}

/** GitHub's anchor for a Markdown heading. */
function anchorOf(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^a-z0-9 -]/g, '')
    .replace(/ /g, '-');
}

describe('alert rules', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'chaperone-rules-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('pass promtool check rules, as a rule file and as the PrometheusRule spec', () => {
    const plain = promtool(['check', 'rules', RULES_FILE]);
    assert.equal(plain.code, 0, plain.output);
    const spec = (YAML.parse(readFileSync(PROMETHEUS_RULE_FILE, 'utf8')) as { spec: unknown }).spec;
    const specFile = join(dir, 'prometheus-rule-spec.yml');
    writeFileSync(specFile, YAML.stringify(spec));
    const operator = promtool(['check', 'rules', specFile]);
    assert.equal(operator.code, 0, operator.output);
    assert.match(plain.output, new RegExp(`SUCCESS: ${alertRules().length} rules found`));
  });

  it('are the same in the PrometheusRule as in the plain rule file', () => {
    const rule = YAML.parse(readFileSync(PROMETHEUS_RULE_FILE, 'utf8')) as {
      kind: string;
      metadata: { namespace: string };
      spec: unknown;
    };
    assert.equal(rule.kind, 'PrometheusRule');
    assert.equal(rule.metadata.namespace, 'chaperone-system');
    assert.deepEqual(rule.spec, loadRules());
  });

  it('pass their promtool unit tests', () => {
    const r = promtool(['test', 'rules', RULES_TEST_FILE], OBSERVABILITY_DIR);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /SUCCESS/);
  });

  it('have each alert tested firing and not firing', () => {
    const tests = YAML.parse(readFileSync(RULES_TEST_FILE, 'utf8')) as RulesTestFile;
    assert.deepEqual(tests.rule_files, ['chaperone.rules.yml']);
    const evals = tests.tests.flatMap((t) => t.alert_rule_test ?? []);
    for (const { alert } of alertRules()) {
      const mine = evals.filter((e) => e.alertname === alert);
      assert.ok(
        mine.some((e) => e.exp_alerts.length > 0),
        `${alert}: no test where it fires`,
      );
      assert.ok(
        mine.some((e) => e.exp_alerts.length === 0),
        `${alert}: no test where it stays quiet`,
      );
    }
  });

  it('link each alert to its runbook section, and read only documented metrics', () => {
    const runbooks = readFileSync(RUNBOOKS_DOC, 'utf8');
    const anchors = new Set([...runbooks.matchAll(/^## (.+)$/gm)].map((m) => anchorOf(m[1] as string)));
    const documented = new Set(documentedMetrics().map((m) => m.name));
    const names = new Set<string>();
    for (const r of alertRules()) {
      assert.ok(!names.has(r.alert), `${r.alert} defined twice`);
      names.add(r.alert);
      const url = r.annotations?.runbook_url ?? '';
      const m = /\/docs\/runbooks\.md#([a-z0-9-]+)$/.exec(url);
      assert.ok(m, `${r.alert}: runbook_url ${url} does not point into docs/runbooks.md`);
      assert.ok(anchors.has(m[1] as string), `${r.alert}: docs/runbooks.md has no section #${m[1]}`);
      assert.equal(m[1], anchorOf(r.alert), `${r.alert}: its runbook section is named after it`);
      assert.ok(r.annotations?.summary, `${r.alert}: a summary`);
      assert.match(r.labels?.severity ?? '', /^(warning|critical)$/, `${r.alert}: severity`);
      for (const metric of metricsIn(r.expr)) {
        if (metric !== 'up')
          assert.ok(documented.has(metric), `${r.alert} reads ${metric}, missing from ${METRICS_DOC}`);
      }
    }
    assert.equal(anchors.size, names.size, 'one runbook section per alert, and no section without one');
  });
});
