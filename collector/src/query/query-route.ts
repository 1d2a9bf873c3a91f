/**
 * A route of the query listener beyond the events routes of http-api.ts:
 * given an authenticated request, it answers and returns true, or returns
 * false when the path is not its own. Errors it throws are answered by
 * http-api.ts like every other (json-response.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Principal } from '../auth/query-auth.ts';

export interface QueryRequest {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly url: URL;
  readonly who: Principal;
  /** The request's clock, µs since the epoch. */
  readonly nowUs: number;
}

export type QueryRoute = (q: QueryRequest) => Promise<boolean>;
