/**
 * What the observability tests share: the files in deploy/observability and
 * docs/metrics.md read into plain values, the dashboard's queries with
 * Grafana's variables filled in, and Debian's promtool.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { REPO_ROOT } from './injector-harness.ts';
import { freePort } from './ports.ts';
import { type ManagedProcess, startProcess, waitFor } from './process.ts';
import { ensurePackages } from './system-packages.ts';

export const OBSERVABILITY_DIR = join(REPO_ROOT, 'deploy', 'observability');
export const RULES_FILE = join(OBSERVABILITY_DIR, 'chaperone.rules.yml');
export const RULES_TEST_FILE = join(OBSERVABILITY_DIR, 'chaperone.rules.test.yml');
export const PROMETHEUS_RULE_FILE = join(OBSERVABILITY_DIR, 'prometheus-rule.yaml');
export const DASHBOARD_FILE = join(OBSERVABILITY_DIR, 'chaperone-dashboard.json');
export const METRICS_DOC = join(REPO_ROOT, 'docs', 'metrics.md');
export const RUNBOOKS_DOC = join(REPO_ROOT, 'docs', 'runbooks.md');

/** Debian's `prometheus` package: the server and promtool, installed on first use. */
export function ensurePrometheus(): void {
  ensurePackages(['prometheus'], 'Prometheus and promtool for the observability tests', (l) =>
    console.log(l),
  );
}

export interface LocalPrometheus {
  readonly url: string;
  readonly process: ManagedProcess;
  stop(): Promise<void>;
}

/**
 * Debian's Prometheus on a loopback port, scraping the given metrics URLs every
 * second under the job names the alert rules expect, with the rules loaded.
 * The collector's job honours the labels it exposes, as its ServiceMonitor does
 * (its namespace labels are the agents').
 */
