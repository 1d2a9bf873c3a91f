/**
 * Fail closed before a request is decided when its event could not be kept:
 * the audit spool is full, its last write failed, or the collector has not
 * taken the spooled events for longer than the configured bound. The request
 * is answered with a 503 Status saying which, and what to do. `failOpen`
 * serves anyway when the spool cannot take events (they are then lost); the
 * collector bound is switched off by setting it to 0.
 */
import type { Spool } from '../../audit/spool.ts';
import type { SidecarMetrics } from '../../metrics.ts';
import type { Guard } from '../context.ts';
import { sendStatus, statusBody } from '../status.ts';

export interface SpoolGateOptions {
  readonly spool: Spool;
  readonly failOpen: boolean;
  readonly metrics: SidecarMetrics;
  /**
   * How long the collector may have been out of reach or behind (ms; 0: no
   * bound), and since when it has been (ms since epoch, undefined when it is
   * keeping up). Absent when no collector is configured.
   */
  readonly collector?: {
    readonly maxLagMs: number;
    readonly behindSince: () => number | undefined;
  };
  readonly now?: () => number;
}

function seconds(ms: number): string {
  return `${Math.round(ms / 1000)} s`;
}

export function spoolGate(o: SpoolGateOptions): Guard {
  const { spool, failOpen, metrics, collector } = o;
  const now = o.now ?? Date.now;
  return (next) => (ctx) => {
    let reason: 'spool_full' | 'spool_write_failed' | 'collector_behind' | undefined;
    let message = '';
    if (!spool.hasCapacity()) {
      reason = 'spool_full';
      message = `chaperone: the audit spool is full (${spool.depth} events not yet delivered to the collector); requests are refused until they are, because unrecorded requests are not allowed. Check that the collector is reachable.`;
    } else if (spool.writeFailure !== undefined) {
      reason = 'spool_write_failed';
      message = `chaperone: the last write to the audit spool failed (${spool.writeFailure}); requests are refused until an event can be written again, because unrecorded requests are not allowed. Check the sidecar's spool volume (free space, mount).`;
    } else if (collector && collector.maxLagMs > 0) {
      const since = collector.behindSince();
      if (since !== undefined && now() - since > collector.maxLagMs) {
        reason = 'collector_behind';
        message = `chaperone: the audit collector has not acknowledged this pod's events for ${seconds(now() - since)} (the limit is ${seconds(collector.maxLagMs)}; ${spool.depth} events are waiting in the spool); requests are refused until it does, because actions must not outrun their record. Check that the collector is running and reachable from this pod (the sidecar's log says why it is not connected).`;
      }
    }
    if (reason === undefined) return next(ctx);
    // The collector bound has its own off switch (0); fail-open is about the spool.
    if (failOpen && reason !== 'collector_behind') {
      metrics.auditGateRefused.inc({ reason, outcome: 'served' });
      if (reason === 'spool_full') metrics.spoolRefused.inc({ outcome: 'served' });
      return next(ctx);
    }
    metrics.auditGateRefused.inc({ reason, outcome: 'refused' });
    if (reason === 'spool_full') metrics.spoolRefused.inc({ outcome: 'refused' });
    ctx.answered = { code: 503, reason: 'ServiceUnavailable', message };
    sendStatus(ctx.res, statusBody(503, 'ServiceUnavailable', message), { 'retry-after': '5' });
  };
}
