/**
 * The events of a port-forward session after its request's own (which opens
 * it: stage ResponseStarted, code 101, `chaperone.portForward` with the
 * transport and any ports of the URL): one per port decision and one at the
 * end. Each is made from the request's event — same user, objectRef, source —
 * with a new `auditID` and the session's id (the request's) in `sessionId`.
 * Pure but for the fresh id.
 */
import { randomUUID } from 'node:crypto';
import type { Decision, PortForwardPortUse, UnchainedEvent } from '@chaperone/shared';
import type { RelayProblem } from './socket-relay.ts';

type Status = NonNullable<UnchainedEvent['responseStatus']>;

function asSessionEvent(e: UnchainedEvent, sessionId: string): void {
  e.auditID = randomUUID();
  e.stage = 'ResponseComplete';
  e.chaperone.sessionId = sessionId;
}

function failure(code: number, reason: string, message: string): Status {
  return { code, message, metadata: {}, reason, status: 'Failure' };
}

/** One port's decision: allowed (200) or refused (403, with what the agent was told). */
export function portDecisionEvent(
  e: UnchainedEvent,
  sessionId: string,
  port: number,
  outcome: { decision: Decision; refusal?: string },
): UnchainedEvent {
  asSessionEvent(e, sessionId);
  const d = outcome.decision;
  const refused = outcome.refusal !== undefined;
  e.annotations = {
    'authorization.k8s.io/decision': refused ? 'forbid' : 'allow',
    'authorization.k8s.io/reason': `chaperone ${d.reason} ${d.rule}: ${d.message}`.slice(0, 1024),
    'chaperone.dev/rule': d.rule,
  };
  e.chaperone.decision = { action: d.action, message: d.message, reason: d.reason, rule: d.rule };
  e.chaperone.portForward = { ...e.chaperone.portForward, port };
  e.responseStatus =
    outcome.refusal === undefined ? { code: 200, metadata: {} } : failure(403, 'Forbidden', outcome.refusal);
  return e;
}

export interface PortForwardSummary {
  readonly transport: 'spdy' | 'websocket';
  readonly used: readonly PortForwardPortUse[];
  readonly durationMs: number;
  readonly problem?: RelayProblem | undefined;
}

/** The end of the session: every port asked for with what it carried, the totals, how long it lasted. */
export function portForwardEndEvent(
  e: UnchainedEvent,
  sessionId: string,
  s: PortForwardSummary,
): UnchainedEvent {
  asSessionEvent(e, sessionId);
  const p = s.problem;
  e.responseStatus = p ? failure(p.code, p.reason, p.message) : { code: 200, metadata: {} };
  let toPod = 0;
  let toAgent = 0;
  for (const u of s.used) {
    toPod += u.bytesToPod;
    toAgent += u.bytesToAgent;
  }
  e.chaperone.portForward = {
    ...e.chaperone.portForward,
    bytesToAgent: toAgent,
    bytesToPod: toPod,
    durationMs: s.durationMs,
    transport: s.transport,
    used: s.used.map((u) => ({ ...u })),
  };
  return e;
}
