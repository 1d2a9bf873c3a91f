/**
 * Filters in the page's address, as pure functions (tested in Node). A
 * view's filters live in its URL under the same names as the API's query
 * parameters (and `chaperone audit query`'s flags), so a filtered view is a
 * link to share and the API query is the address's own parameters.
 */

/** The events view's filters: event-filter.ts's names. */
export const EVENT_FILTERS = [
  'namespace',
  'pod',
  'serviceAccount',
  'protocol',
  'verb',
  'decision',
  'rule',
  'sessionId',
  'since',
  'until',
  'q',
] as const;

/** The sessions view's filters (/v1/sessions). */
export const SESSION_FILTERS = ['namespace', 'pod', 'serviceAccount', 'protocol', 'since', 'until'] as const;

/** The overview's filters (/v1/overview). */
export const OVERVIEW_FILTERS = ['since', 'until', 'namespace', 'protocol'] as const;

/** The access review's filters (/v1/report). */
export const REVIEW_FILTERS = ['since', 'until', 'namespace', 'serviceAccount'] as const;

/**
 * The named filters of `from` with a value (empty ones dropped; a value may
 * list several, comma-separated, as the API reads them), then `extra`.
 */
export function pickFilters(
  from: URLSearchParams,
  names: readonly string[],
  extra: Readonly<Record<string, string | undefined>> = {},
): URLSearchParams {
  const out = new URLSearchParams();
  for (const n of names)
    for (const v of from.getAll(n)) {
      const t = v.trim();
      if (t) out.append(n, t);
    }
  for (const [k, v] of Object.entries(extra)) if (v !== undefined && v !== '') out.set(k, v);
  return out;
}

/** `path?query` (just `path` with no query). */
export function withParams(path: string, params: URLSearchParams): string {
  const q = params.toString();
  return q ? `${path}?${q}` : path;
}

/**
 * A day picked in a date input (`2026-12-01`) as an RFC 3339 bound the API
 * reads: `since` is the start of that day (UTC), `until` the start of the
 * next (so the day picked is included); anything else is passed on as typed.
 */
export function dayBound(value: string, which: 'since' | 'until'): string {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value.trim());
  if (!m) return value.trim();
  const t = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) + (which === 'until' ? 86_400_000 : 0);
  return new Date(t).toISOString().replace('.000Z', 'Z');
}

/** The day (`YYYY-MM-DD`, UTC) `daysAgo` days before `now`. */
export function dayOf(now: number, daysAgo = 0): string {
  return new Date(now - daysAgo * 86_400_000).toISOString().slice(0, 10);
}

/** The day a bound made by `dayBound` stands for (`''` for any other bound): what a date input shows. */
export function dayOfBound(bound: string, which: 'since' | 'until'): string {
  if (!/^\d{4}-\d{2}-\d{2}T00:00:00(\.0+)?Z$/.test(bound)) return '';
  return dayOf(Date.parse(bound), which === 'until' ? 1 : 0);
}
