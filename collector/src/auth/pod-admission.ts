/**
 * Which verified tokens may ship audit events: only those of pods Chaperone
 * injected in namespaces that opted in. After the token is verified, the API
 * server is asked (GET pod, GET namespace) whether
 *
 *  - the pod still exists with the uid the token is bound to,
 *  - it carries `chaperone.dev/injected=true`, and
 *  - its namespace carries `chaperone.dev/inject=enabled` (and is not a
 *    system namespace the injector never serves).
 *
 * Answers are cached per pod (name + uid): an admission for 30 s, a refusal
 * for 5 s. Sidecars hold one long-lived connection, so the API server sees
 * about one pair of GETs per pod per reconnect; a label removed by an admin
 * is honoured by new connections within 30 s, and a refused client that
 * reconnects in a loop costs at most one lookup every 5 s.
 *
 * Grace: a pod that was confirmed within the last 10 minutes stays admitted
 * when the API server no longer vouches for it (deleted, replaced, relabelled)
 * or cannot be reached. The pod object disappears when its containers have
 * stopped, or at once on a forced delete while the sidecar may run on for
 * its termination grace period; in both cases the sidecar's last events are
 * still in its spool and must not be lost. Only an identity that was
 * admitted before can use the grace, so it never lets in a pod Chaperone did
 * not guard. (The grace is per collector process: a collector started after
 * the pod is gone has nothing to extend.)
 */
import {
  ChaperoneError,
  chainIdFor,
  INJECT_ENABLED,
  INJECT_LABEL,
  INJECTED_LABEL,
  SYSTEM_NAMESPACES,
} from '@chaperone/shared';
import type { KubeClient, KubeResponse } from '@chaperone/shared/kube';
import { AuthError, type VerifiedSidecar } from './sidecar-identity.ts';

/** What the API server says about an object: its uid and labels, or undefined when it does not exist. */
export interface ObjectFacts {
  readonly uid: string;
  readonly labels: Readonly<Record<string, string>>;
}

export interface PodLookup {
  pod(namespace: string, name: string): Promise<ObjectFacts | undefined>;
  namespace(name: string): Promise<ObjectFacts | undefined>;
}

export const ADMISSION_TTL_MS = 30_000;
export const REFUSAL_TTL_MS = 5_000;
export const ADMISSION_GRACE_MS = 600_000;

/** Why `who` may not ship events, from what the API server said; undefined when it may. Pure. */
export function admissionRefusal(
  who: { namespace: string; pod: string; podUID: string },
  pod: ObjectFacts | undefined,
  namespace: ObjectFacts | undefined,
): string | undefined {
  const name = `${who.namespace}/${who.pod}`;
  const only = 'only sidecars Chaperone injected in opted-in namespaces may send audit events';
  if (SYSTEM_NAMESPACES.includes(who.namespace))
    return `namespace ${who.namespace} is a system namespace Chaperone never injects into: ${only}`;
  if (!namespace) return `namespace ${who.namespace} does not exist: ${only}`;
  if (namespace.labels[INJECT_LABEL] !== INJECT_ENABLED)
    return `namespace ${who.namespace} is not opted in (label ${INJECT_LABEL}=${INJECT_ENABLED}): ${only}`;
  if (!pod) return `pod ${name} (uid ${who.podUID}) does not exist: ${only}`;
  if (pod.uid !== who.podUID)
    return `pod ${name} is now uid ${pod.uid}; the token was issued to uid ${who.podUID}, which no longer exists: ${only}`;
  if (pod.labels[INJECTED_LABEL] !== 'true')
    return `pod ${name} does not carry the label ${INJECTED_LABEL}=true, so Chaperone did not inject it: ${only}`;
  return undefined;
}

interface Entry {
  /** When the API server was last asked. */
  readonly at: number;
  readonly refusal: string | undefined;
  /** When the API server last vouched for this pod. */
  readonly admittedAt: number | undefined;
}

export interface PodAdmissionOptions {
  readonly lookup: PodLookup;
  readonly ttlMs?: number;
  readonly refusalTtlMs?: number;
  readonly graceMs?: number;
  readonly maxEntries?: number;
  readonly now?: () => number;
}

export class PodAdmission {
  readonly #opts: PodAdmissionOptions;
  readonly #cache = new Map<string, Entry>();
  readonly #inflight = new Map<string, Promise<Entry>>();

