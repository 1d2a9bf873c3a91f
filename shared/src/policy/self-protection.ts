/**
 * Built-in rules that no policy can switch off: an agent may not loosen or
 * blind its own guard. They run before the policy's rules.
 */
import type { Action, Decision, SelfProtection } from './types.ts';

const WRITE_VERBS = new Set(['create', 'update', 'patch', 'delete', 'deletecollection']);

function deny(rule: string, message: string): Decision {
  return { action: 'deny', rule, reason: 'self_protection', message };
}

/** The first built-in rule the action breaks, or undefined. */
export function checkSelfProtection(action: Action, protection: SelfProtection): Decision | undefined {
  if (action.impersonation && action.impersonation.length > 0) {
    return deny(
      'chaperone-no-impersonation',
      `impersonation headers (${action.impersonation.join(', ')}) are not allowed through the guard`,
    );
  }
  if (action.protocol === 'postgres') return undefined;

  const group = action.apiGroup ?? '';
  const write = WRITE_VERBS.has(action.verb);

  if (action.resource === 'pods' && action.subresource === 'ephemeralcontainers') {
    return deny(
      'chaperone-no-ephemeral-containers',
      'adding ephemeral containers is not allowed: they would run outside the guard',
    );
  }
  if (action.exec && (action.exec.kind === 'exec' || action.exec.kind === 'attach')) {
    if (action.exec.container === protection.sidecarContainer) {
      return deny(
        'chaperone-no-exec-into-sidecar',
        `${action.exec.kind} into the ${protection.sidecarContainer} container is not allowed`,
      );
    }
  }
  if (!write) return undefined;

  if (group === '' && action.resource === 'namespaces' && action.verb !== 'create' && !action.subresource) {
    return deny(
      'chaperone-protect-namespaces',
      'changing or deleting namespaces is not allowed: it could remove the chaperone.dev/inject label',
    );
  }
  if (
    group === '' &&
    action.resource === 'configmaps' &&
    (protection.namespace === undefined || action.namespace === protection.namespace) &&
    (action.verb === 'deletecollection' ||
      (action.name !== undefined && protection.policyConfigMaps.includes(action.name)))
  ) {
    return deny(
      'chaperone-protect-policy',
      'the guardrail policy ConfigMap cannot be changed from inside the guard',
    );
  }
  if (
    group === 'networking.k8s.io' &&
    action.resource === 'networkpolicies' &&
    (action.verb === 'deletecollection' || action.name === undefined || action.name.startsWith('chaperone'))
  ) {
    return deny(
      'chaperone-protect-network-policy',
      "Chaperone's NetworkPolicies cannot be changed from inside the guard",
    );
  }
  if (
    group === 'admissionregistration.k8s.io' &&
    (action.resource === 'mutatingwebhookconfigurations' ||
      action.resource === 'validatingwebhookconfigurations')
  ) {
    return deny(
      'chaperone-protect-webhooks',
      'admission webhook configurations cannot be changed from inside the guard',
    );
  }
  return undefined;
}