export async function startLocalPrometheus(opts: {
  dir: string;
  sidecars: readonly string[];
  collector: string;
  injector: string;
}): Promise<LocalPrometheus> {
  ensurePrometheus();
  const host = (url: string) => new URL(url).host;
  const config = {
    global: { scrape_interval: '1s', evaluation_interval: '1s' },
    rule_files: [RULES_FILE],
    scrape_configs: [
      { job_name: 'chaperone-sidecars', static_configs: [{ targets: opts.sidecars.map(host) }] },
      {
        job_name: 'chaperone-collector',
        honor_labels: true,
        static_configs: [{ targets: [host(opts.collector)] }],
      },
      { job_name: 'chaperone-injector', static_configs: [{ targets: [host(opts.injector)] }] },
    ],
  };
  mkdirSync(opts.dir, { recursive: true });
  writeFileSync(join(opts.dir, 'prometheus.yml'), YAML.stringify(config));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const process = startProcess({
    name: 'prometheus',
    command: 'prometheus',
    args: [
      `--config.file=${join(opts.dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(opts.dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    logFile: join(opts.dir, 'prometheus.log'),
  });
  await waitFor(async () => (await fetch(`${url}/-/ready`)).ok, {
    what: 'Prometheus to be ready',
    timeoutMs: 60_000,
    intervalMs: 200,
    process,
  });
  return {
    url,
    process,
    stop: async () => {
      await process.stop();
    },
  };
}

export function promtool(args: readonly string[], cwd?: string): { code: number; output: string } {
  ensurePrometheus();
  const r = spawnSync('promtool', args, { encoding: 'utf8', ...(cwd ? { cwd } : {}) });
  return { code: r.status ?? -1, output: `${r.stdout}${r.stderr}` };
}

// --- alert rules

export interface AlertRule {
  readonly alert: string;
  readonly expr: string;
  readonly for?: string;
  readonly labels?: Record<string, string>;
  readonly annotations?: Record<string, string>;
}

export interface RuleGroups {
  readonly groups: readonly { name: string; rules: readonly AlertRule[] }[];
}

export function loadRules(): RuleGroups {
  return YAML.parse(readFileSync(RULES_FILE, 'utf8')) as RuleGroups;
}

export function alertRules(): AlertRule[] {
  return loadRules().groups.flatMap((g) => g.rules);
}

// --- the dashboard

export interface DashboardTarget {
  readonly refId: string;
  readonly expr: string;
  readonly legendFormat?: string;
  readonly instant?: boolean;
  readonly datasource?: { type: string; uid: string };
}

export interface DataLink {
  readonly title: string;
  readonly url: string;
}

export interface DashboardPanel {
  readonly id: number;
  readonly type: string;
  readonly title: string;
  readonly description?: string;
  readonly datasource?: { type: string; uid: string };
  readonly gridPos: { h: number; w: number; x: number; y: number };
  readonly targets?: readonly DashboardTarget[];
  readonly fieldConfig?: { defaults: { links?: readonly DataLink[]; unit?: string } };
}

export interface TemplateVariable {
  readonly name: string;
  readonly type: string;
  readonly query: unknown;
  readonly datasource?: { type: string; uid: string };
  readonly allValue?: string;
  readonly includeAll?: boolean;
  readonly multi?: boolean;
}

export interface Dashboard {
  readonly uid: string;
  readonly title: string;
  readonly schemaVersion: number;
  readonly templating: { list: readonly TemplateVariable[] };
  readonly panels: readonly DashboardPanel[];
}

export function loadDashboard(): Dashboard {
  return JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as Dashboard;
}

export interface PanelQuery {
  readonly panel: DashboardPanel;
  readonly target: DashboardTarget;
}

export function panelQueries(d: Dashboard): PanelQuery[] {
  return d.panels.flatMap((panel) => (panel.targets ?? []).map((target) => ({ panel, target })));
}

/** Values for Grafana's variables, as Grafana would put them in a query. */
export interface QueryVariables {
  /** Regex for `$namespace` (All is `.*`, the variable's allValue). */
  readonly namespace: string;
  readonly protocol: string;
  /** A PromQL duration for `$__rate_interval`. */
  readonly rateInterval: string;
  /** A PromQL duration for `$__range` (the dashboard's time range). */
  readonly range: string;
}

export const ALL_VARIABLES: QueryVariables = {
  namespace: '.*',
  protocol: '.*',
  rateInterval: '1m',
  range: '1h',
};

/** A panel's query as Grafana sends it to Prometheus; fails on a variable it does not know. */
export function expandQuery(expr: string, v: QueryVariables): string {
  const out = expr
    .replaceAll('$__rate_interval', v.rateInterval)
    .replaceAll('$__range', v.range)
    .replaceAll('$namespace', v.namespace)
    .replaceAll('$protocol', v.protocol);
  const left = /\$\{?\w+/.exec(out);
  if (left) throw new Error(`query names a variable the dashboard does not define: ${left[0]} in ${expr}`);
  return out;
}

/** Metric names a PromQL expression reads, with histogram suffixes taken off. */
export function metricsIn(expr: string): string[] {
  const names = new Set<string>();
  for (const m of expr.matchAll(/\b(chaperone_[a-z0-9_]+|up)\b/g)) {
    names.add((m[1] as string).replace(/_(bucket|sum|count)$/, ''));
  }
  return [...names];
}

/** Labels of a query's outermost `by (…)`: the labels each series it returns has. */
export function groupingOf(expr: string): string[] {
  const m = /^\s*(?:topk\(\s*\d+,\s*)?\w+\s+by\s*\(([^)]*)\)/.exec(expr);
  return m ? (m[1] as string).split(',').map((s) => s.trim()) : [];
}

/** A data link with Grafana's variables filled in for one series and a time range. */
export function expandLink(
  url: string,
  v: { collectorUrl: string; labels: Record<string, string>; from: Date; to: Date },
): string {
  const fixed: Record<string, string> = {
    collector_url: v.collectorUrl,
    '__from:date:iso': v.from.toISOString(),
    '__to:date:iso': v.to.toISOString(),
  };
  return url.replace(/\$\{([^}]*)\}/g, (whole, name: string) => {
    const known = fixed[name];
    if (known !== undefined) return known;
    const label = /^__field\.labels\.(\w+)$/.exec(name)?.[1];
    if (label === undefined) throw new Error(`link names a variable it cannot fill: ${whole} in ${url}`);
    const value = v.labels[label];
    if (value === undefined)
      throw new Error(`link names label ${label}, which the series does not have: ${url}`);
    return encodeURIComponent(value);
  });
}

/** Panels about blocked commands: the ones that must link to the collector's query. */
export function isBlockedPanel(p: DashboardPanel): boolean {
  return (p.targets ?? []).some((t) => /chaperone_(collector_)?blocked_(events_)?total/.test(t.expr));
}

// --- docs/metrics.md

export interface DocumentedMetric {
  readonly name: string;
  readonly type: string;
  readonly labels: readonly string[];
  readonly component: string;
  readonly help: string;
  /** Marked "(approvals)": checked against the code once the code registers it. */
  readonly approvals: boolean;
}

/** The rows of the metrics table (the one whose header starts `| Metric | Type | Labels`). */
export function parseMetricsDoc(markdown: string): DocumentedMetric[] {
  const lines = markdown.split('\n');
  const start = lines.findIndex((l) => /^\|\s*Metric\s*\|\s*Type\s*\|\s*Labels\s*\|/.test(l));
  if (start < 0) throw new Error('docs/metrics.md has no table headed | Metric | Type | Labels |');
  const rows: DocumentedMetric[] = [];
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith('|')) break;
    const cells = line
      .slice(1, -1)
      .split('|')
      .map((c) => c.trim());
    const [name, type, labels, component, ...help] = cells as [string, string, string, string, ...string[]];
    rows.push({
      name: name.replace(/`/g, ''),
      type,
      labels: labels === '—' ? [] : labels.split(',').map((l) => l.trim().replace(/`/g, '')),
      component: component.replace(/\s*\(approvals\)$/, ''),
      help: help.join('|'),
      approvals: component.endsWith('(approvals)'),
    });
  }
  return rows;
}

export function documentedMetrics(): DocumentedMetric[] {
  return parseMetricsDoc(readFileSync(METRICS_DOC, 'utf8'));
}

// --- the exposition format

export interface ExposedFamily {
  readonly name: string;
  readonly type: string;
  /** Label names seen on its samples, without `component` and the histogram's `le`. */
  readonly labels: Set<string>;
}

/** Families in a `/metrics` body, by the `# TYPE` lines and the labels of their samples. */
export function parseExposition(text: string): Map<string, ExposedFamily> {
  const families = new Map<string, ExposedFamily>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type)
      families.set(type[1] as string, {
        name: type[1] as string,
        type: type[2] as string,
        labels: new Set(),
      });
  }
  for (const line of text.split('\n')) {
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}/.exec(line);
    if (!sample) continue;
    const name = sample[1] as string;
    const family = families.get(name) ?? families.get(name.replace(/_(bucket|sum|count)$/, ''));
    if (!family) continue;
    for (const m of (sample[2] as string).matchAll(/(\w+)="/g)) {
      const l = m[1] as string;
      if (l !== 'component' && l !== 'le') family.labels.add(l);
    }
  }
  return families;
}
