/**
 * The console's overview routes:
 *
 *   GET /v1/whoami     who the token is, the namespaces it reads, how it was authenticated
 *   GET /v1/overview   ?since=24h&until&namespace…&protocol…: outcomes over time, top rules,
 *                      namespaces, protocols, the agents most active and the newest blocked
 *                      events, from the store's rollups (never a scan of the events)
 *
 * Everything is narrowed to the caller's namespaces (namespace-scope.ts).
 */
import { PROTOCOLS, ValidationError } from '@chaperone/shared';
import type { Principal } from '../auth/query-auth.ts';
import type { AuditStore } from '../store/store.ts';
import { sendJson } from './json-response.ts';
import { listParam, scopedNamespaces, timeRange } from './namespace-scope.ts';
import type { QueryRoute } from './query-route.ts';

const LATEST_BLOCKED = 20;

export function whoami(who: Principal) {
  return {
    subject: who.subject,
    namespaces: who.namespaces === '*' ? '*' : [...who.namespaces].sort(),
    via: who.via ?? 'static',
  };
}

export function overviewRoutes(store: AuditStore): QueryRoute {
  return async ({ res, url, who, nowUs }) => {
    if (url.pathname === '/v1/whoami') {
      sendJson(res, 200, JSON.stringify(whoami(who)));
      return true;
    }
    if (url.pathname !== '/v1/overview') return false;
    const params = url.searchParams;
    const range = timeRange(params, nowUs, { since: '24h' });
    const protocol = listParam(params, 'protocol');
    for (const p of protocol)
      if (!(PROTOCOLS as readonly string[]).includes(p))
        throw new ValidationError('protocol', `${JSON.stringify(p)} is not one of ${PROTOCOLS.join(', ')}`);
    const namespace = scopedNamespaces(who, listParam(params, 'namespace'));
    const scope = {
      ...range,
      ...(namespace ? { namespace } : {}),
      ...(protocol.length ? { protocol } : {}),
    };
    const [counts, blocked] = await Promise.all([
      store.overview(scope),
      namespace?.length === 0
        ? { events: [] }
        : store.queryEvents({ ...scope, decision: ['deny'] }, { limit: LATEST_BLOCKED }),
    ]);
    const { series, byRule, byNamespace, byProtocol, agents, ...head } = counts;
    // The newest blocked events exactly as stored (the JSON the sidecar hashed).
    sendJson(
      res,
      200,
      `${JSON.stringify({ ...head, series, byRule, byNamespace, byProtocol }).slice(0, -1)},"latestBlocked":[${blocked.events.join(',')}],"agents":${JSON.stringify(agents)}}`,
    );
    return true;
  };
}
