/**
 * Outermost guard: whatever happens inside — an answer, an upstream failure,
 * an exception, the client going away — the request produces exactly one
 * audit event, written when the response is closed.
 */
import type { Logger } from '@chaperone/shared';
import type { AuditRecorder } from '../../audit/recorder.ts';
import type { Guard } from '../context.ts';
import { sendStatus, statusBody } from '../status.ts';

export function audit(recorder: AuditRecorder, log: Logger): Guard {
  return (next) => (ctx) => {
    ctx.res.onClose(() => recorder.recordKube(ctx));
    const crashed = (err: unknown) => {
      log.error({ err, auditID: ctx.auditID }, 'internal error while handling a request');
      const message = `chaperone: internal error (audit id ${ctx.auditID})`;
      ctx.failure = { code: 500, reason: 'InternalError', message };
      sendStatus(ctx.res, statusBody(500, 'InternalError', message));
    };
    try {
      const r = next(ctx);
      if (r instanceof Promise) r.catch(crashed);
    } catch (err) {
      crashed(err);
    }
  };
}
