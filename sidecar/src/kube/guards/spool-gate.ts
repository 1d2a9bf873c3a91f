/**
 * Fail closed when the audit spool is full: a request that could not be
 * recorded is not served (unless the operator chose fail-open).
 */
import type { Spool } from '../../audit/spool.ts';
import type { SidecarMetrics } from '../../metrics.ts';
import type { Guard } from '../context.ts';
import { sendStatus, statusBody } from '../status.ts';

export function spoolGate(spool: Spool, failOpen: boolean, metrics: SidecarMetrics): Guard {
  return (next) => (ctx) => {
    if (spool.hasCapacity()) return next(ctx);
    if (failOpen) {
      metrics.spoolRefused.inc({ outcome: 'served' });
      return next(ctx);
    }
    metrics.spoolRefused.inc({ outcome: 'refused' });
    const message = `chaperone: the audit spool is full (${spool.depth} events not yet delivered to the collector); requests are refused until they are, because unrecorded requests are not allowed. Check that the collector is reachable.`;
    ctx.answered = { code: 503, reason: 'ServiceUnavailable', message };
    sendStatus(ctx.res, statusBody(503, 'ServiceUnavailable', message), { 'retry-after': '5' });
  };
}
