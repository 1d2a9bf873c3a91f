/**
 * The console's rollup tables (rollup-plan.ts decides what to add), written
 * once for both backends: their schema, the upserts a commit runs (one
 * statement per row in SQLite, one per table with arrays in PostgreSQL, the
 * same merge), what retention deletes, and the reads behind the overview, the
 * sessions list and the access report. Reads run through `RunSql`, so each
 * backend only says how a query is executed.
 *
 * The overview counts whole minutes: `since` is rounded down and `until` up
 * to the minute, and the range is read from the coarsest rows that fit it
 * (whole days, then 6 hours, hours, quarter hours, minutes) — for the series
 * never coarser than its bucket. The access report counts whole UTC days.
 */
import { ValidationError } from '@chaperone/shared';
import { ACCESS_CATEGORIES } from '../events/console-answers.ts';
import { microsToRfc3339 } from '../events/time.ts';
import type { Dialect } from './query-sql.ts';
import { SqlBuilder } from './query-sql.ts';
import {
  type AccessDelta,
  type AgentDelta,
  COUNT_SPANS,
  type CountDelta,
  DAY_US,
  type RollupDelta,
  type SessionDelta,
} from './rollup-plan.ts';
import type {
  AccessReport,
  AccessReportRow,
  OverviewCounts,
  RollupQuery,
  SessionPage,
  SessionSummary,
} from './store.ts';

type Row = Record<string, unknown>;
export type RunSql = (sql: string, params: readonly unknown[]) => Promise<readonly Row[]>;

/**
 * The rollup tables. In SQLite the count tables are WITHOUT ROWID: each is
 * one B-tree in key order, so a range of buckets (period, then bucket first)
 * is read in one sequential pass, not an index lookup per row; the access
 * table is kept in report order (identity first), so the report groups as it
 * reads, with no sort, and a report for some namespaces reads only theirs.
 */
export function rollupTablesSql(dialect: Dialect['name']): string {
  const int = dialect === 'sqlite' ? 'INTEGER' : 'BIGINT';
  const clustered = dialect === 'sqlite' ? ' WITHOUT ROWID' : '';
  // SQLite would read a report's days through this index and sort; it scans the table in report order instead.
  const dayIndex = dialect === 'sqlite' ? '' : 'CREATE INDEX rollup_access_day ON rollup_access (day_us);';
  return `
  CREATE TABLE rollup_counts (
    span_s INTEGER NOT NULL,
    bucket_us ${int} NOT NULL,
    namespace TEXT NOT NULL,
    protocol TEXT NOT NULL,
    rule TEXT NOT NULL,
    action TEXT NOT NULL,
    total ${int} NOT NULL,
    blocked ${int} NOT NULL,
    masked ${int} NOT NULL,
    approved ${int} NOT NULL,
    PRIMARY KEY (span_s, bucket_us, namespace, protocol, rule, action)
  )${clustered};
  CREATE TABLE rollup_agents (
    span_s INTEGER NOT NULL,
    bucket_us ${int} NOT NULL,
    namespace TEXT NOT NULL,
    service_account TEXT NOT NULL,
    pod TEXT NOT NULL,
    protocol TEXT NOT NULL,
    total ${int} NOT NULL,
    blocked ${int} NOT NULL,
    masked ${int} NOT NULL,
    approved ${int} NOT NULL,
    last_us ${int} NOT NULL,
    PRIMARY KEY (span_s, bucket_us, namespace, service_account, pod, protocol)
  )${clustered};
  CREATE TABLE rollup_access (
    day_us ${int} NOT NULL,
    namespace TEXT NOT NULL,
    service_account TEXT NOT NULL,
    category TEXT NOT NULL,
    protocol TEXT NOT NULL,
    verb TEXT NOT NULL,
    resource TEXT NOT NULL,
    hits ${int} NOT NULL,
    first_us ${int} NOT NULL,
    last_us ${int} NOT NULL,
    PRIMARY KEY (namespace, service_account, category, protocol, verb, resource, day_us)
  )${clustered};
  ${dayIndex}
  CREATE TABLE rollup_sessions (
    session_id TEXT NOT NULL,
    sidecar_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    namespace TEXT NOT NULL,
    pod TEXT NOT NULL,
    service_account TEXT NOT NULL,
    started_us ${int} NOT NULL,
    last_us ${int} NOT NULL,
    events ${int} NOT NULL,
    blocked ${int} NOT NULL,
    closed INTEGER NOT NULL,
    summary TEXT NOT NULL,
    PRIMARY KEY (session_id, sidecar_id)
  );
  CREATE INDEX rollup_sessions_started ON rollup_sessions (started_us);
  CREATE INDEX rollup_sessions_namespace ON rollup_sessions (namespace, started_us);
  CREATE INDEX rollup_sessions_last ON rollup_sessions (last_us);
  `;
}

