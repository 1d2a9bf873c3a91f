/**
 * Timestamps as integers of microseconds since the epoch: the precision of
 * Kubernetes audit timestamps (RFC 3339 with microseconds), sortable and
 * comparable the same way in every storage backend. 2^53 µs is year 2255.
 */
import { ValidationError } from '@chaperone/shared';

const RFC3339 = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/i;

/** Parses an RFC 3339 timestamp to microseconds since the epoch (sub-µs digits are dropped). */
export function rfc3339ToMicros(text: string): number {
  const m = RFC3339.exec(text);
  if (!m) throw new ValidationError('', `${JSON.stringify(text)} is not an RFC 3339 timestamp`);
  const ms = Date.parse(`${m[1]}${m[3] === 'z' ? 'Z' : m[3]}`);
  if (Number.isNaN(ms)) throw new ValidationError('', `${JSON.stringify(text)} is not a valid date`);
  const micros = Number((m[2] ?? '').padEnd(6, '0').slice(0, 6));
  return ms * 1000 + micros;
}

/** RFC 3339 in UTC with microseconds, like the Kubernetes API server writes. */
export function microsToRfc3339(us: number): string {
  const ms = Math.floor(us / 1000);
  const iso = new Date(ms).toISOString();
  const micros = String(us - Math.floor(us / 1_000_000) * 1_000_000).padStart(6, '0');
  return `${iso.slice(0, 19)}.${micros}Z`;
}

export function nowMicros(): number {
  return Date.now() * 1000;
}

const RELATIVE = /^(\d+)(s|m|h|d)$/;
const UNIT_US: Record<string, number> = { s: 1e6, m: 60e6, h: 3600e6, d: 86_400e6 };

/**
 * A time bound for queries: RFC 3339, or a duration ago such as `15m`, `2h`
 * or `7d`. `now` is injected so callers and tests agree on it.
 */
export function parseTimeBound(text: string, nowUs: number): number {
  const rel = RELATIVE.exec(text.trim());
  if (rel) return nowUs - Number(rel[1]) * (UNIT_US[rel[2] ?? 's'] ?? 1e6);
  return rfc3339ToMicros(text.trim());
}
