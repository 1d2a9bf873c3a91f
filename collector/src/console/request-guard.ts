/**
 * Cross-site request forgery checks for every state-changing console request
 * (sign-in, sign-out, a decision, a revocation), on top of the SameSite=Strict
 * cookie:
 *
 *   - the request comes from a page of this origin: `Sec-Fetch-Site: same-origin`
 *     when the browser sends it, else an `Origin` whose host is the request's
 *     `Host`; a request with neither is refused;
 *   - within a session, `X-CSRF-Token` equals the session's synchronizer token
 *     (compared in constant time); the page reads it from `GET /console/session`,
 *     which another origin cannot read (no CORS);
 *   - the body is JSON (`Content-Type: application/json`), which a plain HTML
 *     form on another site cannot send.
 */
import { timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

export const CSRF_HEADER = 'x-csrf-token';

const header = (h: IncomingHttpHeaders, name: string): string | undefined => {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
};

/** Why this request may not change anything, or undefined when it comes from this origin. */
export function crossSiteReason(headers: IncomingHttpHeaders): string | undefined {
  const site = header(headers, 'sec-fetch-site');
  if (site !== undefined)
    return site === 'same-origin'
      ? undefined
      : `the request came from another site (Sec-Fetch-Site: ${site})`;
  const origin = header(headers, 'origin');
  if (origin === undefined) return 'the request names no Origin';
  let host: string;
  try {
    host = new URL(origin).host;
  } catch {
    return 'the request’s Origin is not a URL';
  }
  if (host !== header(headers, 'host')) return 'the request’s Origin is not this console';
  return undefined;
}

/** True when `given` is the session's synchronizer token. */
export function csrfTokenMatches(expected: string, given: string | undefined): boolean {
  if (given === undefined) return false;
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}

export function isJson(headers: IncomingHttpHeaders): boolean {
  return /^application\/json\s*(;|$)/i.test(header(headers, 'content-type') ?? '');
}
