/**
 * How every query route narrows an answer to the caller's namespaces: a
 * namespace the caller names must be in its scope (else 403, naming it); a
 * route asked for none reads the caller's own. Also the parameters the
 * console's routes share: repeated or comma-separated lists, and the time
 * range (`since`/`until` as event-filter.ts reads them).
 */
import { ChaperoneError, ValidationError } from '@chaperone/shared';
import type { NamespaceScope, Principal } from '../auth/query-auth.ts';
import { listValues, timeBound } from '../events/event-filter.ts';
import { visible } from '../text/visible-text.ts';

/** Refuses a namespace outside the scope (403), naming it. */
export function checkNamespaces(scope: NamespaceScope, asked: readonly string[], subject: string): void {
  if (scope === '*') return;
  const outside = asked.filter((n) => !scope.has(n));
  if (outside.length)
    throw new ChaperoneError(
      'forbidden',
      `${visible(subject)} may not read namespace ${outside.map((n) => visible(n)).join(', ')}: ask the collector's operator for a token, or an RBAC binding to the ClusterRole chaperone-audit-reader, that covers it`,
    );
}

/** The namespaces a query covers: those asked (each checked), else the caller's (undefined: every one). */
export function scopedNamespaces(who: Principal, asked: readonly string[]): readonly string[] | undefined {
  if (asked.length > 0) {
    checkNamespaces(who.namespaces, asked, who.subject);
    return asked;
  }
  return who.namespaces === '*' ? undefined : [...who.namespaces].sort();
}

/** A list parameter: repeated (`?pod=a&pod=b`) or comma-separated, blanks dropped, each value once. */
export function listParam(params: URLSearchParams, name: string): string[] {
  return listValues(params.getAll(name), name);
}

/** `since`/`until` (RFC 3339 or a duration ago such as 24h or 30d), with defaults. */
export function timeRange(
  params: URLSearchParams,
  nowUs: number,
  defaults: { since: string; until?: number },
): { sinceUs: number; untilUs: number } {
  const until = params.get('until');
  const sinceUs = timeBound(params.get('since') ?? defaults.since, 'since', nowUs);
  const untilUs = until ? timeBound(until, 'until', nowUs) : (defaults.until ?? nowUs);
  if (untilUs <= sinceUs) throw new ValidationError('until', 'must be after since');
  return { sinceUs, untilUs };
}