type Merge = 'key' | 'sum' | 'min' | 'max' | 'first';
type Column<T> = readonly [
  name: string,
  pgType: 'text' | 'bigint' | 'int',
  merge: Merge,
  value: (d: T) => unknown,
];

interface TableSpec<T> {
  readonly name: string;
  readonly columns: readonly Column<T>[];
}

const COUNTS: TableSpec<CountDelta> = {
  name: 'rollup_counts',
  columns: [
    ['span_s', 'int', 'key', (d) => d.spanS],
    ['bucket_us', 'bigint', 'key', (d) => d.bucketUs],
    ['namespace', 'text', 'key', (d) => d.namespace],
    ['protocol', 'text', 'key', (d) => d.protocol],
    ['rule', 'text', 'key', (d) => d.rule],
    ['action', 'text', 'key', (d) => d.action],
    ['total', 'bigint', 'sum', (d) => d.total],
    ['blocked', 'bigint', 'sum', (d) => d.blocked],
    ['masked', 'bigint', 'sum', (d) => d.masked],
    ['approved', 'bigint', 'sum', (d) => d.approved],
  ],
};

const AGENTS: TableSpec<AgentDelta> = {
  name: 'rollup_agents',
  columns: [
    ['span_s', 'int', 'key', (d) => d.spanS],
    ['bucket_us', 'bigint', 'key', (d) => d.bucketUs],
    ['namespace', 'text', 'key', (d) => d.namespace],
    ['service_account', 'text', 'key', (d) => d.serviceAccount],
    ['pod', 'text', 'key', (d) => d.pod],
    ['protocol', 'text', 'key', (d) => d.protocol],
    ['total', 'bigint', 'sum', (d) => d.total],
    ['blocked', 'bigint', 'sum', (d) => d.blocked],
    ['masked', 'bigint', 'sum', (d) => d.masked],
    ['approved', 'bigint', 'sum', (d) => d.approved],
    ['last_us', 'bigint', 'max', (d) => d.lastUs],
  ],
};

const ACCESS: TableSpec<AccessDelta> = {
  name: 'rollup_access',
  columns: [
    ['namespace', 'text', 'key', (d) => d.namespace],
    ['service_account', 'text', 'key', (d) => d.serviceAccount],
    ['category', 'text', 'key', (d) => d.category],
    ['protocol', 'text', 'key', (d) => d.protocol],
    ['verb', 'text', 'key', (d) => d.verb],
    ['resource', 'text', 'key', (d) => d.resource],
    ['day_us', 'bigint', 'key', (d) => d.dayUs],
    ['hits', 'bigint', 'sum', (d) => d.count],
    ['first_us', 'bigint', 'min', (d) => d.firstUs],
    ['last_us', 'bigint', 'max', (d) => d.lastUs],
  ],
};

