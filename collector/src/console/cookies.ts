/**
 * The session cookie: read from a `Cookie` header, written as HttpOnly and
 * SameSite=Strict. When the collector serves TLS: Secure, with the `__Host-`
 * prefix and `Path=/` (browsers accept a `__Host-` cookie only so, and only
 * from this host: no sibling subdomain can set or shadow it). Over plain
 * HTTP (loopback, tests): `Path=/console`, no prefix.
 */

export const CONSOLE_PATH = '/console';

export function sessionCookieName(secure: boolean): string {
  return secure ? '__Host-chaperone-console' : 'chaperone-console';
}

/** The value of cookie `name` in a `Cookie` header; the first one when the header repeats it. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

export interface CookieOptions {
  readonly secure: boolean;
  /** Seconds until the browser drops it; 0 clears it. */
  readonly maxAgeSeconds: number;
}

/** A `Set-Cookie` value for the session id (base64url, so it needs no quoting). */
export function sessionCookie(value: string, opts: CookieOptions): string {
  if (!/^[A-Za-z0-9_-]*$/.test(value)) throw new Error('a session id is base64url');
  return [
    `${sessionCookieName(opts.secure)}=${value}`,
    `Path=${opts.secure ? '/' : CONSOLE_PATH}`,
    'HttpOnly',
    'SameSite=Strict',
    `Max-Age=${Math.max(0, Math.floor(opts.maxAgeSeconds))}`,
    ...(opts.secure ? ['Secure'] : []),
  ].join('; ');
}
