/**
 * port-forward carries a stream that this sidecar does not record yet; rather
 * than pass it through unrecorded, it is refused with a clear Status (kubectl
 * prints the message). exec and attach go on to their session guard
 * (exec/session-guard.ts).
 */
import type { Guard } from '../context.ts';
import { sendStatus, statusBody } from '../status.ts';

/** The built-in rule these refusals are recorded under (and `kubectl auth can-i` answers with). */
export const SESSIONS_RULE = 'chaperone-sessions-not-recorded';

export function refuseConnect(): Guard {
  return (next) => (ctx) => {
    if (ctx.action?.exec?.kind !== 'portforward') return next(ctx);
    const message =
      'chaperone: port-forward sessions cannot be recorded by this sidecar version, so they are refused rather than passed through unrecorded';
    // A built-in denial like any other: the event and the blocked metrics name the rule (the
    // policy's allow that got the request here is not what happened to it).
    ctx.decision = { action: 'deny', rule: SESSIONS_RULE, reason: 'self_protection', message };
    ctx.answered = { code: 403, reason: 'Forbidden', message };
    sendStatus(ctx.res, statusBody(403, 'Forbidden', message));
  };
}
