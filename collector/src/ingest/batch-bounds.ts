/**
 * Bounds a batch must keep beyond what each event's own validation checks
 * (shared/src/audit-event.ts bounds every numeric member of one event):
 *
 * - sequence numbers strictly increase within the batch (a sidecar sends its
 *   chain in order; a resend is a contiguous slice of it);
 * - `requestReceivedTimestamp` lies between 2000-01-01 and one day after the
 *   collector received the batch. Older events arrive legitimately after an
 *   outage (the spool keeps them), so there is no closer lower bound; a clock
 *   a day fast is a broken node, and such events would sort ahead of every
 *   real one in queries.
 *
 * Pure: the answer names the first offending event and what to do.
 */
import type { IncomingEvent } from '../events/incoming-event.ts';

export const MIN_EVENT_TIME_US = Date.UTC(2000, 0, 1) * 1000;
export const MAX_CLOCK_AHEAD_US = 24 * 3600 * 1_000_000;

export function batchBoundsProblem(
  events: readonly IncomingEvent[],
  receivedUs: number,
): { path: string; message: string } | undefined {
  let prev = 0;
  for (const [i, e] of events.entries()) {
    const seq = e.chaperone.seq;
    if (seq <= prev)
      return {
        path: `/events/${i}/chaperone/seq`,
        message: `seq ${seq} follows seq ${prev} in the same batch: send a chain's events in increasing seq order`,
      };
    prev = seq;
    const t = e.row.timeUs;
    if (!Number.isSafeInteger(t) || t < MIN_EVENT_TIME_US || t > receivedUs + MAX_CLOCK_AHEAD_US)
      return {
        path: `/events/${i}/requestReceivedTimestamp`,
        message: `event ${e.auditID} says it was received at ${describeMicros(t)}, outside the accepted range (from 2000-01-01 to one day after the collector received it): check the node's clock`,
      };
  }
  return undefined;
}

function describeMicros(us: number): string {
  const d = new Date(Math.floor(us / 1000));
  return Number.isNaN(d.getTime()) ? `${us} µs after the epoch` : d.toISOString();
}