const SESSIONS: TableSpec<SessionDelta> = {
  name: 'rollup_sessions',
  columns: [
    ['session_id', 'text', 'key', (d) => d.sessionId],
    ['sidecar_id', 'text', 'key', (d) => d.sidecarId],
    ['kind', 'text', 'first', (d) => d.kind],
    ['namespace', 'text', 'first', (d) => d.namespace],
    ['pod', 'text', 'first', (d) => d.pod],
    ['service_account', 'text', 'first', (d) => d.serviceAccount],
    ['started_us', 'bigint', 'min', (d) => d.startedUs],
    ['last_us', 'bigint', 'max', (d) => d.lastUs],
    ['events', 'bigint', 'sum', (d) => d.events],
    ['blocked', 'bigint', 'sum', (d) => d.blocked],
    ['closed', 'int', 'max', (d) => d.closed],
    ['summary', 'text', 'first', (d) => d.summary],
  ],
};

function mergeSql<T>(dialect: Dialect, t: TableSpec<T>): string {
  const keys = t.columns.filter((c) => c[2] === 'key').map((c) => c[0]);
  const sets = t.columns
    .filter((c) => c[2] !== 'key')
    .map(([col, , merge]) => {
      const old = `${t.name}.${col}`;
      const add = `excluded.${col}`;
      switch (merge) {
        case 'sum':
          return `${col} = ${old} + ${add}`;
        case 'min':
          return `${col} = ${dialect.least(old, add)}`;
        case 'max':
          return `${col} = ${dialect.greatest(old, add)}`;
        default:
          return `${col} = CASE WHEN ${old} = '' THEN ${add} ELSE ${old} END`;
      }
    });
  return `ON CONFLICT (${keys.join(', ')}) DO UPDATE SET ${sets.join(', ')}`;
}

export interface SqlStatement {
  readonly sql: string;
  readonly params: readonly unknown[];
}

/** The statements that add a commit's rollup changes (empty lists: none). */
export function rollupWrites(dialect: Dialect, delta: RollupDelta): SqlStatement[] {
  const out: SqlStatement[] = [];
  const add = <T>(t: TableSpec<T>, rows: readonly T[]) => {
    if (rows.length === 0) return;
    const cols = t.columns.map((c) => c[0]).join(', ');
    const merge = mergeSql(dialect, t);
    if (dialect.name === 'postgres') {
      const arrays = t.columns.map(([, type], i) => `$${i + 1}::${type}[]`).join(', ');
      out.push({
        sql: `INSERT INTO ${t.name} (${cols}) SELECT * FROM unnest(${arrays}) ${merge}`,
        params: t.columns.map(([, , , value]) => rows.map(value)),
      });
      return;
    }
    const sql = `INSERT INTO ${t.name} (${cols}) VALUES (${t.columns.map(() => '?').join(', ')}) ${merge}`;
    for (const r of rows) out.push({ sql, params: t.columns.map(([, , , value]) => value(r)) });
  };
  add(COUNTS, delta.counts);
  add(AGENTS, delta.agents);
  add(ACCESS, delta.access);
  add(SESSIONS, delta.sessions);
  return out;
}

/** Deletes rollup rows whose whole period (or whose session's last event) is before `cutoffUs`. */
export function rollupPrunes(dialect: Dialect, cutoffUs: number): SqlStatement[] {
  const p = (n: number) => dialect.placeholder(n);
  return [
    ...['rollup_counts', 'rollup_agents'].flatMap((table) =>
      COUNT_SPANS.map((s) => ({
        sql: `DELETE FROM ${table} WHERE span_s = ${p(1)} AND bucket_us < ${p(2)}`,
        params: [s, cutoffUs - s * 1_000_000],
      })),
    ),
    { sql: `DELETE FROM rollup_access WHERE day_us < ${p(1)}`, params: [cutoffUs - DAY_US] },
    { sql: `DELETE FROM rollup_sessions WHERE last_us < ${p(1)}`, params: [cutoffUs] },
  ];
}

// --- reads ---------------------------------------------------------------

const MINUTE_US = 60_000_000;
/** Series buckets, in seconds: the smallest that keeps a range to at most MAX_POINTS. */
const BUCKETS_S = [60, 300, 900, 3600, 21_600, 86_400] as const;
const MAX_POINTS = 120;
const MAX_RANGE_US = 400 * DAY_US;
const TOP = 20;
const LIVE_US = 10 * MINUTE_US;
export const MAX_REPORT_ROWS = 100_000;

