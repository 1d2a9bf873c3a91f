/**
 * The console's session routes:
 *
 *   GET /v1/sessions                 ?since&until&namespace…&pod…&serviceAccount…&protocol…
 *                                    (exec, attach, portforward, postgres)&limit&cursor: sessions
 *                                    active in the range, newest first by start, from the rollups
 *   GET /v1/sessions/{id}/recording  the asciicast v2 recording as received; with ?offset=N only
 *                                    its bytes from N (a page following a live session polls it);
 *                                    `X-Recording-Size` always says how long it is now
 *
 * A recording is filed under its pod's namespace: out of scope reads as absent.
 */
import { ChaperoneError, ValidationError } from '@chaperone/shared';
import { inScope } from '../auth/query-auth.ts';
import type { AuditStore } from '../store/store.ts';
import { visible } from '../text/visible-text.ts';
import { limitOf, sendJson } from './json-response.ts';
import { listParam, scopedNamespaces, timeRange } from './namespace-scope.ts';
import type { QueryRoute } from './query-route.ts';
import { decodePathSegment } from './request-target.ts';

const SESSION_KINDS = ['exec', 'attach', 'portforward', 'postgres'];
const DAY_US = 86_400_000_000;

function offsetOf(params: URLSearchParams, size: number): number {
  const raw = params.get('offset');
  if (raw === null) return 0;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n))
    throw new ValidationError('offset', 'must be a whole number of bytes');
  if (n > size)
    throw new ValidationError(
      'offset',
      `is past the end of the recording (${size} bytes): start again from 0`,
    );
  return n;
}

export function sessionRoutes(store: AuditStore): QueryRoute {
  return async ({ res, url, who, nowUs }) => {
    const params = url.searchParams;
    if (url.pathname === '/v1/sessions') {
      const kinds = listParam(params, 'protocol');
      for (const k of kinds)
        if (!SESSION_KINDS.includes(k))
          throw new ValidationError(
            'protocol',
            `${JSON.stringify(k)} is not one of ${SESSION_KINDS.join(', ')}`,
          );
      const namespace = scopedNamespaces(who, listParam(params, 'namespace'));
      const pod = listParam(params, 'pod');
      const serviceAccount = listParam(params, 'serviceAccount');
      const cursor = params.get('cursor') ?? undefined;
      const page = await store.listSessions(
        {
          ...timeRange(params, nowUs, { since: '1970-01-01T00:00:00Z', until: nowUs + DAY_US }),
          ...(namespace ? { namespace } : {}),
          ...(pod.length ? { pod } : {}),
          ...(serviceAccount.length ? { serviceAccount } : {}),
          ...(kinds.length ? { protocol: kinds } : {}),
        },
        { limit: limitOf(params), ...(cursor ? { cursor } : {}) },
        nowUs,
      );
      sendJson(res, 200, JSON.stringify(page));
      return true;
    }
    const m = /^\/v1\/sessions\/([^/]+)\/recording$/.exec(url.pathname);
    if (!m) return false;
    const id = decodePathSegment(m[1] as string, 'session id');
    const rec = await store.getRecording(id);
    if (!rec || !inScope(who.namespaces, rec.namespace))
      throw new ChaperoneError('not_found', `session ${visible(id)} has no recording`);
    const bytes = Buffer.from(rec.content, 'utf8');
    const offset = offsetOf(params, bytes.length);
    res.writeHead(200, {
      'content-type': 'application/x-asciicast',
      'cache-control': 'no-store',
      'x-recording-size': String(bytes.length),
      ...(params.has('offset')
        ? {}
        : { 'content-disposition': `attachment; filename="${id.replace(/[^A-Za-z0-9._-]/g, '_')}.cast"` }),
    });
    res.end(offset === 0 ? bytes : bytes.subarray(offset));
    return true;
  };
}
