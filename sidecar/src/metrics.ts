/**
 * The sidecar's Prometheus metrics, all in one place (docs/metrics.md lists them).
 * Labels stay bounded: protocol, verb, action, rule, reason, outcome, code, and
 * the guarded pod's namespace, which is one constant value per sidecar.
 */
import { type Counter, counter, gauge, histogram, type Registry } from '@chaperone/shared';

export interface SidecarMetricsOptions {
  /** The guarded pod's namespace, added to the blocked and masked counts. */
  readonly namespace: string;
}

/** A counter by protocol and rule whose namespace label is filled in with the sidecar's own. */
export interface RuleCounter {
  inc(labels: { protocol: string; rule: string }, value?: number): void;
}

function inNamespace(c: Counter<'namespace' | 'protocol' | 'rule'>, namespace: string): RuleCounter {
  return { inc: (labels, value) => c.inc({ namespace, ...labels }, value) };
}

/** What the spool gauges report, read when the metrics are scraped. */
export interface SpoolState {
  readonly depth: number;
  readonly unackedBytes: number;
  /** When the oldest unacknowledged event was appended (ms since epoch), or undefined. */
  readonly oldestUnackedAt: number | undefined;
}

export function sidecarMetrics(registry: Registry, opts: SidecarMetricsOptions) {
  let spool: SpoolState | undefined;
  let behindSince: (() => number | undefined) | undefined;
  return {
    /** The spool the gauges describe: read at every scrape, so they are never a tick behind. */
    watchSpool(s: SpoolState): void {
      spool = s;
    },
    /** Since when the collector has been out of reach or behind (ms since epoch), read at every scrape. */
    watchCollector(since: () => number | undefined): void {
      behindSince = since;
    },
    requests: counter(registry, {
      name: 'chaperone_requests_total',
      help: 'Requests decided by the sidecar, by protocol, verb, decision and the rule that decided',
      labelNames: ['protocol', 'verb', 'action', 'rule'],
    }),
    blocked: inNamespace(
      counter(registry, {
        name: 'chaperone_blocked_total',
        help: 'Requests denied (including reviews that were not approved), by namespace, protocol and rule',
        labelNames: ['namespace', 'protocol', 'rule'],
      }),
      opts.namespace,
    ),
    maskedFields: inNamespace(
      counter(registry, {
        name: 'chaperone_masked_fields_total',
        help: 'Values replaced by masking before they reached the agent, by namespace, protocol and rule',
        labelNames: ['namespace', 'protocol', 'rule'],
      }),
      opts.namespace,
    ),
    overhead: histogram(registry, {
      name: 'chaperone_proxy_overhead_seconds',
      help: "Time the sidecar itself adds to a request (decision, header handling, masking), excluding the upstream's time",
      labelNames: ['protocol'],
    }),
    upstreamErrors: counter(registry, {
      name: 'chaperone_upstream_errors_total',
      help: 'Requests that failed to reach the upstream or got no answer, by reason',
      labelNames: ['protocol', 'reason'],
    }),
    spoolDepth: gauge(registry, {
      name: 'chaperone_spool_events',
      help: 'Audit events not yet acknowledged by the collector',
      collect() {
        if (spool) this.set(spool.depth);
      },
    }),
    spoolBytes: gauge(registry, {
      name: 'chaperone_spool_unacked_bytes',
      help: 'Bytes of audit events not yet acknowledged',
      collect() {
        if (spool) this.set(spool.unackedBytes);
      },
    }),
    spoolOldest: gauge(registry, {
      name: 'chaperone_spool_oldest_unacked_seconds',
      help: 'Age of the oldest audit event not yet acknowledged by the collector',
      collect() {
        const oldest = spool?.oldestUnackedAt;
        if (spool) this.set(oldest === undefined ? 0 : (Date.now() - oldest) / 1000);
      },
    }),
    spoolRefused: counter(registry, {
      name: 'chaperone_spool_full_total',
      help: 'Requests that arrived while the audit spool was full, by what happened (refused = fail closed, served = fail open)',
      labelNames: ['outcome'],
    }),
    auditGateRefused: counter(registry, {
      name: 'chaperone_audit_unrecordable_requests_total',
      help: 'Requests that arrived when their audit event could not be kept, by reason (spool_full, spool_write_failed, collector_behind) and what happened (refused = fail closed, served = fail open)',
      labelNames: ['reason', 'outcome'],
    }),
    collectorBehind: gauge(registry, {
      name: 'chaperone_sidecar_collector_behind_seconds',
      help: 'How long the collector has been out of reach or has held spooled events unacknowledged (0 while it keeps up); requests are refused beyond the configured bound',
      collect() {
        const since = behindSince?.();
        if (behindSince) this.set(since === undefined ? 0 : Math.max(0, (Date.now() - since) / 1000));
      },
    }),
    collectorHeadConflicts: counter(registry, {
      name: 'chaperone_sidecar_collector_head_conflicts_total',
      help: 'Times the collector claimed events of this chain that the spool never gave it (welcome ahead of the spool, a different hash, an ack beyond the batch); the spool keeps its events and resends them',
      labelNames: ['kind'],
    }),
    auditWriteFailures: counter(registry, {
      name: 'chaperone_audit_write_failures_total',
      help: 'Audit events that could not be written to the spool',
    }),
    collectorConnected: gauge(registry, {
      name: 'chaperone_sidecar_collector_connected',
      help: '1 while connected to the collector',
    }),
    collectorAcks: counter(registry, {
      name: 'chaperone_sidecar_collector_acked_events_total',
      help: 'Events acknowledged by the collector',
    }),
    collectorNacks: counter(registry, {
      name: 'chaperone_sidecar_collector_rejected_batches_total',
      help: 'Batches the collector rejected, by code',
      labelNames: ['code'],
    }),
    sqlStatements: counter(registry, {
      name: 'chaperone_sql_statements_total',
      help: 'SQL statements decided by the PostgreSQL guard, by parser node type, decision and the rule that decided',
      labelNames: ['kind', 'action', 'rule'],
    }),
    sqlParseCache: counter(registry, {
      name: 'chaperone_sql_parse_cache_total',
      help: 'SQL texts classified by the PostgreSQL guard, by whether the parse cache had them (hit, miss)',
      labelNames: ['result'],
    }),
    policyReloads: counter(registry, {
      name: 'chaperone_policy_reloads_total',
      help: 'Policy file reloads by result (success, failure, missing)',
      labelNames: ['result'],
    }),
    policyLoaded: gauge(registry, {
      name: 'chaperone_policy_loaded',
      help: '1 when a valid policy from the policy file is in force, 0 when every request is denied for lack of one',
    }),
    certificateExpiry: gauge(registry, {
      name: 'chaperone_local_certificate_expiry_timestamp_seconds',
      help: "Expiry of the sidecar's serving certificate",
    }),
    memoryReleases: counter(registry, {
      name: 'chaperone_sidecar_memory_releases_total',
      help: 'Collections run to give memory back once the sidecar was quiet after start-up or a burst of requests',
    }),
    memoryReleasedBytes: counter(registry, {
      name: 'chaperone_sidecar_memory_released_bytes_total',
      help: 'Bytes of V8 heap and the memory it held outside given back by those collections',
    }),
  };
}

export type SidecarMetrics = ReturnType<typeof sidecarMetrics>;
