/**
 * exec, attach and port-forward carry interactive streams that this sidecar
 * does not record yet; rather than pass them through unrecorded, it refuses
 * them with a clear Status (kubectl prints the message).
 */
import type { Guard } from '../context.ts';
import { sendStatus, statusBody } from '../status.ts';

export function refuseConnect(): Guard {
  return (next) => (ctx) => {
    const exec = ctx.action?.exec;
    if (!exec) return next(ctx);
    const what = exec.kind === 'portforward' ? 'port-forward' : exec.kind;
    const message = `chaperone: ${what} sessions cannot be recorded by this sidecar version, so they are refused rather than passed through unrecorded`;
    ctx.answered = { code: 403, reason: 'Forbidden', message };
    sendStatus(ctx.res, statusBody(403, 'Forbidden', message));
  };
}
