/**
 * exec, attach and port-forward carry interactive streams that this sidecar
 * does not record yet; rather than pass them through unrecorded, it refuses
 * them with a clear Status (kubectl prints the message).
 */
import type { Guard } from '../context.ts';
import { sendStatus, statusBody } from '../status.ts';

/** The built-in rule these refusals are recorded under (and `kubectl auth can-i` answers with). */
export const SESSIONS_RULE = 'chaperone-sessions-not-recorded';

export function refuseConnect(): Guard {
  return (next) => (ctx) => {
    const exec = ctx.action?.exec;
    if (!exec) return next(ctx);
    const what = exec.kind === 'portforward' ? 'port-forward' : exec.kind;
    const message = `chaperone: ${what} sessions cannot be recorded by this sidecar version, so they are refused rather than passed through unrecorded`;
    // A built-in denial like any other: the event and the blocked metrics name the rule (the
    // policy's allow that got the request here is not what happened to it).
    ctx.decision = { action: 'deny', rule: SESSIONS_RULE, reason: 'self_protection', message };
    ctx.answered = { code: 403, reason: 'Forbidden', message };
    sendStatus(ctx.res, statusBody(403, 'Forbidden', message));
  };
}
