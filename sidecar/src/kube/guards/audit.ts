/**
 * Outermost guard: whatever happens inside — an answer, an upstream failure,
 * an exception, the client going away — the request produces exactly one
 * audit event.
 *
 * The event is written to the spool before the first byte of the answer goes
 * out: when the response head is set (writeHead, or write/end without one).
 * If the spool does not take it, the agent does not get that answer but a 503
 * Status saying why (fail closed), and whatever was producing the answer is
 * stopped by an exception (the forwarder aborts the upstream exchange). So an
 * answer an agent has seen always has its event in the spool file, which
 * outlives a crash of the sidecar. A request that ends without any answer
 * (the client went away first) is recorded when it closes.
 *
 * With fail-open configured, an answer whose event could not be written is
 * given anyway (the event is then lost, and counted).
 */
import { ChaperoneError, type Logger } from '@chaperone/shared';
import type { AuditRecorder } from '../../audit/recorder.ts';
import type { Spool } from '../../audit/spool.ts';
import type { SidecarMetrics } from '../../metrics.ts';
import type { Guard, KubeRequestContext } from '../context.ts';
import { sendStatus, statusBody } from '../status.ts';

export interface AuditGuardOptions {
  readonly recorder: AuditRecorder;
  readonly spool: Spool;
  readonly failOpen: boolean;
  readonly metrics: SidecarMetrics;
  readonly log: Logger;
}

/** Thrown into whatever was answering when the answer's event could not be written (the agent has been told). */
export class AuditNotRecordedError extends ChaperoneError {
  constructor(message: string) {
    super('unavailable', message);
    this.name = 'AuditNotRecordedError';
  }
}

export function audit(o: AuditGuardOptions): Guard {
  const { recorder, spool, failOpen, metrics, log } = o;
  return (next) => (ctx) => {
    const res = ctx.res;
    let recorded = false;
    let refusing = false;
    /** Appends the event; true when the spool took it (its head moved on). */
    const record = (): boolean => {
      const before = spool.head.seq;
      recorder.recordKube(ctx);
      recorded = spool.head.seq > before;
      return recorded;
    };
    const realWriteHead = res.writeHead;
    // The one place every answer passes before its first byte is sent (end() and
    // write() without a head call it too): nothing is on the socket yet.
    res.writeHead = (code, headers) => {
      if (!recorded && !refusing) admit(ctx, code);
      realWriteHead.call(res, code, headers);
    };
    const admit = (c: KubeRequestContext, code: number) => {
      // The event reads the answer's status from the response.
      c.res.statusCode = code;
      c.res.headersSent = true;
      let ok: boolean;
      try {
        ok = record();
      } finally {
        c.res.headersSent = false;
      }
      if (ok) return;
      if (failOpen) {
        metrics.auditGateRefused.inc({ reason: 'spool_write_failed', outcome: 'served' });
        return;
      }
      metrics.auditGateRefused.inc({ reason: 'spool_write_failed', outcome: 'refused' });
      refusing = true;
      const why = spool.writeFailure ?? 'the event could not be built';
      const message = `chaperone: the audit event of this request could not be written to the audit spool (${why}); the answer is withheld because unrecorded requests are not allowed. The request may have reached the API server: check its state before retrying. If this persists, check the sidecar's spool volume (free space, mount) — audit id ${c.auditID}`;
      c.failure = { code: 503, reason: 'ServiceUnavailable', message };
      sendStatus(res, statusBody(503, 'ServiceUnavailable', message), { 'retry-after': '5' });
      throw new AuditNotRecordedError(message);
    };
    res.onClose(() => {
      if (!recorded) record();
    });
    const crashed = (err: unknown) => {
      // The agent already has the Status saying why.
      if (err instanceof AuditNotRecordedError) return;
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
