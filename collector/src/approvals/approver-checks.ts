/**
 * Who may decide one request, beyond RBAC: never the requesting pod's own
 * identity, and, when the request names approvers, only them. Pure.
 */
import { type Approver, POD_NAME_EXTRA, POD_UID_EXTRA } from '../auth/approver-auth.ts';
import type { ApprovalRecord } from '../store/approval-plan.ts';

/**
 * Why `who` may not decide a request of `requester`, or undefined: the
 * pod's service account, and any token bound to the pod, can never approve
 * its own requests (nothing holding the pod's credentials can).
 */
export function selfApprovalRefusal(
  who: Approver,
  requester: ApprovalRecord['requester'],
): string | undefined {
  const sa = `system:serviceaccount:${requester.namespace}:${requester.serviceAccount}`;
  if (who.user === sa)
    return `${who.user} is the requesting pod's own service account: a pod can never approve its own requests`;
  const podUID = who.extra[POD_UID_EXTRA]?.[0];
  const podName = who.extra[POD_NAME_EXTRA]?.[0];
  const saNamespace = /^system:serviceaccount:([^:]+):/.exec(who.user)?.[1];
  if (
    (podUID !== undefined && requester.podUID !== undefined && podUID === requester.podUID) ||
    (podName !== undefined && podName === requester.pod && saNamespace === requester.namespace)
  )
    return `the token is bound to the requesting pod ${requester.namespace}/${requester.pod}: a pod can never approve its own requests`;
  return undefined;
}

/** Whether `who` is among the request's approvers (users, or `group:<name>`); an empty list admits anyone RBAC lets approve. */
export function namedApprover(who: Approver, approvers: readonly string[]): boolean {
  if (approvers.length === 0) return true;
  return approvers.some((a) =>
    a.startsWith('group:') ? who.groups.includes(a.slice('group:'.length)) : a === who.user,
  );
}
