/**
 * The query API, served on its own listener (--query-listen-port), never on
 * the ingest port the agents' network policy opens. Every route needs a
 * bearer token (query-auth.ts) and answers only within the namespaces the
 * token may read: naming another namespace is a 403, and what is not named
 * (an unfiltered query, an event, session or recording by id, alerts,
 * chains) is narrowed to the token's namespaces.
 *
 *   GET /v1/events               filters (event-filter.ts), newest first, `limit`, `cursor`;
 *                                `order=asc`; `order=arrival` follows commit order (tail -f);
 *                                JSON {items, nextCursor} or JSONL (Accept: application/x-ndjson
 *                                or ?format=jsonl; the cursor is then in X-Next-Cursor)
 *   GET /v1/events/{auditID}     one event
 *   GET /v1/events/{auditID}/chain   its place in its chain, re-verified (chain-route.ts)
 *   GET /v1/sessions/{id}        a session's events in order
 *   GET /v1/sessions, /v1/sessions/{id}/recording   sessions list, recording (session-routes.ts)
 *   GET /v1/alerts               integrity alerts (sidecarId, namespace, kind, since, limit)
 *   GET /v1/chains               every sidecar chain with owner and head
 *   GET /v1/whoami, /v1/overview the caller, the console's overview (overview-routes.ts)
 *   GET /v1/report               the access review, json, csv or markdown (report-routes.ts)
 *   GET /healthz, /readyz        unauthenticated probes
 *
 * Events are returned exactly as stored (the JSON the sidecar hashed). Every
 * authenticated request is logged with who asked and what, so reads of the
 * audit log are themselves on record.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  ChaperoneError,
  INGEST_PATH,
  type Logger,
  toChaperoneError,
  ValidationError,
} from '@chaperone/shared';
import { inScope, type Principal, type QueryAuthenticator } from '../auth/query-auth.ts';
import { AuthError } from '../auth/sidecar-identity.ts';
import type { CollectorMetrics } from '../collector-metrics.ts';
import { parseEventFilter } from '../events/event-filter.ts';
import { nowMicros, parseTimeBound } from '../events/time.ts';
import type { PublicKey } from '../integrity/checkpoints-key.ts';
import { ALERT_KINDS, type AlertKind, type AuditStore, type StoredAlert } from '../store/store.ts';
import { visible } from '../text/visible-text.ts';
import { type ApprovalRoutes, isApprovalPath } from './approval-routes.ts';
import { chainRoute } from './chain-route.ts';
import { limitOf, STATUS, sendError, sendJson } from './json-response.ts';
import { loggedQuery } from './logged-query.ts';
import { checkNamespaces } from './namespace-scope.ts';
import { overviewRoutes } from './overview-routes.ts';
import type { QueryRoute } from './query-route.ts';
import { reportRoutes } from './report-routes.ts';
import { decodePathSegment, parseRequestTarget } from './request-target.ts';
import { sessionRoutes } from './session-routes.ts';

export interface HttpApiOptions {
  store: AuditStore;
  auth: QueryAuthenticator;
  logger: Logger;
  metrics: CollectorMetrics;
  /** The approvers' API (approval-routes.ts): its own authentication, its own methods. */
  approvals?: ApprovalRoutes;
  /** The checkpoints' public key: `/v1/events/{id}/chain` checks the newest signed checkpoint with it. */
  checkpointKey?: PublicKey;
}

const MAX_SESSION_EVENTS = 100_000;

function wantsJsonl(req: IncomingMessage, params: URLSearchParams): boolean {
  const format = params.get('format');
  if (format === 'jsonl' || format === 'ndjson') return true;
  if (format === 'json') return false;
  if (format !== null) throw new ValidationError('format', 'must be json or jsonl');
  const accept = String(req.headers.accept ?? '');
  return /application\/(x-)?(ndjson|jsonl)/.test(accept);
}

/** The namespace an event's JSON names (its verified source: ingest refuses any other). */
function eventNamespace(json: string): string | undefined {
  try {
    const ns = (JSON.parse(json) as { chaperone?: { source?: { namespace?: unknown } } }).chaperone?.source
      ?.namespace;
    return typeof ns === 'string' ? ns : undefined;
  } catch {
    return undefined;
  }
}

/** Probes, answered on both listeners without a token. True when `path` was one. */
async function probe(store: AuditStore, path: string, res: ServerResponse): Promise<boolean> {
  if (path === '/healthz') {
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    return true;
  }
  if (path === '/readyz') {
    await store.ping();
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ready\n');
    return true;
  }
  return false;
}

