/**
 * Everything one Kubernetes API request accumulates on its way through the
 * guards, for the response and for its audit event.
 */
import { randomUUID } from 'node:crypto';
import type { Action, Decision } from '@chaperone/shared';
import { answerOverWebSocket } from './exec/answer-over-websocket.ts';
import { asksForWebSocket, readWebSocketOffer, type WebSocketOffer } from './exec/handshake.ts';
import type { AgentRequest, AgentResponse } from './http1/agent-connection.ts';
import { type RequestInfo, readQuery, splitTarget } from './request-info.ts';

export interface KubeRequestContext {
  readonly req: AgentRequest;
  readonly res: AgentResponse;
  /** process.hrtime.bigint() at arrival. */
  readonly startNs: bigint;
  readonly receivedAt: Date;
  /** Also sent upstream as `Audit-ID`, so the API server's audit log correlates. */
  readonly auditID: string;
  /** The request target's path as sent (not decoded): what goes upstream. */
  readonly path: string;
  /** The query parameters as the API server reads them (Go's url.ParseQuery; see request-info.ts). */
  readonly query: URLSearchParams;
  /** Why the query cannot be read with certainty as the API server reads it (the request is then refused). */
  readonly queryProblem: string | undefined;
  /** Captured at arrival: the socket is gone by the time the event is written. */
  readonly remoteAddress: string;
  info?: RequestInfo;
  action?: Action;
  decision?: Decision;
  /** The request body, when a guard had to read it (it is then sent upstream from here). */
  body?: Buffer;
  /**
   * Set by the object check when the write carries a resourceVersion
   * precondition that the guard added (the agent's had none): a 409 Conflict
   * to it may mean only that the object changed since the guard read it.
   * Forward then hands the 409's body to this instead of passing it on:
   * undefined means the conflict is the agent's (a field manager's, in an
   * apply) and goes to it as it came; otherwise the write is checked again
   * against the object as it is now, and the promise says whether ctx.body is
   * to be sent again (true) or was answered (false).
   */
  retryConflict?: (status: Buffer) => Promise<boolean> | undefined;
  /** Values masked in the response. */
  maskedFields: number;
  /** The sidecar's own time so far, in ns (excludes waiting for the upstream). */
  overheadNs: bigint;
  /** Why the request failed in the sidecar or upstream, if it did (for the event). */
  failure?: { code: number; reason: string; message: string };
  /** For a request the sidecar answered itself: the Status it sent. */
  answered?: { code: number; reason: string; message: string };
  /**
   * A WebSocket upgrade offering a channel protocol the guard speaks (exec and
   * attach sessions): every answer to it goes over the WebSocket, a Status on
   * the error channel, since kubectl would take any other answer as a reason to
   * retry over SPDY.
   */
  webSocket?: WebSocketOffer;
  /** A port-forward session, once the guard has read how the agent forwards (portforward/session-guard.ts). */
  portForward?: { transport: 'spdy' | 'websocket' };
  /** The ports a Chaperone sidecar listens on in the pod a port-forward goes to (portforward/sidecar-ports.ts). */
  sidecarPorts?: ReadonlySet<number>;
  /** Why the exec target could not be completed (the pod lookup failed): the session is refused with it, once allowed. */
  execProblem?: { code: number; reason: string; message: string };
  /** Why the exec or attach target container is a Chaperone sidecar (exec-target.ts): refused by decide. */
  execIntoSidecar?: string;
  /** Why the exec or attach target container holds a credential outside the guard (token-holders.ts): refused by decide. */
  execIntoToken?: string;
}

/** The query of every request without one: shared, never mutated. */
const NO_QUERY = new URLSearchParams();

export function newContext(req: AgentRequest, res: AgentResponse): KubeRequestContext {
  const { path, rawQuery } = splitTarget(req.url);
  const query = rawQuery === '' ? undefined : readQuery(rawQuery);
  const ctx: KubeRequestContext = {
    req,
    res,
    startNs: process.hrtime.bigint(),
    receivedAt: new Date(),
    auditID: randomUUID(),
    path,
    query: query === undefined ? NO_QUERY : query.params,
    queryProblem: query?.problem,
    remoteAddress: req.remoteAddress,
    maskedFields: 0,
    overheadNs: 0n,
  };
  // A port-forward's refusals are plain HTTP (its WebSocket carries ports, not an error channel;
  // exec-target.ts drops this for any request read as one; the path test covers the guards before it).
  if (req.upgrade && asksForWebSocket(req) && !path.endsWith('/portforward')) {
    const offer = readWebSocketOffer(req);
    if (!('problem' in offer)) {
      ctx.webSocket = offer;
      res.answerThrough(answerOverWebSocket(offer));
    }
  }
  return ctx;
}

export type Handler = (ctx: KubeRequestContext) => void | Promise<void>;
/** A guard wraps the next handler: it may answer the request itself or pass it on. */
export type Guard = (next: Handler) => Handler;

export function compose(guards: readonly Guard[], terminal: Handler): Handler {
  return guards.reduceRight<Handler>((next, guard) => guard(next), terminal);
}
