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
  /** What the session's token may do: read the audit log (query API), decide approvals (approvers' API). */
  readonly can?: { readonly read: boolean; readonly approve: boolean };
}

let csrfToken = '';

export function setCsrfToken(t: string | undefined): void {
  csrfToken = t ?? '';
}

async function send(method: string, url: string, body?: unknown): Promise<Response> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (method !== 'GET') headers['x-csrf-token'] = csrfToken;
  if (body !== undefined) headers['content-type'] = 'application/json';
  try {
    return await fetch(url, {
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
}

/** The collector's error as an ApiFailure (its message when the answer carries one). */
function failure(status: number, text: string): ApiFailure {
  try {
    const e = (JSON.parse(text) as { error?: { message?: unknown } }).error;
    if (typeof e?.message === 'string') return new ApiFailure(status, e.message);
  } catch {}
  return new ApiFailure(status, `the collector answered HTTP ${status}`);
}

async function call<T>(method: string, url: string, body?: unknown): Promise<T> {
  const res = await send(method, url, body);
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  if (!res.ok) throw failure(res.status, text);
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new ApiFailure(res.status, `the collector answered HTTP ${res.status} with no JSON`);
  }
}

export const session = {
  get: () => call<SessionInfo>('GET', '/console/session'),
  signIn: (token: string) => call<SessionInfo>('POST', '/console/session', { token }),
  signOut: () => call<void>('DELETE', '/console/session'),
};

/** The console's address of an API route below /v1/ (`events?namespace=a`), e.g. for a download link. */
export const apiUrl = (path: string) => `/console/api/v1/${path}`;

/** An API route below /v1/, through the console. */
export const api = {
  get: <T>(path: string) => call<T>('GET', apiUrl(path)),
  /** A route's bytes as sent (a recording), and the X-Recording-Size the API gave with them. */
  async bytes(path: string): Promise<{ bytes: Uint8Array; size: number | undefined }> {
    const res = await send('GET', apiUrl(path));
    if (!res.ok) throw failure(res.status, await res.text());
    const size = res.headers.get('x-recording-size');
    return { bytes: new Uint8Array(await res.arrayBuffer()), size: size === null ? undefined : Number(size) };
  },
  post: <T>(path: string, body: unknown) => call<T>('POST', apiUrl(path), body),
  del: <T>(path: string) => call<T>('DELETE', apiUrl(path)),
};
