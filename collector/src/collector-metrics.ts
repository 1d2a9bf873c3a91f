/**
 * The collector's Prometheus metrics, created once on the process registry
 * (docs/metrics.md lists them). Labels are bounded: protocol, action, alert
 * kind, forwarder name, outcome code; blocked events carry namespace, rule
 * and protocol (finite sets owned by the cluster's operators), capped at
 * MAX_BLOCKED_SERIES distinct combinations with the rest counted under
 * `_other`. Never a pod name.
 */
import { counter, gauge, histogram, type Registry } from '@chaperone/shared';
import type { IncomingEvent } from './events/incoming-event.ts';

const MAX_BLOCKED_SERIES = 1000;

/** Seconds, 1 ms to 10 s: ingest and commit latency both include a durable (fsynced) commit. */
const COMMIT_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Seconds, 50 ms to 6 h: an event waits in its sidecar's spool while the collector is out of reach. */
const LAG_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600];

export function createCollectorMetrics(registry: Registry) {
  const events = counter(registry, {
    name: 'chaperone_collector_events_total',
    help: 'Audit events stored, by protocol and decision action',
    labelNames: ['protocol', 'action'] as const,
  });
  const blocked = counter(registry, {
    name: 'chaperone_collector_blocked_events_total',
    help: 'Stored events the guard denied, by namespace, rule and protocol',
    labelNames: ['namespace', 'rule', 'protocol'] as const,
  });
  const lag = histogram(registry, {
    name: 'chaperone_collector_event_lag_seconds',
    help: "From an event's request time to its commit in the store (spool wait, transfer and commit)",
    buckets: LAG_BUCKETS,
  });
  const blockedSeries = new Set<string>();
  const countBlocked = (d: { namespace: string; rule: string; protocol: string; n: number }): void => {
    const key = `${d.namespace}\u0000${d.rule}\u0000${d.protocol}`;
    if (blockedSeries.has(key) || blockedSeries.size < MAX_BLOCKED_SERIES) {
      blockedSeries.add(key);
      blocked.inc({ namespace: d.namespace, rule: d.rule, protocol: d.protocol }, d.n);
    } else {
      blocked.inc({ namespace: '_other', rule: '_other', protocol: d.protocol }, d.n);
    }
  };
  return {
    /**
     * Counts a batch's stored events by protocol/action, and denials by
     * namespace/rule/protocol: one increment per label set, not one per
     * event; and observes each event's lag at `nowMs` (just committed).
     */
    countStored(stored: readonly IncomingEvent[], nowMs = Date.now()): void {
      const byKind = new Map<string, { protocol: string; action: string; n: number }>();
      let denied: Map<string, { namespace: string; rule: string; protocol: string; n: number }> | undefined;
      for (const { row } of stored) {
        const { protocol, action } = row;
        lag.observe(Math.max(0, nowMs / 1000 - row.timeUs / 1e6));
        const key = `${protocol}\u0000${action}`;
        const k = byKind.get(key);
        if (k) k.n++;
        else byKind.set(key, { protocol, action, n: 1 });
        if (action === 'deny') {
          denied ??= new Map();
          const dk = `${row.namespace}\u0000${row.rule}\u0000${protocol}`;
          const d = denied.get(dk);
          if (d) d.n++;
          else denied.set(dk, { namespace: row.namespace, rule: row.rule, protocol, n: 1 });
        }
      }
      for (const k of byKind.values()) events.inc({ protocol: k.protocol, action: k.action }, k.n);
      if (denied) for (const d of denied.values()) countBlocked(d);
    },
    duplicates: counter(registry, {
      name: 'chaperone_collector_duplicate_events_total',
      help: 'Resent events recognised by id and acknowledged without storing them again',
    }),
    batches: counter(registry, {
      name: 'chaperone_collector_batches_total',
      help: 'Batches answered, by outcome (ack or the nack code)',
      labelNames: ['outcome'] as const,
    }),
    ingestLatency: histogram(registry, {
      name: 'chaperone_collector_ingest_duration_seconds',
      help: 'From a batch arriving to its acknowledgement (validated, committed and fsynced)',
      buckets: COMMIT_BUCKETS,
    }),
    commitLatency: histogram(registry, {
      name: 'chaperone_collector_store_commit_duration_seconds',
      help: 'Time to commit one group of batches to the store',
      buckets: COMMIT_BUCKETS,
    }),
    integrityAlerts: counter(registry, {
      name: 'chaperone_collector_integrity_alerts_total',
      help: 'Tamper-evidence findings recorded as integrity alerts (chain verification failures), by kind',
      labelNames: ['kind'] as const,
    }),
    connections: gauge(registry, {
      name: 'chaperone_collector_ingest_connections',
      help: 'Open sidecar ingest connections',
    }),
    authFailures: counter(registry, {
      name: 'chaperone_collector_auth_failures_total',
      help: 'Refused connections and queries, by surface and reason code',
      labelNames: ['surface', 'code'] as const,
    }),
    queueEvents: gauge(registry, {
      name: 'chaperone_collector_write_queue_events',
      help: 'Events received and waiting to be committed',
    }),
    pausedConnections: gauge(registry, {
      name: 'chaperone_collector_paused_connections',
      help: 'Ingest connections not being read because the write queue is full',
    }),
    storeEvents: gauge(registry, {
      name: 'chaperone_collector_store_events',
      help: 'Events held in the store',
    }),
    storeBytes: gauge(registry, {
      name: 'chaperone_collector_store_bytes',
      help: 'Size of the store on disk',
    }),
    retentionDeleted: counter(registry, {
      name: 'chaperone_collector_retention_deleted_events_total',
      help: 'Events removed by retention',
    }),
    forwarderLagEvents: gauge(registry, {
      name: 'chaperone_collector_forwarder_lag_events',
      help: 'Stored events a forwarder has not delivered yet',
      labelNames: ['forwarder'] as const,
    }),
    forwarderLagSeconds: gauge(registry, {
      name: 'chaperone_collector_forwarder_lag_seconds',
      help: 'Age of the oldest event a forwarder has not delivered yet (0 when caught up)',
      labelNames: ['forwarder'] as const,
    }),
    forwarderSent: counter(registry, {
      name: 'chaperone_collector_forwarder_sent_events_total',
      help: 'Events a forwarder delivered',
      labelNames: ['forwarder'] as const,
    }),
    forwarderErrors: counter(registry, {
      name: 'chaperone_collector_forwarder_errors_total',
      help: 'Failed deliveries (retried), by forwarder',
      labelNames: ['forwarder'] as const,
    }),
    forwarderDropped: counter(registry, {
      name: 'chaperone_collector_forwarder_dropped_events_total',
      help: 'Events a destination refused permanently (e.g. HTTP 400), by forwarder',
      labelNames: ['forwarder'] as const,
    }),
  };
}

export type CollectorMetrics = ReturnType<typeof createCollectorMetrics>;