export function createHttpApi(opts: HttpApiOptions) {
  const { store, auth, logger } = opts;
  const routes: readonly QueryRoute[] = [
    overviewRoutes(store),
    sessionRoutes(store),
    chainRoute(store, opts.checkpointKey),
    reportRoutes(store),
  ];

  async function events(
    req: IncomingMessage,
    res: ServerResponse,
    params: URLSearchParams,
    who: Principal,
  ): Promise<void> {
    let filter = parseEventFilter((n) => params.getAll(n), nowMicros());
    if (who.namespaces !== '*') {
      if (filter.namespace) checkNamespaces(who.namespaces, filter.namespace, who.subject);
      else filter = { ...filter, namespace: [...who.namespaces] };
    }
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

  async function alerts(params: URLSearchParams, who: Principal): Promise<readonly StoredAlert[]> {
    const kind = params.get('kind') ?? undefined;
    if (kind !== undefined && !(ALERT_KINDS as readonly string[]).includes(kind))
      throw new ValidationError('kind', `must be one of ${ALERT_KINDS.join(', ')}`);
    const since = params.get('since');
    const sidecarId = params.get('sidecarId');
    const namespace = params.get('namespace');
    const limit = limitOf(params);
    if (namespace) checkNamespaces(who.namespaces, [namespace], who.subject);
    const filter = {
      ...(sidecarId ? { sidecarId } : {}),
      ...(kind ? { kind: kind as AlertKind } : {}),
      ...(since ? { sinceUs: parseTimeBound(since, nowMicros()) } : {}),
    };
    if (namespace || who.namespaces === '*')
      return store.listAlerts({ ...filter, ...(namespace ? { namespace } : {}) }, limit);
    // Each namespace's newest, merged newest first (alerts are listed by id, descending).
    const lists = await Promise.all(
      [...who.namespaces].map((ns) => store.listAlerts({ ...filter, namespace: ns }, limit)),
    );
    return lists
      .flat()
      .sort((a, b) => b.id - a.id)
      .slice(0, limit);
  }

  async function route(req: IncomingMessage, res: ServerResponse, url: URL, who: Principal): Promise<void> {
    const path = url.pathname;
    const params = url.searchParams;
    const visibleTo = (ns: string | undefined) => ns !== undefined && inScope(who.namespaces, ns);
    if (path === '/v1/events') return events(req, res, params, who);
    let m = /^\/v1\/events\/([^/]+)$/.exec(path);
    if (m) {
      const id = decodePathSegment(m[1] as string, 'auditID');
      const e = await store.getEvent(id);
      // Out of scope reads as absent: a scoped token learns nothing of other namespaces.
      if (!e || (who.namespaces !== '*' && !visibleTo(eventNamespace(e))))
        throw new ChaperoneError('not_found', `no event with id ${visible(id)}`);
      return sendJson(res, 200, e);
    }
    for (const r of routes) if (await r({ req, res, url, who, nowUs: nowMicros() })) return;
    m = /^\/v1\/sessions\/([^/]+)$/.exec(path);
    if (m) {
      const id = decodePathSegment(m[1] as string, 'session id');
      const all = await store.sessionEvents(id, MAX_SESSION_EVENTS);
      // A session id is the sidecar's word: another namespace's events may claim it too.
      const events = who.namespaces === '*' ? all : all.filter((e) => visibleTo(eventNamespace(e)));
      if (events.length === 0) throw new ChaperoneError('not_found', `no events for session ${visible(id)}`);
      const rec = await store.recordingInfo(id);
      const recording = rec !== undefined && visibleTo(rec.namespace);
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
    if (path === '/v1/alerts')
      return sendJson(res, 200, JSON.stringify({ items: await alerts(params, who) }));
    if (path === '/v1/chains') {
      const chains = (await store.listChains()).filter((c) => visibleTo(c.owner.namespace));
      return sendJson(res, 200, JSON.stringify({ items: chains }));
    }
    throw new ChaperoneError(
      'not_found',
      `no route ${visible(path)}: see /v1/events, /v1/sessions, /v1/alerts, /v1/chains, /v1/overview, /v1/report, /v1/whoami`,
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
      if (await probe(store, path, res)) return;
      if (opts.approvals && isApprovalPath(path)) {
        await opts.approvals(req, res, url);
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
      let principal: Principal;
      try {
        principal = await auth.authenticate(req.headers.authorization);
      } catch (err) {
        const e = toChaperoneError(err);
        opts.metrics.authFailures.inc({ surface: 'query', code: e.code });
        if (!(err instanceof AuthError)) logger.warn({ err: e }, 'query authentication unavailable');
        throw e;
      }
      logger.info(
        { subject: principal.subject, path: url.pathname, query: loggedQuery(url.searchParams) },
        'audit query',
      );
      await route(req, res, url, principal);
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

/**
 * Requests on the ingest port: the probes, and for everything else a 404
 * that points at the query listener. The query API is not served here: the
 * agents' network policy opens this port for their sidecars, and an agent
 * holding a leaked query token must still not reach the audit log through it.
 */
export function createIngestPortApi(opts: { store: AuditStore; logger: Logger; queryPort: () => number }) {
  const { store, logger } = opts;
  return async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const path = parseRequestTarget(req.url).pathname;
      if (await probe(store, path, res)) return;
      throw new ChaperoneError(
        'not_found',
        `${visible(path)} is not served on the ingest port, which carries only ${INGEST_PATH} (WebSocket), /healthz and /readyz: the query API is on the query listener (--query-listen-port, here ${opts.queryPort()})`,
      );
    } catch (err) {
      const e = toChaperoneError(err);
      if ((STATUS[e.code] ?? 500) >= 500) logger.error({ err: e }, 'ingest port request failed');
      try {
        if (!res.headersSent) sendError(res, e);
        else res.destroy();
      } catch {
        res.destroy();
      }
    }
  };
}
