/**
 * May this approver decide requests of agents in this namespace? Kubernetes
 * RBAC says: a SubjectAccessReview for verb `approve` on resource `approvals`
 * in API group `chaperone.dev` in the agent's namespace, so an admin grants
 * approver rights with an ordinary Role and RoleBinding. A decision always
 * asks afresh (a RoleBinding removed a moment ago counts); what a list shows
 * may use an answer up to `cacheMs` old.
 */
import { ChaperoneError } from '@chaperone/shared';
import { asStatus, type KubeClient } from '@chaperone/shared/kube';
import type { Approver } from './approver-auth.ts';

export const APPROVAL_GROUP = 'chaperone.dev';
export const APPROVAL_RESOURCE = 'approvals';
export const APPROVE_VERB = 'approve';

export interface ApprovalAccessOptions {
  readonly kube: KubeClient;
  readonly cacheMs?: number;
  readonly maxCacheEntries?: number;
  readonly now?: () => number;
}

export class ApprovalAccess {
  readonly #opts: ApprovalAccessOptions;
  readonly #cache = new Map<string, { at: number; allowed: boolean }>();

  constructor(opts: ApprovalAccessOptions) {
    this.#opts = opts;
  }

  /** Whether `who` may approve in `namespace`; `cached` lets a recent answer stand. */
  async mayApprove(who: Approver, namespace: string, cached = false): Promise<boolean> {
    const now = this.#opts.now?.() ?? Date.now();
    const key = JSON.stringify([who.user, who.groups, who.uid ?? '', who.extra, namespace]);
    const hit = this.#cache.get(key);
    if (cached && hit && now - hit.at < (this.#opts.cacheMs ?? 10_000)) return hit.allowed;
    const res = await this.#opts.kube.request('POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', {
      body: {
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SubjectAccessReview',
        spec: {
          user: who.user,
          groups: who.groups,
          ...(who.uid ? { uid: who.uid } : {}),
          ...(Object.keys(who.extra).length ? { extra: who.extra } : {}),
          resourceAttributes: {
            namespace,
            verb: APPROVE_VERB,
            group: APPROVAL_GROUP,
            resource: APPROVAL_RESOURCE,
          },
        },
      },
    });
    const status = (res.body as { status?: { allowed?: boolean } } | undefined)?.status;
    if ((res.status !== 201 && res.status !== 200) || !status) {
      const said = asStatus(res.body)?.message;
      throw new ChaperoneError(
        'unavailable',
        `SubjectAccessReview failed with HTTP ${res.status} (the collector's service account needs to create subjectaccessreviews, as system:auth-delegator grants)${said ? `: ${said}` : ''}`,
      );
    }
    const allowed = status.allowed === true;
    if (this.#cache.size >= (this.#opts.maxCacheEntries ?? 10_000)) this.#cache.clear();
    this.#cache.set(key, { at: now, allowed });
    return allowed;
  }
}
