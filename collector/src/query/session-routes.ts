/**
 * The console's session routes:
 *
 *   GET /v1/sessions                 ?since&until&namespace…&pod…&serviceAccount…&protocol…
 *                                    (exec, attach, portforward, postgres)&limit&cursor: sessions
 *                                    active in the range, newest first by start, from the rollups
 *   GET /v1/sessions/{id}/recording  the asciicast v2 recording as received (a download); with
 *                                    ?offset=N[&length=M] at most M bytes (at most
 *                                    MAX_RECORDING_READ, the default) from byte N, which may end
 *                                    inside a character: a page reads a recording in pieces and
 *                                    follows a live session by polling from what it has.
 *                                    `X-Recording-Size` always says how long it is now
 *
 * A recording is filed under its pod's namespace: out of scope reads as absent.
 */
import type { ServerResponse } from 'node:http';
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

/** Most bytes one read with `?offset=` answers (`length` may ask for fewer). */
export const MAX_RECORDING_READ = 4 * 1024 * 1024;

function bytesParam(params: URLSearchParams, name: string): number | undefined {
  const raw = params.get(name);
  if (raw === null) return undefined;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n))
    throw new ValidationError(name, 'must be a whole number of bytes');
  return n;
}

function offsetOf(params: URLSearchParams, size: number): number {
  const n = bytesParam(params, 'offset') ?? 0;
  if (n > size)
    throw new ValidationError(
      'offset',
      `is past the end of the recording (${size} bytes): start again from 0`,
    );
  return n;
}

/** Resolves when `res` can take more, or is closed (the client left). */
function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done).off('close', done);
      resolve();
    };
    res.on('drain', done).on('close', done);
  });
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
    const rec = await store.recordingInfo(id);
    if (!rec || !inScope(who.namespaces, rec.namespace))
      throw new ChaperoneError('not_found', `session ${visible(id)} has no recording`);
    const offset = offsetOf(params, rec.size);
    const length = bytesParam(params, 'length');
    if (length !== undefined && !params.has('offset'))
      throw new ValidationError('length', 'reads part of a recording: give offset too (from 0)');
    if (length === 0 || (length ?? 1) > MAX_RECORDING_READ)
      throw new ValidationError('length', `must be 1 to ${MAX_RECORDING_READ} bytes`);
    const headers = {
      'content-type': 'application/x-asciicast',
      'cache-control': 'no-store',
      'x-recording-size': String(rec.size),
    };
    if (params.has('offset')) {
      const bytes = await store.readRecording(id, offset, length ?? MAX_RECORDING_READ);
      res.writeHead(200, headers).end(bytes ?? Buffer.alloc(0));
      return true;
    }
    // The whole recording as a download, a piece at a time (never all of it in memory).
    res.writeHead(200, {
      ...headers,
      'content-length': String(rec.size),
      'content-disposition': `attachment; filename="${id.replace(/[^A-Za-z0-9._-]/g, '_')}.cast"`,
    });
    for (let at = 0; at < rec.size; ) {
      const piece = await store.readRecording(id, at, Math.min(MAX_RECORDING_READ, rec.size - at));
      // Removed by retention meanwhile: the download ends short of its length, as a failure.
      if (!piece?.length || res.destroyed) {
        res.destroy();
        return true;
      }
      at += piece.length;
      if (!res.write(piece)) await drained(res);
    }
    res.end();
    return true;
  };
}
