/**
 * The collector's web console on the query listener, under `/console/`:
 *
 *   GET    /console/                 the page (index.html; app.js and app.css under /console/assets/)
 *   GET    /console/{view}[/{id}]    the same page at one of its own addresses (page-routes.ts):
 *                                    events, sessions, approvals (…/{id}: the link notifications
 *                                    carry), access-review
 *   GET    /console/session          {signedIn, csrfToken?, expiresAt?, can?: {read, approve}, proxy}:
 *                                    whether this browser has a session, and what its token may do
 *   POST   /console/session          {token}: sign in with a bearer token, checked by the API itself:
 *                                    a token the query API (/v1/whoami) or the approvers' API
 *                                    (/v1/approvals) accepts opens a session
 *   DELETE /console/session          sign out
 *   *      /console/api/v1/...       the API route /v1/..., called with the session's token
 *
 * The console authorises nothing itself: every data call is the query API's
 * own route, called in-process (in-process-api.ts) with `Authorization:
 * Bearer <the session's token>`, and the API's answer (items, or its error)
 * is what the page shows; an answer is passed on as it arrives (a report or a
 * whole recording is never held in memory here). The console adds the browser's side: a session
 * cookie instead of a token in the page, CSRF checks (request-guard.ts) on
 * every state-changing request, and strict security headers.
 *
 * With `proxyTokenHeader` set, an authenticating proxy in front of the
 * collector supplies the approver's bearer token in that header on every
 * request; the console then opens (and refreshes) the session from it.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { ChaperoneError, type Logger, toChaperoneError } from '@chaperone/shared';
import { STATUS } from '../query/json-response.ts';
import { parseRequestTarget } from '../query/request-target.ts';
import { ASSET_TYPES, type AssetName, type ConsoleAssets, NOT_BUILT } from './console-assets.ts';
import { CONSOLE_PATH, readCookie, sessionCookie, sessionCookieName } from './cookies.ts';
import { type ApiAnswer, type ApiHead, inProcessApi, type RequestHandler } from './in-process-api.ts';
import { isPagePath } from './page/routes.ts';
import { CSRF_HEADER, crossSiteReason, csrfTokenMatches, isJson } from './request-guard.ts';
import { setSecurityHeaders } from './security-headers.ts';
import {
  type ConsoleSession,
  DEFAULT_ABSOLUTE_MS,
  DEFAULT_IDLE_MS,
  DEFAULT_MAX_SESSIONS,
  type SessionAbilities,
  SessionStore,
  tokenHash,
} from './session-store.ts';

export interface ConsoleOptions {
  /** The query listener's handler (http-api.ts): where every data call goes. */
  readonly api: RequestHandler;
  /** The built page, or undefined when it was not built (every page request is then a 503 saying so). */
  readonly assets: ConsoleAssets | undefined;
  /** The listener serves TLS: cookies are Secure. */
  readonly tls: boolean;
  /** Trust this request header, set by an authenticating proxy, as the approver's bearer token. */
  readonly proxyTokenHeader?: string;
  readonly logger: Logger;
  readonly now?: () => number;
  readonly idleMs?: number;
  readonly absoluteMs?: number;
  readonly maxSessions?: number;
}

/** Where the sign-in token is checked: who the token is, as the query API reads it. */
export const SIGN_IN_CHECK_PATH = '/v1/whoami';
/**
 * And whether the approvers' API takes it (its own authentication: with
 * `--query-rbac off` a Kubernetes approver's token is no query token).
 */
export const APPROVE_CHECK_PATH = '/v1/approvals?state=pending&limit=1';
const MAX_BODY_BYTES = 64 * 1024;
const API_PREFIX = `${CONSOLE_PATH}/api/`;

export interface Console {
  /** Answers a request under /console; never rejects. */
  handle(req: IncomingMessage, res: ServerResponse): Promise<void>;
  /** Stops the expiry sweep. */
  close(): void;
}

/** True for `/console` and everything under `/console/`. */
export function isConsolePath(pathname: string): boolean {
  return pathname === CONSOLE_PATH || pathname.startsWith(`${CONSOLE_PATH}/`);
}

