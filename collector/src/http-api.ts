/**
 * The query API (every route needs a bearer token, see query-auth.ts):
 *
 *   GET /v1/events               filters (event-filter.ts), newest first, `limit`, `cursor`;
 *                                `order=asc`; `order=arrival` follows commit order (tail -f);
 *                                JSON {items, nextCursor} or JSONL (Accept: application/x-ndjson
 *                                or ?format=jsonl; the cursor is then in X-Next-Cursor)
 *   GET /v1/events/{auditID}     one event
 *   GET /v1/sessions/{id}        a session's events in order
 *   GET /v1/sessions/{id}/recording   the asciicast v2 recording as received
 *   GET /v1/alerts               integrity alerts (sidecarId, namespace, kind, since, limit)
 *   GET /v1/chains               every sidecar chain with owner and head
 *   GET /healthz, /readyz        unauthenticated probes
 *
 * Events are returned exactly as stored (the JSON the sidecar hashed). Every
 * authenticated request is logged with who asked and what, so reads of the
 * audit log are themselves on record.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ChaperoneError, type Logger, toChaperoneError, ValidationError } from '@chaperone/shared';
import type { CollectorMetrics } from './collector-metrics.ts';
import { parseEventFilter } from './event-filter.ts';
import type { QueryAuthenticator } from './query-auth.ts';
import { decodePathSegment, parseRequestTarget } from './request-target.ts';
import { AuthError } from './sidecar-identity.ts';
import { ALERT_KINDS, type AlertKind, type AuditStore } from './store.ts';
import { visible } from './terminal-safe.ts';
import { nowMicros, parseTimeBound } from './time.ts';

export interface HttpApiOptions {
  store: AuditStore;
  auth: QueryAuthenticator;
  logger: Logger;
  metrics: CollectorMetrics;
}

const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1000;
const MAX_SESSION_EVENTS = 100_000;

const STATUS: Record<string, number> = {
  validation_failed: 400,
  usage: 400,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  limit_exceeded: 413,
  unavailable: 503,
};

function sendJson(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(body);
}

function sendError(res: ServerResponse, err: ChaperoneError): void {
  const status = STATUS[err.code] ?? 500;
  if (status === 401) res.setHeader('www-authenticate', 'Bearer realm="chaperone-collector"');
  sendJson(res, status, JSON.stringify({ error: { code: err.code, message: err.message } }));
}

function limitOf(params: URLSearchParams): number {
  const raw = params.get('limit');
  if (raw === null) return DEFAULT_LIMIT;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > MAX_LIMIT)
    throw new ValidationError('limit', `must be a whole number from 1 to ${MAX_LIMIT}`);
  return n;
}

function wantsJsonl(req: IncomingMessage, params: URLSearchParams): boolean {
  const format = params.get('format');
  if (format === 'jsonl' || format === 'ndjson') return true;
  if (format === 'json') return false;
  if (format !== null) throw new ValidationError('format', 'must be json or jsonl');
  const accept = String(req.headers.accept ?? '');
  return /application\/(x-)?(ndjson|jsonl)/.test(accept);
}

export function createHttpApi(opts: HttpApiOptions) {
  const { store, auth, logger } = opts;

  async function events(req: IncomingMessage, res: ServerResponse, params: URLSearchParams): Promise<void> {
    const filter = parseEventFilter((n) => params.getAll(n), nowMicros());
    const limit = limitOf(params);
    const order = params.get('order') ?? 'desc';
    const cursor = params.get('cursor') ?? undefined;
    const jsonl = wantsJsonl(req, params);
    let items: readonly string[];
    let next: string | undefined;
    if (order === 'arrival') {
      const page = await store.readArrival(
        cursor === 'end' ? await store.arrivalEnd() : cursor,
        limit,
        filter,
      );
      items = page.events;
      next = page.cursor;
    } else if (order === 'desc' || order === 'asc') {
      const page = await store.queryEvents(filter, { limit, order, ...(cursor ? { cursor } : {}) });
      items = page.events;
      next = page.nextCursor;
    } else {
      throw new ValidationError('order', 'must be desc, asc or arrival');
    }
    if (jsonl) {
      res.writeHead(200, {
        'content-type': 'application/x-ndjson',
        'cache-control': 'no-store',
        ...(next ? { 'x-next-cursor': next } : {}),
      });
      res.end(items.length ? `${items.join('\n')}\n` : '');
    } else {
      sendJson(
        res,
        200,
        `{"items":[${items.join(',')}]${next ? `,"nextCursor":${JSON.stringify(next)}` : ''}}`,
      );
    }
  }

  async function route(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const path = url.pathname;
    const params = url.searchParams;
    if (path === '/v1/events') return events(req, res, params);
    let m = /^\/v1\/events\/([^/]+)$/.exec(path);
    if (m) {
      const id = decodePathSegment(m[1] as string, 'auditID');
      const e = await store.getEvent(id);
      if (!e) throw new ChaperoneError('not_found', `no event with id ${visible(id)}`);
      return sendJson(res, 200, e);
    }
    m = /^\/v1\/sessions\/([^/]+)(\/recording)?$/.exec(path);
    if (m) {
      const id = decodePathSegment(m[1] as string, 'session id');
      if (m[2]) {
        const rec = await store.getRecording(id);
        if (!rec) throw new ChaperoneError('not_found', `session ${visible(id)} has no recording`);
        res.writeHead(200, {
          'content-type': 'application/x-asciicast',
          'content-disposition': `attachment; filename="${id.replace(/[^A-Za-z0-9._-]/g, '_')}.cast"`,
          'cache-control': 'no-store',
        });
        res.end(rec.content);
        return;
      }
      const events = await store.sessionEvents(id, MAX_SESSION_EVENTS);
      if (events.length === 0) throw new ChaperoneError('not_found', `no events for session ${visible(id)}`);
      const recording = (await store.getRecording(id)) !== undefined;
      if (wantsJsonl(req, params)) {
        res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
        res.end(`${events.join('\n')}\n`);
        return;
      }
      return sendJson(
        res,
        200,
        `{"sessionId":${JSON.stringify(id)},"recording":${recording},"events":[${events.join(',')}]}`,
      );
    }
    if (path === '/v1/alerts') {
      const kind = params.get('kind') ?? undefined;
      if (kind !== undefined && !(ALERT_KINDS as readonly string[]).includes(kind))
        throw new ValidationError('kind', `must be one of ${ALERT_KINDS.join(', ')}`);
      const since = params.get('since');
      const sidecarId = params.get('sidecarId');
      const namespace = params.get('namespace');
      const alerts = await store.listAlerts(
        {
          ...(sidecarId ? { sidecarId } : {}),
          ...(namespace ? { namespace } : {}),
          ...(kind ? { kind: kind as AlertKind } : {}),
          ...(since ? { sinceUs: parseTimeBound(since, nowMicros()) } : {}),
        },
        limitOf(params),
      );
      return sendJson(res, 200, JSON.stringify({ items: alerts }));
    }
    if (path === '/v1/chains') return sendJson(res, 200, JSON.stringify({ items: await store.listChains() }));
    throw new ChaperoneError(
      'not_found',
      `no route ${visible(path)}: see /v1/events, /v1/sessions/{id}, /v1/alerts, /v1/chains`,
    );
  }

  /**
   * Answers every request, whatever it holds: a bad target or parameter is a
   * 400, anything unexpected a 500 and a log line. It never rejects.
   */
  return async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let path = '';
    try {
      const url = parseRequestTarget(req.url);
      path = url.pathname;
      if (url.pathname === '/healthz') {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
        return;
      }
      if (url.pathname === '/readyz') {
        await store.ping();
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ready\n');
        return;
      }
      if (req.method !== 'GET') {
        res.setHeader('allow', 'GET');
        sendJson(
          res,
          405,
          JSON.stringify({ error: { code: 'usage', message: 'the query API is read-only: use GET' } }),
        );
        return;
      }
      let principal: { subject: string };
      try {
        principal = await auth.authenticate(req.headers.authorization);
      } catch (err) {
        const e = toChaperoneError(err);
        opts.metrics.authFailures.inc({ surface: 'query', code: e.code });
        if (!(err instanceof AuthError)) logger.warn({ err: e }, 'query authentication unavailable');
        throw e;
      }
      logger.info({ subject: principal.subject, path: url.pathname, query: url.search }, 'audit query');
      await route(req, res, url);
    } catch (err) {
      const e = toChaperoneError(err);
      if ((STATUS[e.code] ?? 500) >= 500) logger.error({ err: e, path }, 'query failed');
      try {
        if (!res.headersSent) sendError(res, e);
        else res.destroy();
      } catch (sendErr) {
        logger.warn({ err: sendErr, path }, 'could not answer a failed query');
        res.destroy();
      }
    }
  };
}
