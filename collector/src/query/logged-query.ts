/**
 * The query string of an API read as the audit-query log line records it:
 * every parameter as asked (reads of the audit log stay on record), except
 * the free-text search `q`, recorded by its length only — a search may hold
 * what someone looked for in the events (a secret, a name), which the
 * collector's log must not repeat. Pure.
 */
export function loggedQuery(params: URLSearchParams): string {
  const parts: string[] = [];
  for (const [k, v] of params)
    parts.push(
      k === 'q' ? `q=(${[...v].length} characters)` : `${encodeURIComponent(k)}=${encodeURIComponent(v)}`,
    );
  return parts.length ? `?${parts.join('&')}` : '';
}