/** The query listener's handler with the console mounted at /console. */
export function withConsole(api: RequestHandler, console: Console): RequestHandler {
  return (req, res) => {
    let path: string;
    try {
      path = parseRequestTarget(req.url).pathname;
    } catch {
      return api(req, res); // the API answers a target it cannot read
    }
    return isConsolePath(path) ? console.handle(req, res) : api(req, res);
  };
}

/**
 * The headers an API answer is passed on with. JSON as JSON; a CSV or Markdown
 * report and a recording as what they are, always as an attachment (never
 * rendered as a page of this origin); anything else as bytes to download. The
 * API's file name is kept when it is a plain one.
 */
export function passedHeaders(a: ApiHead) {
  const type = /^\s*([a-z0-9.+/-]+)/i.exec(a.contentType)?.[1]?.toLowerCase() ?? '';
  const headers: Record<string, string> = { 'cache-control': 'no-store' };
  if (type === 'application/json') headers['content-type'] = 'application/json';
  else {
    headers['content-type'] = PASSED_TYPES.has(type) ? `${type}; charset=utf-8` : 'application/octet-stream';
    const name = /^attachment;\s*filename="([A-Za-z0-9._-]{1,200})"$/.exec(a.contentDisposition ?? '')?.[1];
    headers['content-disposition'] = name ? `attachment; filename="${name}"` : 'attachment';
  }
  if (a.recordingSize && /^\d{1,15}$/.test(a.recordingSize)) headers['x-recording-size'] = a.recordingSize;
  return headers;
}

/** Types passed on as themselves (as downloads): the report's CSV and Markdown, a recording. */
const PASSED_TYPES = new Set(['text/csv', 'text/markdown', 'application/x-asciicast']);

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(value));
}

