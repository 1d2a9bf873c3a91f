/**
 * The injector's Prometheus metrics, created once in main on the process
 * registry. Labels are bounded: results, skip reasons, rejected fields are
 * annotation names or spec paths reduced to their first segment.
 */
import { counter, gauge, histogram, type Registry } from '@chaperone/shared';

export type AdmissionResult = 'injected' | 'skipped' | 'rejected' | 'error' | 'ignored';

/** Outcomes of the validating webhook: guarded, admitted by exemption, denied, or not its concern. */
export type ValidationResult = 'admitted' | 'exempt' | 'denied' | 'ignored';

export function createInjectorMetrics(registry: Registry) {
  return {
    admissions: counter(registry, {
      name: 'chaperone_injector_admissions_total',
      help: 'Admission reviews answered, by result (injected, skipped, rejected, error, ignored) and reason',
      labelNames: ['result', 'reason'] as const,
    }),
    validations: counter(registry, {
      name: 'chaperone_injector_validations_total',
      help: 'Validating admission reviews answered (pods and opted-in namespaces), by result (admitted, exempt, denied, ignored) and reason',
      labelNames: ['result', 'reason'] as const,
    }),
    admissionDuration: histogram(registry, {
      name: 'chaperone_injector_admission_duration_seconds',
      help: 'Time from receiving an AdmissionReview (mutating or validating) to the end of the answer, by outcome (patched, allowed, denied)',
      labelNames: ['result'] as const,
    }),
    badRequests: counter(registry, {
      name: 'chaperone_injector_bad_requests_total',
      help: 'Requests answered with an HTTP error before admission (malformed, oversized, wrong method)',
      labelNames: ['reason'] as const,
    }),
    certificateExpiry: gauge(registry, {
      name: 'chaperone_injector_certificate_expiry_timestamp_seconds',
      help: 'Unix time at which the webhook serving certificate in use expires',
    }),
    certificateReloads: counter(registry, {
      name: 'chaperone_injector_certificate_reloads_total',
      help: 'Serving certificates loaded into the running server',
    }),
    certificatesIssued: counter(registry, {
      name: 'chaperone_injector_certificates_issued_total',
      help: 'Certificates the leader issued, by kind (ca, serving)',
      labelNames: ['kind'] as const,
    }),
    leader: gauge(registry, {
      name: 'chaperone_injector_leader',
      help: '1 while this replica holds the Lease (patches caBundle, keeps the NetworkPolicies and collector CA ConfigMaps)',
    }),
    webhookConfigurationActions: counter(registry, {
      name: 'chaperone_injector_webhook_configuration_actions_total',
      help: 'Reconciliations of the webhook configurations, by configuration (mutating, validating) and action (created, repaired, unchanged, error)',
      labelNames: ['configuration', 'action'] as const,
    }),
    networkPolicyActions: counter(registry, {
      name: 'chaperone_injector_network_policy_actions_total',
      help: 'NetworkPolicy reconciliations, by action (created, repaired, deleted, unchanged, error)',
      labelNames: ['action'] as const,
    }),
    collectorCaActions: counter(registry, {
      name: 'chaperone_injector_collector_ca_actions_total',
      help: 'Reconciliations of the collector CA ConfigMap in opted-in namespaces, by action (created, repaired, deleted, unchanged, error)',
      labelNames: ['action'] as const,
    }),
    managedNamespaces: gauge(registry, {
      name: 'chaperone_injector_managed_namespaces',
      help: 'Opted-in namespaces whose NetworkPolicy and collector CA this replica manages (leader only)',
    }),
  };
}

export type InjectorMetrics = ReturnType<typeof createInjectorMetrics>;
