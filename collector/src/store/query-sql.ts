/**
 * SQL for event queries, written once for both backends: the only
 * differences are placeholders (`$1` / `?`) and the substring function.
 * Every value is a bound parameter; column names come from a fixed map.
 */
import { ValidationError } from '@chaperone/shared';
import { type EventFilter, LIST_FIELDS } from '../events/event-filter.ts';
import { safeText } from '../events/event-row.ts';

export interface Dialect {
  readonly name: 'sqlite' | 'postgres';
  /** Placeholder for the n-th parameter (1-based). */
  placeholder(n: number): string;
  /** SQL that is true when `haystack` contains the parameter `needle`. */
  contains(haystack: string, needle: string): string;
  /** The larger and the smaller of two values. */
  greatest(a: string, b: string): string;
  least(a: string, b: string): string;
}

export const SQLITE: Dialect = {
  name: 'sqlite',
  placeholder: () => '?',
  contains: (h, n) => `instr(${h}, ${n}) > 0`,
  greatest: (a, b) => `max(${a}, ${b})`,
  least: (a, b) => `min(${a}, ${b})`,
};

export const POSTGRES: Dialect = {
  name: 'postgres',
  placeholder: (n) => `$${n}`,
  contains: (h, n) => `strpos(${h}, ${n}) > 0`,
  greatest: (a, b) => `GREATEST(${a}, ${b})`,
  least: (a, b) => `LEAST(${a}, ${b})`,
};

const COLUMN: Record<(typeof LIST_FIELDS)[number], string> = {
  namespace: 'namespace',
  pod: 'pod',
  serviceAccount: 'service_account',
  protocol: 'protocol',
  verb: 'verb',
  resource: 'resource',
  decision: 'action',
  rule: 'rule',
  sessionId: 'session_id',
  sidecarId: 'sidecar_id',
  user: 'username',
};

export class SqlBuilder {
  readonly params: unknown[] = [];
  readonly where: string[] = [];
  readonly dialect: Dialect;
  constructor(dialect: Dialect) {
    this.dialect = dialect;
  }
  /** Adds a parameter and returns its placeholder. */
  p(value: unknown): string {
    this.params.push(value);
    return this.dialect.placeholder(this.params.length);
  }
  and(clause: string): this {
    this.where.push(clause);
    return this;
  }
  whereSql(): string {
    return this.where.length ? `WHERE ${this.where.join(' AND ')}` : '';
  }
}

export function addFilter(b: SqlBuilder, f: EventFilter): void {
  for (const field of LIST_FIELDS) {
    const values = f[field];
    if (!values) continue;
    // An empty list matches nothing (a caller whose scope is empty reads nothing), never everything.
    if (values.length === 0) {
      b.and('1 = 0');
      continue;
    }
    const col = COLUMN[field];
    if (field === 'resource') {
      // `pods` matches pods and its subresources (pods/exec); `pods/exec` only itself.
      const ors = values.map((v) =>
        v.includes('/')
          ? `resource = ${b.p(safeText(v))}`
          : `(resource = ${b.p(safeText(v))} OR substr(resource, 1, ${v.length + 1}) = ${b.p(safeText(`${v}/`))})`,
      );
      b.and(`(${ors.join(' OR ')})`);
    } else {
      b.and(`${col} IN (${values.map((v) => b.p(safeText(v))).join(', ')})`);
    }
  }
  if (f.sinceUs !== undefined) b.and(`time_us >= ${b.p(f.sinceUs)}`);
  if (f.untilUs !== undefined) b.and(`time_us < ${b.p(f.untilUs)}`);
  if (f.q !== undefined) b.and(b.dialect.contains('search_text', b.p(safeText(f.q.toLowerCase()))));
}

/** Cursor of the time-ordered listing: the (time, id) of the last row returned. */
export function encodeTimeCursor(timeUs: number, id: number): string {
  return Buffer.from(`t:${timeUs}:${id}`).toString('base64url');
}

function decodeTimeCursor(cursor: string): { timeUs: number; id: number } {
  const m = /^t:(\d+):(\d+)$/.exec(Buffer.from(cursor, 'base64url').toString());
  if (!m) throw new ValidationError('cursor', 'is not a cursor this collector issued');
  return { timeUs: Number(m[1]), id: Number(m[2]) };
}

/** Builds the time-ordered page query; fetches one extra row to know whether more follow. */
export function timeOrderedQuery(
  dialect: Dialect,
  filter: EventFilter,
  page: { limit: number; cursor?: string; order?: 'asc' | 'desc' },
): { sql: string; params: unknown[] } {
  const b = new SqlBuilder(dialect);
  addFilter(b, filter);
  const desc = (page.order ?? 'desc') === 'desc';
  if (page.cursor) {
    const c = decodeTimeCursor(page.cursor);
    b.and(`(time_us, id) ${desc ? '<' : '>'} (${b.p(c.timeUs)}, ${b.p(c.id)})`);
  }
  const dir = desc ? 'DESC' : 'ASC';
  const sql = `SELECT id, time_us, event_json FROM events ${b.whereSql()} ORDER BY time_us ${dir}, id ${dir} LIMIT ${b.p(page.limit + 1)}`;
  return { sql, params: b.params };
}
