/**
 * The approval metrics, on the collector's one registry. Labels are bounded:
 * namespace and rule (finite sets the cluster's operators own) are capped at
 * MAX_SERIES distinct pairs, the rest counted under `_other`; never a pod,
 * user or action. `chaperone_approvals_pending` is read from the store when
 * scraped, so every replica on one PostgreSQL reports the same number (take
 * max(), not sum(), across replicas).
 */
import { counter, gauge, histogram, type Registry } from '@chaperone/shared';
import type { ApprovalStore } from '../store/approval-store.ts';

const MAX_SERIES = 1000;
/** Seconds, 1 s to 24 h: a human decides. */
const DECISION_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400];

export type ApprovalOutcome = 'approved' | 'denied' | 'expired' | 'withdrawn' | 'granted';

export interface ApprovalMetrics {
  requested(namespace: string, rule: string, protocol: string): void;
  /** A request ended (`granted`: let through by a grant without a review); `seconds` from request to end. */
  decided(
    labels: { namespace: string; rule: string; protocol: string },
    outcome: ApprovalOutcome,
    seconds: number,
  ): void;
}

export function createApprovalMetrics(registry: Registry, store: ApprovalStore): ApprovalMetrics {
  const requested = counter(registry, {
    name: 'chaperone_approvals_requested_total',
    help: 'Approval requests received from sidecars, by namespace, rule and protocol',
    labelNames: ['namespace', 'rule', 'protocol'] as const,
  });
  const decided = counter(registry, {
    name: 'chaperone_approvals_decided_total',
    help: 'Approval requests ended, by namespace, rule, protocol and outcome (approved, denied, expired, withdrawn, granted)',
    labelNames: ['namespace', 'rule', 'protocol', 'outcome'] as const,
  });
  const seconds = histogram(registry, {
    name: 'chaperone_approval_decision_seconds',
    help: 'From an approval request to its end, by outcome',
    labelNames: ['outcome'] as const,
    buckets: DECISION_BUCKETS,
  });
  gauge(registry, {
    name: 'chaperone_approvals_pending',
    help: 'Approval requests waiting for approvers, by namespace (read from the store when scraped)',
    labelNames: ['namespace'] as const,
    async collect() {
      const pending = await store.list({ states: ['pending'], limit: 100_000 });
      const counts = new Map<string, number>();
      for (const a of pending)
        counts.set(a.requester.namespace, (counts.get(a.requester.namespace) ?? 0) + 1);
      this.reset();
      let shown = 0;
      for (const [namespace, n] of counts) {
        if (shown++ < MAX_SERIES) this.set({ namespace }, n);
        else this.inc({ namespace: '_other' }, n);
      }
    },
  });
  const series = new Set<string>();
  const bounded = (namespace: string, rule: string) => {
    const key = `${namespace}\u0000${rule}`;
    if (series.has(key) || series.size < MAX_SERIES) {
      series.add(key);
      return { namespace, rule };
    }
    return { namespace: '_other', rule: '_other' };
  };
  return {
    requested(namespace, rule, protocol) {
      requested.inc({ ...bounded(namespace, rule), protocol });
    },
    decided(labels, outcome, s) {
      decided.inc({ ...bounded(labels.namespace, labels.rule), protocol: labels.protocol, outcome });
      seconds.observe({ outcome }, Math.max(0, s));
    },
  };
}
