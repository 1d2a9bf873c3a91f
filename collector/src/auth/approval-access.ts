/**
 * May this approver decide requests of agents in this namespace? Kubernetes
 * RBAC says: a SubjectAccessReview (access-review.ts) for verb `approve` on
 * resource `approvals` in API group `chaperone.dev` in the agent's
 * namespace, so an admin grants approver rights with an ordinary Role and
 * RoleBinding. A decision always asks afresh (a RoleBinding removed a moment
 * ago counts); what a list shows may use an answer up to `cacheMs` old.
 */
import { AccessReview, type AccessReviewOptions } from './access-review.ts';
import type { Approver } from './approver-auth.ts';

export const APPROVAL_GROUP = 'chaperone.dev';
export const APPROVAL_RESOURCE = 'approvals';
export const APPROVE_VERB = 'approve';

export type ApprovalAccessOptions = AccessReviewOptions;

export class ApprovalAccess {
  readonly #review: AccessReview;

  constructor(opts: ApprovalAccessOptions) {
    this.#review = new AccessReview(opts);
  }

  /** Whether `who` may approve in `namespace`; `cached` lets a recent answer stand. */
  mayApprove(who: Approver, namespace: string, cached = false): Promise<boolean> {
    return this.#review.allowed(
      who,
      { namespace, verb: APPROVE_VERB, group: APPROVAL_GROUP, resource: APPROVAL_RESOURCE },
      cached,
    );
  }
}