function sendError(res: ServerResponse, err: ChaperoneError): void {
  sendJson(res, STATUS[err.code] ?? 500, { error: { code: err.code, message: err.message } });
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY_BYTES)
      throw new ChaperoneError('limit_exceeded', `the request body is larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(c);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The bearer token in the proxy's header (`Bearer <t>` or the bare token). */
function proxyToken(req: IncomingMessage, name: string | undefined): string | undefined {
  if (!name) return undefined;
  const raw = req.headers[name.toLowerCase()];
  const v = (Array.isArray(raw) ? raw[0] : raw)?.trim();
  if (!v) return undefined;
  return v.replace(/^Bearer\s+/i, '') || undefined;
}

/** An API error's message, for the sign-in answer. */
function apiMessage(a: ApiAnswer): string {
  try {
    const m = (JSON.parse(a.body.toString('utf8')) as { error?: { message?: unknown } }).error?.message;
    if (typeof m === 'string') return m;
  } catch {}
  return `the API answered HTTP ${a.status}`;
}

export function createConsole(opts: ConsoleOptions): Console {
  const { assets, tls, logger } = opts;
  const now = opts.now ?? Date.now;
  const sessions = new SessionStore({
    idleMs: opts.idleMs ?? DEFAULT_IDLE_MS,
    absoluteMs: opts.absoluteMs ?? DEFAULT_ABSOLUTE_MS,
    maxSessions: opts.maxSessions ?? DEFAULT_MAX_SESSIONS,
    now,
  });
  const sweep = setInterval(() => sessions.sweep(), 60_000);
  sweep.unref();
  const api = inProcessApi(opts.api);
  const cookieName = sessionCookieName(tls);

  const setCookie = (res: ServerResponse, s: ConsoleSession | undefined) =>
    res.setHeader(
      'set-cookie',
      sessionCookie(s?.id ?? '', {
        secure: tls,
        maxAgeSeconds: s ? (s.createdAt + (opts.absoluteMs ?? DEFAULT_ABSOLUTE_MS) - now()) / 1000 : 0,
      }),
    );

  /**
   * The request's session: its cookie's, or, behind a proxy, the one bound to
   * the proxy header's token. A session opened from the header is bound to a
   * hash of that token: used only while the header carries the same token,
   * never without the header, and never adopts another token. A header whose
   * token differs from the cookie's session (a refreshed token, another user,
   * or a cookie planted by someone else) opens a new session, with a new id
   * and CSRF token; the old one ends.
   */
  function sessionOf(req: IncomingMessage, res: ServerResponse): ConsoleSession | undefined {
    const s = sessions.use(readCookie(req.headers.cookie, cookieName));
    const fromProxy = proxyToken(req, opts.proxyTokenHeader);
    if (!fromProxy) return s?.source === 'proxy' ? undefined : s;
    if (s && s.source === 'proxy' && s.tokenHash === tokenHash(fromProxy)) return s;
    if (s) sessions.end(s.id);
    const opened = sessions.create(fromProxy, 'proxy');
    setCookie(res, opened);
    return opened;
  }

  /** Refuses a state-changing request that is cross-site, lacks the session's CSRF token, or is not JSON. */
  function guard(req: IncomingMessage, s: ConsoleSession | undefined, needsJson: boolean): void {
    const why = crossSiteReason(req.headers);
    if (why) throw new ChaperoneError('forbidden', `${why}: use the console's own page`);
    if (s) {
      const given = req.headers[CSRF_HEADER];
      if (!csrfTokenMatches(s.csrf, Array.isArray(given) ? given[0] : given))
        throw new ChaperoneError(
          'forbidden',
          `the request does not carry this session's CSRF token (${CSRF_HEADER}): reload the page and try again`,
        );
    }
    if (needsJson && !isJson(req.headers))
      throw new ChaperoneError('usage', 'send the request body as JSON (Content-Type: application/json)');
  }

  /** What the token may do: each API's own answer (200) to it, and those answers. */
  async function abilitiesOf(
    token: string,
  ): Promise<{ can: SessionAbilities; whoami: ApiAnswer; approvals: ApiAnswer }> {
    const [whoami, approvals] = await Promise.all([
      api.call({ method: 'GET', path: SIGN_IN_CHECK_PATH, token }),
      api.call({ method: 'GET', path: APPROVE_CHECK_PATH, token }),
    ]);
    return { can: { read: whoami.status === 200, approve: approvals.status === 200 }, whoami, approvals };
  }

  async function sessionView(s: ConsoleSession | undefined) {
    const proxy = Boolean(opts.proxyTokenHeader);
    if (!s) return { signedIn: false, proxy };
    if (!s.can) {
      // A proxy's session was opened without a check: its abilities are asked for (kept once both APIs answered).
      const { can, whoami, approvals } = await abilitiesOf(s.token);
      if (whoami.status < 500 && approvals.status < 500) s.can = can;
    }
    return {
      signedIn: true,
      proxy,
      csrfToken: s.csrf,
      source: s.source,
      expiresAt: new Date(sessions.expiresAt(s)).toISOString(),
      ...(s.can ? { can: s.can } : {}),
    };
  }

  async function signIn(req: IncomingMessage, res: ServerResponse): Promise<void> {
    guard(req, undefined, true);
    let token: unknown;
    try {
      token = (JSON.parse(await readBody(req)) as { token?: unknown }).token;
    } catch {
      throw new ChaperoneError('usage', 'send {"token": "<bearer token>"} as JSON');
    }
    if (typeof token !== 'string' || !token.trim() || token.length > 16 * 1024 || /\s/.test(token.trim()))
      throw new ChaperoneError(
        'usage',
        'paste one bearer token (e.g. from `kubectl create token <service-account>` or your OIDC login)',
      );
    // Only a token one of the APIs accepts (200) opens a session: a 401, a 403 or an error does not.
    const { can, whoami, approvals } = await abilitiesOf(token.trim());
    if (!can.read && !can.approve) {
      if (whoami.status >= 500 || approvals.status >= 500)
        throw new ChaperoneError(
          'unavailable',
          `the token could not be checked: ${apiMessage(whoami.status >= 500 ? whoami : approvals)}`,
        );
      logger.info(
        { whoami: whoami.status, approvals: approvals.status },
        'console sign-in refused: neither API accepted the token',
      );
      if (whoami.status === 401 && approvals.status === 401)
        throw new ChaperoneError('unauthenticated', `the token was not accepted: ${apiMessage(whoami)}`);
      throw new ChaperoneError(
        'forbidden',
        `the token may neither read the audit log (${apiMessage(whoami)}) nor decide approvals (${apiMessage(approvals)}): ask for a role that grants one of them`,
      );
    }
    // A new id at every sign-in (never one the browser brought), and the session it had ends.
    const previous = readCookie(req.headers.cookie, cookieName);
    if (previous) sessions.end(previous);
    const s = sessions.create(token.trim(), 'token');
    s.can = can;
    setCookie(res, s);
    logger.info({ sessions: sessions.size, can }, 'console sign-in');
    sendJson(res, 200, await sessionView(s));
  }

  async function forward(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const method = req.method;
    if (method !== 'GET' && method !== 'POST' && method !== 'DELETE') {
      res.setHeader('allow', 'GET, POST, DELETE');
      throw new ChaperoneError('usage', `${method} is not an API method the console passes on`);
    }
    const s = sessionOf(req, res);
    if (!s) throw new ChaperoneError('unauthenticated', 'not signed in, or the session ended: sign in again');
    if (method !== 'GET') guard(req, s, method === 'POST');
    const path = `/${url.pathname.slice(API_PREFIX.length)}`;
    if (!path.startsWith('/v1/'))
      throw new ChaperoneError('not_found', 'the console passes on only /v1/ routes');
    const body = method === 'POST' ? await readBody(req) : undefined;
    const answer = await api.stream({
      method,
      path: `${path}${url.search}`,
      token: s.token,
      ...(body !== undefined ? { body } : {}),
    });
    if (answer.status === 401 && s.source === 'token') {
      // The token expired or was revoked: the session ends with it.
      sessions.end(s.id);
      setCookie(res, undefined);
    }
    res.writeHead(answer.status, passedHeaders(answer));
    // Passed on as it arrives; a failure half-way (or the browser leaving) cuts both ends.
    await pipeline(answer.body, res).catch((err: unknown) =>
      logger.debug({ err, path }, 'an API answer was not passed on whole'),
    );
  }

  function asset(res: ServerResponse, name: AssetName): void {
    const body = assets?.get(name);
    if (!body) throw new ChaperoneError('unavailable', NOT_BUILT);
    res.writeHead(200, { 'content-type': ASSET_TYPES[name], 'cache-control': 'no-cache' });
    res.end(body);
  }

  async function route(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const path = url.pathname;
    if (path.startsWith(API_PREFIX)) return forward(req, res, url);
    if (path === `${CONSOLE_PATH}/session`) {
      if (req.method === 'GET') return sendJson(res, 200, await sessionView(sessionOf(req, res)));
      if (req.method === 'POST') return signIn(req, res);
      if (req.method === 'DELETE') {
        const s = sessions.use(readCookie(req.headers.cookie, cookieName));
        guard(req, s, false);
        if (s) sessions.end(s.id);
        setCookie(res, undefined);
        logger.info('console sign-out');
        res.writeHead(204).end();
        return;
      }
      res.setHeader('allow', 'GET, POST, DELETE');
      throw new ChaperoneError('usage', `${req.method} ${path}: use GET, POST or DELETE`);
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET');
      throw new ChaperoneError('usage', `${req.method} ${path}: the page is read with GET`);
    }
    if (path === CONSOLE_PATH) {
      res.writeHead(308, { location: `${CONSOLE_PATH}/` }).end();
      return;
    }
    // The page, also at its own addresses (/console/events?…, /console/approvals/<id>, …).
    if (isPagePath(path)) return asset(res, 'index.html');
    const m = /^\/console\/assets\/([a-z.]+)$/.exec(path);
    if (m && m[1] !== 'index.html' && Object.hasOwn(ASSET_TYPES, m[1] as string))
      return asset(res, m[1] as AssetName);
    throw new ChaperoneError('not_found', `nothing at ${path}: the console is at ${CONSOLE_PATH}/`);
  }

  return {
    async handle(req, res) {
      try {
        setSecurityHeaders(res, tls);
        await route(req, res, parseRequestTarget(req.url));
      } catch (err) {
        const e = toChaperoneError(err);
        if ((STATUS[e.code] ?? 500) >= 500 && e.code !== 'unavailable')
          logger.error({ err: e }, 'console request failed');
        if (!res.headersSent) sendError(res, e);
        else res.destroy();
      }
    },
    close() {
      clearInterval(sweep);
    },
  };
}