const num = (v: unknown): number => (typeof v === 'number' ? v : Number(v ?? 0));

function checkRange(q: RollupQuery): void {
  if (!(q.untilUs > q.sinceUs)) throw new ValidationError('until', 'must be after since');
  if (q.untilUs - q.sinceUs > MAX_RANGE_US)
    throw new ValidationError('since', 'the range may span at most 400 days');
}

export function bucketSecondsFor(rangeUs: number): number {
  return BUCKETS_S.find((b) => Math.ceil(rangeUs / (b * 1_000_000)) <= MAX_POINTS) ?? 86_400;
}

/**
 * [sinceUs, untilUs) (both whole minutes) as ranges of rollup rows: whole
 * periods of the longest span (up to `maxSpanS`) that fit, the rest in
 * shorter ones.
 */
export function coverRange(
  sinceUs: number,
  untilUs: number,
  maxSpanS: number,
): { spanS: number; fromUs: number; toUs: number }[] {
  const spans = COUNT_SPANS.filter((s) => s <= maxSpanS).sort((a, b) => b - a);
  const cover = (a: number, b: number, i: number): { spanS: number; fromUs: number; toUs: number }[] => {
    const spanS = spans[i];
    if (a >= b || spanS === undefined) return [];
    if (i === spans.length - 1) return [{ spanS, fromUs: a, toUs: b }];
    const unit = spanS * 1_000_000;
    const from = Math.ceil(a / unit) * unit;
    const to = Math.floor(b / unit) * unit;
    if (from >= to) return cover(a, b, i + 1);
    return [...cover(a, from, i + 1), { spanS, fromUs: from, toUs: to }, ...cover(to, b, i + 1)];
  };
  return cover(sinceUs, untilUs, 0);
}

function addIn(b: SqlBuilder, column: string, values: readonly string[] | undefined): void {
  if (values === undefined) return;
  if (values.length === 0) b.and('1 = 0');
  else b.and(`${column} IN (${values.map((v) => b.p(v)).join(', ')})`);
}

