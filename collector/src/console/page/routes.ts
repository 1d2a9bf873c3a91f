/**
 * The console's own addresses, one place for both sides: the collector
 * serves the page at each of them (console-handler.ts), and the page reads
 * which view to show from its address (main.ts). Pure, no DOM.
 *
 *   /console/                       overview
 *   /console/events?<filters>       events (the API's filter names) and /console/events/{auditID}
 *   /console/sessions?<filters>     sessions and /console/sessions/{id}
 *   /console/approvals[#history|#grants] and /console/approvals/{approval id}
 *   /console/access-review?since&until&namespace&serviceAccount
 */
import { withParams } from './filters.ts';

export type Route =
  | { readonly view: 'overview' }
  | { readonly view: 'events' }
  | { readonly view: 'event'; readonly id: string }
  | { readonly view: 'sessions' }
  | { readonly view: 'session'; readonly id: string }
  | { readonly view: 'approvals' }
  | { readonly view: 'approval'; readonly id: string }
  | { readonly view: 'access-review' };

/** An event's or a session's id as it may appear in an address (audit IDs: ≤ 256 of `[A-Za-z0-9-]`). */
const RECORD_ID = /^[A-Za-z0-9._:-]{1,256}$/;
const APPROVAL_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const LISTS = { events: 'event', sessions: 'session', approvals: 'approval' } as const;

/** The view at `pathname`, or undefined when the console has nothing there. */
export function routeOf(pathname: string): Route | undefined {
  if (pathname === '/console/' || pathname === '/console/overview') return { view: 'overview' };
  if (pathname === '/console/access-review') return { view: 'access-review' };
  const m = /^\/console\/(events|sessions|approvals)(?:\/([^/]+))?$/.exec(pathname);
  if (!m) return undefined;
  const list = m[1] as keyof typeof LISTS;
  if (m[2] === undefined) return { view: list };
  let id: string;
  try {
    id = decodeURIComponent(m[2]);
  } catch {
    return undefined;
  }
  if (!(list === 'approvals' ? APPROVAL_ID : RECORD_ID).test(id)) return undefined;
  return { view: LISTS[list], id };
}

/** True when the collector serves the page at `pathname`. */
export function isPagePath(pathname: string): boolean {
  return routeOf(pathname) !== undefined;
}

/** The nav entry a route belongs to. */
export function sectionOf(r: Route): 'overview' | 'events' | 'sessions' | 'approvals' | 'access-review' {
  switch (r.view) {
    case 'event':
      return 'events';
    case 'session':
      return 'sessions';
    case 'approval':
      return 'approvals';
    default:
      return r.view;
  }
}

/** Addresses the views link to. */
export const link = {
  event: (id: string) => `/console/events/${encodeURIComponent(id)}`,
  session: (id: string) => `/console/sessions/${encodeURIComponent(id)}`,
  approval: (id: string) => `/console/approvals/${encodeURIComponent(id)}`,
  events: (params: URLSearchParams) => withParams('/console/events', params),
};
