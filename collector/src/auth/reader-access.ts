/**
 * Which namespaces of the audit log a Kubernetes identity may read: RBAC
 * says, through SubjectAccessReviews (access-review.ts) for verb `list` on
 * resource `events` in API group `chaperone.dev` (the ClusterRole
 * chaperone-audit-reader grants it). Allowed cluster-wide (a
 * ClusterRoleBinding): every namespace. Otherwise each namespace the
 * collector holds events of (`knownNamespaces`, re-read at most every
 * `namespacesCacheMs`) is asked about, and the scope is those allowed:
 * possibly none, which reads nothing. Answers are reused per identity for
 * the review's `cacheMs`, so a removed RoleBinding stops reads within it.
 */
import type { AccessReview, ResourceQuestion, ReviewedSubject } from './access-review.ts';
import type { NamespaceScope } from './query-auth.ts';

export const READ_GROUP = 'chaperone.dev';
export const READ_RESOURCE = 'events';
export const READ_VERB = 'list';

/** Reviews asked at once while working out one scope (each is one request to the API server). */
const CONCURRENCY = 8;

export interface ReaderAccessOptions {
  readonly review: AccessReview;
  /** The namespaces the collector holds events of (the owners of its chains). */
  readonly knownNamespaces: () => Promise<Iterable<string>>;
  /** How long that list is reused (default 5 s). */
  readonly namespacesCacheMs?: number;
  readonly now?: () => number;
}

const question = (namespace: string): ResourceQuestion => ({
  verb: READ_VERB,
  group: READ_GROUP,
  resource: READ_RESOURCE,
  namespace,
});

export class ReaderAccess {
  readonly #opts: ReaderAccessOptions;
  #known: { at: number; list: Promise<readonly string[]> } | undefined;

  constructor(opts: ReaderAccessOptions) {
    this.#opts = opts;
  }

  /** The namespaces `who` may read: '*' when RBAC allows it in every namespace. */
  async scopeOf(who: ReviewedSubject): Promise<NamespaceScope> {
    const review = this.#opts.review;
    if (await review.allowed(who, question(''), true)) return '*';
    const namespaces = [...(await this.#namespaces())];
    const allowed = new Set<string>();
    let next = 0;
    const worker = async () => {
      while (next < namespaces.length) {
        const ns = namespaces[next++] as string;
        if (await review.allowed(who, question(ns), true)) allowed.add(ns);
      }
    };
    await Promise.all(Array.from({ length: Math.min(CONCURRENCY, namespaces.length) }, worker));
    return allowed;
  }

  #namespaces(): Promise<readonly string[]> {
    const now = this.#opts.now?.() ?? Date.now();
    const known = this.#known;
    if (known && now - known.at < (this.#opts.namespacesCacheMs ?? 5_000)) return known.list;
    const list = this.#opts.knownNamespaces().then((l) => [...new Set(l)].sort());
    this.#known = { at: now, list };
    // A failed read is not kept: the next caller asks again.
    list.catch(() => {
      if (this.#known?.list === list) this.#known = undefined;
    });
    return list;
  }
}