export async function readOverview(run: RunSql, dialect: Dialect, q: RollupQuery): Promise<OverviewCounts> {
  checkRange(q);
  const sinceUs = Math.floor(q.sinceUs / MINUTE_US) * MINUTE_US;
  const untilUs = Math.ceil(q.untilUs / MINUTE_US) * MINUTE_US;
  const bucketS = bucketSecondsFor(untilUs - sinceUs);
  const bucketUs = bucketS * 1_000_000;
  // The series never reads a period longer than its bucket; the totals read the longest that fit.
  const where = (maxSpanS: number) => {
    const b = new SqlBuilder(dialect);
    const parts = coverRange(sinceUs, untilUs, maxSpanS).map(
      (c) => `(span_s = ${b.p(c.spanS)} AND bucket_us >= ${b.p(c.fromUs)} AND bucket_us < ${b.p(c.toUs)})`,
    );
    b.and(`(${parts.join(' OR ')})`);
    addIn(b, 'namespace', q.namespace);
    addIn(b, 'protocol', q.protocol);
    return b;
  };
  const whole = COUNT_SPANS[COUNT_SPANS.length - 1] as number;
  const sums =
    'sum(total) AS total, sum(blocked) AS blocked, sum(masked) AS masked, sum(approved) AS approved';
  const counts = (r: Row) => ({
    total: num(r.total),
    blocked: num(r.blocked),
    masked: num(r.masked),
    approved: num(r.approved),
  });
  const series = where(bucketS);
  const byRule = where(whole).and("action IN ('deny', 'mask', 'review')");
  const byNamespace = where(whole);
  const byProtocol = where(whole);
  const agents = where(whole);
  const [seriesRows, ruleRows, namespaceRows, protocolRows, agentRows] = await Promise.all([
    run(
      `SELECT bucket_us - (bucket_us % ${bucketUs}) AS t, ${sums} FROM rollup_counts ${series.whereSql()} GROUP BY 1`,
      series.params,
    ),
    run(
      `SELECT rule, action, sum(total) AS n FROM rollup_counts ${byRule.whereSql()} GROUP BY rule, action ORDER BY n DESC, rule, action LIMIT ${TOP}`,
      byRule.params,
    ),
    run(
      `SELECT namespace, ${sums} FROM rollup_counts ${byNamespace.whereSql()} GROUP BY namespace ORDER BY namespace`,
      byNamespace.params,
    ),
    run(
      `SELECT protocol, ${sums} FROM rollup_counts ${byProtocol.whereSql()} GROUP BY protocol ORDER BY protocol`,
      byProtocol.params,
    ),
    run(
      `SELECT namespace, service_account, count(DISTINCT pod) AS pods, ${sums}, max(last_us) AS last_us FROM rollup_agents ${agents.whereSql()} GROUP BY namespace, service_account ORDER BY total DESC, namespace, service_account LIMIT ${TOP}`,
      agents.params,
    ),
  ]);
  const byBucket = new Map(seriesRows.map((r) => [num(r.t), counts(r)]));
  const points: OverviewCounts['series'][number][] = [];
  for (let t = Math.floor(sinceUs / bucketUs) * bucketUs; t < untilUs; t += bucketUs) {
    const c = byBucket.get(t) ?? { total: 0, blocked: 0, masked: 0, approved: 0 };
    points.push({
      t: microsToRfc3339(t),
      allowed: c.total - c.blocked,
      blocked: c.blocked,
      masked: c.masked,
      approved: c.approved,
    });
  }
  return {
    since: microsToRfc3339(sinceUs),
    until: microsToRfc3339(untilUs),
    bucketSeconds: bucketS,
    series: points,
    byRule: ruleRows.map((r) => ({ rule: String(r.rule), action: String(r.action), count: num(r.n) })),
    byNamespace: namespaceRows.map((r) => ({ namespace: String(r.namespace), ...counts(r) })),
    byProtocol: protocolRows.map((r) => ({ protocol: String(r.protocol), ...counts(r) })),
    agents: agentRows.map((r) => ({
      namespace: String(r.namespace),
      serviceAccount: String(r.service_account),
      pods: num(r.pods),
      ...counts(r),
      lastSeen: microsToRfc3339(num(r.last_us)),
    })),
  };
}

function encodeSessionCursor(startedUs: number, sidecarId: string, sessionId: string): string {
  return Buffer.from(JSON.stringify(['s', startedUs, sidecarId, sessionId])).toString('base64url');
}

function decodeSessionCursor(cursor: string): [number, string, string] {
  try {
    const v = JSON.parse(Buffer.from(cursor, 'base64url').toString()) as unknown;
    if (
      Array.isArray(v) &&
      v.length === 4 &&
      v[0] === 's' &&
      Number.isSafeInteger(v[1]) &&
      typeof v[2] === 'string' &&
      typeof v[3] === 'string'
    )
      return [v[1], v[2], v[3]];
  } catch {
    // not ours
  }
  throw new ValidationError('cursor', 'is not a sessions cursor this collector issued');
}

