/**
 * Kubernetes RBAC, asked with a SubjectAccessReview: may this subject (as
 * TokenReview or the OIDC prefixes named it) use this verb on this resource
 * of an API group in this namespace (`''`: in every namespace, as a
 * ClusterRoleBinding grants)? Approvals (approval-access.ts) and readers of
 * the query API (reader-access.ts) both ask here. An answer may be reused
 * for `cacheMs` when the caller allows it (per subject and question; the
 * cache is bounded), and a question already being asked is not asked twice.
 * The collector's service account needs to create subjectaccessreviews
 * (system:auth-delegator).
 */
import { ChaperoneError } from '@chaperone/shared';
import { asStatus, type KubeClient } from '@chaperone/shared/kube';

/** Who asks: the user, groups, uid and extra attributes a TokenReview gave (or the OIDC ones). */
export interface ReviewedSubject {
  readonly user: string;
  readonly groups: readonly string[];
  readonly uid?: string;
  readonly extra: Readonly<Record<string, readonly string[]>>;
}

/** What is asked: `namespace` '' asks about every namespace at once. */
export interface ResourceQuestion {
  readonly verb: string;
  readonly group: string;
  readonly resource: string;
  readonly namespace: string;
}

export interface AccessReviewOptions {
  readonly kube: KubeClient;
  /** How long an answer may stand when the caller allows a cached one (default 10 s). */
  readonly cacheMs?: number;
  readonly maxCacheEntries?: number;
  readonly now?: () => number;
}

export class AccessReview {
  readonly #opts: AccessReviewOptions;
  readonly #cache = new Map<string, { at: number; allowed: boolean }>();
  readonly #asking = new Map<string, Promise<boolean>>();

  constructor(opts: AccessReviewOptions) {
    this.#opts = opts;
  }

  /** Whether RBAC allows `who` the `question`; `cached` lets a recent answer (or one being asked) stand. */
  async allowed(who: ReviewedSubject, question: ResourceQuestion, cached = false): Promise<boolean> {
    const now = this.#opts.now?.() ?? Date.now();
    const key = JSON.stringify([who.user, who.groups, who.uid ?? '', who.extra, question]);
    if (cached) {
      const hit = this.#cache.get(key);
      if (hit && now - hit.at < (this.#opts.cacheMs ?? 10_000)) return hit.allowed;
      const asking = this.#asking.get(key);
      if (asking) return asking;
    }
    const review = this.#review(who, question);
    this.#asking.set(key, review);
    try {
      const allowed = await review;
      if (this.#cache.size >= (this.#opts.maxCacheEntries ?? 10_000)) this.#cache.clear();
      this.#cache.set(key, { at: now, allowed });
      return allowed;
    } finally {
      if (this.#asking.get(key) === review) this.#asking.delete(key);
    }
  }

  async #review(who: ReviewedSubject, question: ResourceQuestion): Promise<boolean> {
    const res = await this.#opts.kube.request('POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', {
      body: {
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SubjectAccessReview',
        spec: {
          user: who.user,
          groups: who.groups,
          ...(who.uid ? { uid: who.uid } : {}),
          ...(Object.keys(who.extra).length ? { extra: who.extra } : {}),
          resourceAttributes: { ...question },
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
    return status.allowed === true;
  }
}
