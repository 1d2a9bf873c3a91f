/**
 * The query filter: one shape for the HTTP API's query string and the
 * `chaperone audit query` flags. Repeated values of one field are OR-ed,
 * different fields AND-ed. Parsing is pure (the clock is passed in).
 */
import { DECISION_ACTIONS, PROTOCOLS, ValidationError } from '@chaperone/shared';
import { parseTimeBound } from './time.ts';

export interface EventFilter {
  readonly namespace?: readonly string[];
  readonly pod?: readonly string[];
  readonly serviceAccount?: readonly string[];
  readonly protocol?: readonly string[];
  readonly verb?: readonly string[];
  readonly resource?: readonly string[];
  /** Decision action: allow, deny, mask, review. */
  readonly decision?: readonly string[];
  readonly rule?: readonly string[];
  readonly sessionId?: readonly string[];
  readonly sidecarId?: readonly string[];
  readonly user?: readonly string[];
  /** Request time bounds, µs since the epoch; `since` inclusive, `until` exclusive. */
  readonly sinceUs?: number;
  readonly untilUs?: number;
  /** Case-insensitive substring of the request URI, exec command line or SQL text. */
  readonly q?: string;
}

/** Filter fields that hold lists of exact values, with their query-string names. */
export const LIST_FIELDS = [
  'namespace',
  'pod',
  'serviceAccount',
  'protocol',
  'verb',
  'resource',
  'decision',
  'rule',
  'sessionId',
  'sidecarId',
  'user',
] as const;

export const FILTER_PARAMS = [...LIST_FIELDS, 'since', 'until', 'q'] as const;

const MAX_VALUES = 50;

/**
 * Builds a filter from query parameters (`?namespace=a&namespace=b&since=1h`).
 * Values may also be comma-separated. Unknown values of closed sets are errors.
 */
export function parseEventFilter(get: (name: string) => readonly string[], nowUs: number): EventFilter {
  const out: Record<string, unknown> = {};
  for (const field of LIST_FIELDS) {
    const values = listValues(get(field), field);
    if (values.length === 0) continue;
    if (field === 'protocol') checkClosed(values, PROTOCOLS, field);
    if (field === 'decision') checkClosed(values, DECISION_ACTIONS, field);
    out[field] = Object.freeze(values);
  }
  const since = get('since')[0];
  const until = get('until')[0];
  if (since) out.sinceUs = timeBound(since, 'since', nowUs);
  if (until) out.untilUs = timeBound(until, 'until', nowUs);
  const q = get('q')[0];
  if (q !== undefined && q.length > 0) {
    if (q.length > 512) throw new ValidationError('q', 'must be at most 512 characters');
    out.q = q;
  }
  return Object.freeze(out) as EventFilter;
}

/** A list parameter's values: repeated or comma-separated, trimmed, blanks dropped, each once (at most MAX_VALUES). */
export function listValues(raw: readonly string[], field: string): string[] {
  const values = raw
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter((v) => v.length > 0);
  if (values.length > MAX_VALUES)
    throw new ValidationError(field, `at most ${MAX_VALUES} values, got ${values.length}`);
  return [...new Set(values)];
}

/** `since`/`until`: RFC 3339, or a duration ago (15m, 2h, 7d); a ValidationError naming `name` otherwise. */
export function timeBound(text: string, name: string, nowUs: number): number {
  try {
    return parseTimeBound(text, nowUs);
  } catch {
    throw new ValidationError(
      name,
      `${JSON.stringify(text)} is neither an RFC 3339 time nor a duration ago like 15m, 2h, 7d`,
    );
  }
}

function checkClosed(values: readonly string[], allowed: readonly string[], field: string): void {
  for (const v of values) {
    if (!allowed.includes(v))
      throw new ValidationError(field, `${JSON.stringify(v)} is not one of ${allowed.join(', ')}`);
  }
}