export async function readSessions(
  run: RunSql,
  dialect: Dialect,
  q: RollupQuery,
  page: { limit: number; cursor?: string },
  nowUs: number,
): Promise<SessionPage> {
  const b = new SqlBuilder(dialect);
  b.and(`s.last_us >= ${b.p(q.sinceUs)}`);
  b.and(`s.started_us < ${b.p(q.untilUs)}`);
  addIn(b, 's.namespace', q.namespace);
  addIn(b, 's.pod', q.pod);
  addIn(b, 's.service_account', q.serviceAccount);
  addIn(b, 's.kind', q.protocol);
  if (page.cursor !== undefined) {
    const [t, sidecar, session] = decodeSessionCursor(page.cursor);
    b.and(`(s.started_us, s.sidecar_id, s.session_id) < (${b.p(t)}, ${b.p(sidecar)}, ${b.p(session)})`);
  }
  const rows = await run(
    `SELECT s.*, EXISTS (SELECT 1 FROM recordings r WHERE r.session_id = s.session_id AND r.sidecar_id = s.sidecar_id) AS has_recording
       FROM rollup_sessions s ${b.whereSql()}
      ORDER BY s.started_us DESC, s.sidecar_id DESC, s.session_id DESC LIMIT ${b.p(page.limit + 1)}`,
    b.params,
  );
  const shown = rows.slice(0, page.limit);
  const items: SessionSummary[] = shown.map((r) => {
    const lastUs = num(r.last_us);
    return {
      sessionId: String(r.session_id),
      protocol: String(r.kind),
      namespace: String(r.namespace),
      pod: String(r.pod),
      serviceAccount: String(r.service_account),
      startedAt: microsToRfc3339(num(r.started_us)),
      lastAt: microsToRfc3339(lastUs),
      events: num(r.events),
      blocked: num(r.blocked),
      recording: r.has_recording === true || num(r.has_recording) === 1,
      live: num(r.closed) === 0 && lastUs >= nowUs - LIVE_US,
      summary: String(r.summary),
    };
  });
  const last = shown.at(-1);
  return {
    items,
    ...(rows.length > page.limit && last
      ? {
          nextCursor: encodeSessionCursor(
            num(last.started_us),
            String(last.sidecar_id),
            String(last.session_id),
          ),
        }
      : {}),
  };
}

const CATEGORY_ORDER = new Map<string, number>(ACCESS_CATEGORIES.map((c, i) => [c, i]));

export async function readAccessReport(run: RunSql, dialect: Dialect, q: RollupQuery): Promise<AccessReport> {
  checkRange(q);
  const sinceUs = Math.floor(q.sinceUs / DAY_US) * DAY_US;
  const untilUs = Math.ceil(q.untilUs / DAY_US) * DAY_US;
  const b = new SqlBuilder(dialect);
  b.and(`day_us >= ${b.p(sinceUs)}`);
  b.and(`day_us < ${b.p(untilUs)}`);
  addIn(b, 'namespace', q.namespace);
  addIn(b, 'service_account', q.serviceAccount);
  addIn(b, 'protocol', q.protocol);
  const rows = await run(
    `SELECT namespace, service_account, category, protocol, verb, resource,
            sum(hits) AS hits, min(first_us) AS first_us, max(last_us) AS last_us
       FROM rollup_access ${b.whereSql()}
      GROUP BY namespace, service_account, category, protocol, verb, resource
      ORDER BY namespace, service_account, category, hits DESC, protocol, verb, resource
      LIMIT ${b.p(MAX_REPORT_ROWS + 1)}`,
    b.params,
  );
  const out: AccessReportRow[] = rows.slice(0, MAX_REPORT_ROWS).map((r) => ({
    namespace: String(r.namespace),
    serviceAccount: String(r.service_account),
    category: String(r.category) as AccessReportRow['category'],
    protocol: String(r.protocol),
    verb: String(r.verb),
    resource: String(r.resource),
    count: num(r.hits),
    first: microsToRfc3339(num(r.first_us)),
    last: microsToRfc3339(num(r.last_us)),
  }));
  // Categories in the order a review reads them (read, changed, denied, approved, masked).
  const rank = (c: string) => CATEGORY_ORDER.get(c) ?? ACCESS_CATEGORIES.length;
  out.sort(
    (x, y) =>
      cmp(x.namespace, y.namespace) ||
      cmp(x.serviceAccount, y.serviceAccount) ||
      rank(x.category) - rank(y.category) ||
      y.count - x.count ||
      cmp(x.protocol, y.protocol) ||
      cmp(x.verb, y.verb) ||
      cmp(x.resource, y.resource),
  );
  return {
    since: microsToRfc3339(sinceUs),
    until: microsToRfc3339(untilUs),
    rows: out,
    truncated: rows.length > MAX_REPORT_ROWS,
  };
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