  constructor(opts: PodAdmissionOptions) {
    this.#opts = opts;
  }

  #now(): number {
    return this.#opts.now?.() ?? Date.now();
  }

  #inGrace(e: Entry | undefined, now: number): boolean {
    return e?.admittedAt !== undefined && now - e.admittedAt < (this.#opts.graceMs ?? ADMISSION_GRACE_MS);
  }

  /**
   * Resolves when `who` may ship events; rejects with AuthError `forbidden`
   * (the reason says what is missing) or ChaperoneError `unavailable` when
   * the API server cannot be asked and the pod was not admitted recently.
   */
  async check(who: VerifiedSidecar): Promise<void> {
    const key = chainIdFor(who);
    const now = this.#now();
    let entry = this.#cache.get(key);
    const ttl = entry?.refusal
      ? (this.#opts.refusalTtlMs ?? REFUSAL_TTL_MS)
      : (this.#opts.ttlMs ?? ADMISSION_TTL_MS);
    if (!entry || now - entry.at >= ttl) {
      try {
        entry = await this.#ask(key, who, entry);
      } catch (err) {
        if (this.#inGrace(entry, now)) return;
        throw err;
      }
    }
    if (entry.refusal && !this.#inGrace(entry, now)) throw new AuthError('forbidden', entry.refusal);
  }

  #ask(key: string, who: VerifiedSidecar, prior: Entry | undefined): Promise<Entry> {
    let p = this.#inflight.get(key);
    if (!p) {
      p = (async () => {
        const { lookup } = this.#opts;
        const [pod, namespace] = await Promise.all([
          lookup.pod(who.namespace, who.pod),
          lookup.namespace(who.namespace),
        ]);
        const refusal = admissionRefusal(who, pod, namespace);
        const at = this.#now();
        const entry: Entry = { at, refusal, admittedAt: refusal ? prior?.admittedAt : at };
        this.#remember(key, entry);
        return entry;
      })().finally(() => this.#inflight.delete(key));
      this.#inflight.set(key, p);
    }
    return p;
  }

  #remember(key: string, entry: Entry): void {
    this.#cache.delete(key);
    this.#cache.set(key, entry);
    const max = this.#opts.maxEntries ?? 10_000;
    // Oldest first (a Map keeps insertion order, and every answer is re-inserted).
    for (const k of this.#cache.keys()) {
      if (this.#cache.size <= max) break;
      this.#cache.delete(k);
    }
  }
}

/**
 * Reads pods and namespaces from the API server (the collector needs get on
 * both). Its errors reach the client that opened the ingest connection, so
 * they say only what failed and the HTTP status: the API server's own words
 * and, for a transport failure, its address stay in the `cause` (logged).
 */
export function kubePodLookup(client: KubeClient): PodLookup {
  const get = async (path: string, what: string): Promise<ObjectFacts | undefined> => {
    let res: KubeResponse;
    try {
      res = await client.request('GET', path, { timeoutMs: 5_000 });
    } catch (err) {
      const timedOut = err instanceof ChaperoneError && err.code === 'timeout';
      throw new ChaperoneError(
        'unavailable',
        `reading ${what} from the API server failed: ${timedOut ? 'no answer within 5 s' : 'it could not be reached'}`,
        { cause: err },
      );
    }
    if (res.status === 404) return undefined;
    const o = res.body;
    if (res.status !== 200 || o === null || typeof o !== 'object') {
      const hint =
        res.status === 403
          ? " (the collector's service account needs get on pods and namespaces)"
          : res.status === 200
            ? ', not a JSON object'
            : '';
      throw new ChaperoneError(
        'unavailable',
        `reading ${what} from the API server answered HTTP ${res.status}${hint}`,
      );
    }
    const metadata = (o as { metadata?: { uid?: unknown; labels?: unknown } }).metadata;
    const labels = metadata?.labels;
    return {
      uid: typeof metadata?.uid === 'string' ? metadata.uid : '',
      labels:
        labels && typeof labels === 'object' && !Array.isArray(labels)
          ? (labels as Record<string, string>)
          : {},
    };
  };
  const seg = encodeURIComponent;
  return {
    pod: (namespace, name) =>
      get(`/api/v1/namespaces/${seg(namespace)}/pods/${seg(name)}`, `pod ${namespace}/${name}`),
    namespace: (name) => get(`/api/v1/namespaces/${seg(name)}`, `namespace ${name}`),
  };
}
