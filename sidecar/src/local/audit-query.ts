/**
 * Reads a session's events back from the collector's query API
 * (`GET /v1/events?sidecarId=…`, newest first, page by page): for the summary
 * at the end of a session and for `chaperone local status|audit`.
 */

import type { AuditEvent } from '@chaperone/shared';
import { ChaperoneError } from '@chaperone/shared';

export interface QueryTarget {
  readonly queryUrl: string;
  readonly token: string;
}

/** Every event of the chain `sidecarId`, oldest first (at most `max`). */
export async function sessionEvents(t: QueryTarget, sidecarId: string, max = 100_000): Promise<AuditEvent[]> {
  const out: AuditEvent[] = [];
  let cursor: string | undefined;
  do {
    const params = new URLSearchParams({ sidecarId, limit: '1000' });
    if (cursor) params.set('cursor', cursor);
    const url = `${t.queryUrl}/v1/events?${params}`;
    const res = await fetch(url, {
      headers: { authorization: `Bearer ${t.token}`, accept: 'application/json' },
      signal: AbortSignal.timeout(30_000),
    });
    if (!res.ok)
      throw new ChaperoneError(
        'unavailable',
        `the collector's query API answered HTTP ${res.status} to GET /v1/events: ${(await res.text()).slice(0, 300)}`,
      );
    const page = (await res.json()) as { items: AuditEvent[]; nextCursor?: string };
    out.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor && out.length < max);
  return out.sort((a, b) => a.chaperone.seq - b.chaperone.seq);
}
