/**
 * The review client's metrics, on the sidecar's one registry: how holds ended
 * (by protocol, rule and outcome — bounded: the policy's rule names) and how
 * many actions are held now.
 */
import { type Counter, counter, type Gauge, gauge, type Registry } from '@chaperone/shared';

/** How a hold ended; `granted`: an earlier approval's grant covered it, no human was asked. */
export const REVIEW_OUTCOMES = ['approved', 'granted', 'denied', 'expired', 'unavailable'] as const;
export type ReviewMetricOutcome = (typeof REVIEW_OUTCOMES)[number];

export interface ReviewMetrics {
  readonly reviews: Counter<'protocol' | 'rule' | 'outcome'>;
  readonly held: Gauge<string>;
}

export function reviewMetrics(registry: Registry): ReviewMetrics {
  return {
    reviews: counter(registry, {
      name: 'chaperone_sidecar_reviews_total',
      help: 'Actions held for a human approval, by protocol, rule and how the hold ended (approved, granted, denied, expired, unavailable)',
      labelNames: ['protocol', 'rule', 'outcome'],
    }),
    held: gauge(registry, {
      name: 'chaperone_sidecar_reviews_held',
      help: 'Actions held now, waiting for a human approval',
    }),
  };
}
