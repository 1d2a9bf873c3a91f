/**
 * The page's calls: the console's session routes and the API routes under
 * /console/api/. State-changing calls carry the session's CSRF token; every
 * failure becomes an ApiFailure with the message the collector gave.
 */

export class ApiFailure extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

export interface SessionInfo {
  readonly signedIn: boolean;
  readonly proxy: boolean;
  readonly csrfToken?: string;
  readonly expiresAt?: string;
}

let csrfToken = '';

export function setCsrfToken(t: string | undefined): void {
  csrfToken = t ?? '';
}

async function call<T>(method: string, url: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (method !== 'GET') headers['x-csrf-token'] = csrfToken;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      headers,
      credentials: 'same-origin',
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
  } catch (err) {
    throw new ApiFailure(
      0,
      `the collector could not be reached (${(err as Error).message}): check the connection and retry`,
    );
  }
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ApiFailure(res.status, `the collector answered HTTP ${res.status} with no JSON`);
  }
  if (!res.ok) {
    const e = (value as { error?: { message?: unknown; code?: unknown } }).error;
    const message = typeof e?.message === 'string' ? e.message : `HTTP ${res.status}`;
    throw new ApiFailure(res.status, message);
  }
  return value as T;
}

export const session = {
  get: () => call<SessionInfo>('GET', '/console/session'),
  signIn: (token: string) => call<SessionInfo>('POST', '/console/session', { token }),
  signOut: () => call<void>('DELETE', '/console/session'),
};

/** An API route below /v1/, through the console. */
export const api = {
  get: <T>(path: string) => call<T>('GET', `/console/api/v1/${path}`),
  post: <T>(path: string, body: unknown) => call<T>('POST', `/console/api/v1/${path}`, body),
  del: <T>(path: string) => call<T>('DELETE', `/console/api/v1/${path}`),
};
