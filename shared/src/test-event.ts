/**
 * A well-formed sidecar audit event for tests (the i-th of a sequence), with
 * optional overrides: one builder for every package's tests, reached through
 * `@chaperone/shared/testing` (never the index, so no product code loads it).
 */
import { microTime, type UnchainedEvent } from './audit-event.ts';

export function testEvent(
  i: number,
  over: Partial<Omit<UnchainedEvent, 'chaperone'>> & {
    chaperone?: Partial<UnchainedEvent['chaperone']>;
  } = {},
): UnchainedEvent {
  const { chaperone, ...rest } = over;
  return {
    kind: 'Event',
    apiVersion: 'audit.k8s.io/v1',
    level: 'Metadata',
    auditID: `00000000-0000-0000-0000-${String(i).padStart(12, '0')}`,
    stage: 'ResponseComplete',
    requestURI: `/api/v1/namespaces/a/pods/p${i}`,
    verb: 'get',
    user: { username: 'system:serviceaccount:a:agent' },
    requestReceivedTimestamp: microTime(),
    stageTimestamp: microTime(),
    ...rest,
    chaperone: {
      schemaVersion: 1,
      protocol: 'kubernetes',
      source: { namespace: 'a', pod: 'p', serviceAccount: 'agent', sidecarId: 'a/p/uid' },
      decision: { action: 'allow', rule: 'default', reason: 'policy_default' },
      maskedFields: 0,
      ...chaperone,
    },
  };
}
