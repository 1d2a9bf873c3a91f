/**
 * Keeps Chaperone's objects in every opted-in namespace (leader only): the
 * egress NetworkPolicy and the collector's CA bundle, each a
 * `NamespacedObject`. An object is created when a namespace is labelled, put
 * back when edited or deleted, and removed when the label goes.
 * Level-triggered: watches on Namespaces and on the managed objects enqueue
 * (object, namespace) pairs; a worker reconciles each against the desired
 * state; a periodic resync catches anything missed.
 */
import type { Logger } from '@chaperone/shared';
import { KubeApiError, type KubeClient, type Query } from '@chaperone/shared/kube';
import type { InjectorMetrics } from '../injector-metrics.ts';
import {
  INJECT_ENABLED,
  INJECT_LABEL,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  REVISION_LABEL,
} from '../names.ts';
import { runInformer, sleep } from './informer.ts';
import { Wakeup } from './wakeup.ts';

export interface Namespace {
  metadata: {
    name: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    resourceVersion?: string;
  };
  status?: { phase?: string };
}

export type NamespacedAction = 'created' | 'repaired' | 'deleted' | 'unchanged';

/** One kind of object the controller keeps in each opted-in namespace. */
export interface NamespacedObject {
  /** For logs: "the NetworkPolicy". */
  readonly what: string;
  /** The cluster-wide collection and the query selecting the managed objects (by name). */
  readonly watch: { readonly path: string; readonly query: Query };
  /**
   * Makes the object in `namespace` as desired: `ns` is given when the
   * namespace is opted in; without it, ours is removed.
   */
  reconcile(namespace: string, ns: Namespace | undefined): Promise<NamespacedAction>;
  /** Runs while leading (discovery, file checks); `requeue` has every namespace reconciled again. */
  run?(signal: AbortSignal, requeue: () => void): Promise<void>;
  /** Counts each reconciliation's outcome. */
  count?(action: NamespacedAction | 'error'): void;
}

/** A watch of one object name in every namespace (RBAC matches the field selector against resourceNames). */
export function watchByName(path: string, name: string): NamespacedObject['watch'] {
  return { path, query: { fieldSelector: `metadata.name=${name}` } };
}

/** Whether the injector (of this revision) keeps its objects in the namespace. */
export function isManagedNamespace(
  ns: Namespace | undefined,
  revision: string | undefined,
  excluded: readonly string[],
): boolean {
  if (!ns || ns.status?.phase === 'Terminating') return false;
  const labels = ns.metadata.labels ?? {};
  if (labels[INJECT_LABEL] !== INJECT_ENABLED) return false;
  if ((labels[REVISION_LABEL] ?? undefined) !== revision) return false;
  return !excluded.includes(ns.metadata.name);
}

/** Whether a stored object carries this injector's (and revision's) management labels. */
export function isOurs(
  meta: { labels?: Record<string, string> } | undefined,
  revision: string | undefined,
): boolean {
  return (
    meta?.labels?.[MANAGED_BY_LABEL] === MANAGED_BY_VALUE &&
    (meta.labels?.[REVISION_LABEL] ?? undefined) === revision
  );
}

/**
 * `desired` as a replacement of the stored object: its metadata
 * (resourceVersion, so a concurrent change conflicts; others' labels and
 * annotations) with ours over it.
 */
export function replacementFor<
  T extends { metadata: { labels?: Record<string, string>; annotations?: Record<string, string> } },
>(existing: T, desired: T): T {
  return {
    ...desired,
    metadata: {
      ...existing.metadata,
      labels: { ...(existing.metadata.labels ?? {}), ...desired.metadata.labels },
      annotations: { ...(existing.metadata.annotations ?? {}), ...desired.metadata.annotations },
    },
  };
}

export interface NamespaceControllerOptions {
  readonly client: KubeClient;
  readonly objects: readonly NamespacedObject[];
  readonly revision?: string;
  readonly excludedNamespaces: readonly string[];
  readonly resyncIntervalMs: number;
  readonly logger?: Logger;
  readonly metrics?: InjectorMetrics;
}

export class NamespaceController {
  readonly #o: NamespaceControllerOptions;
  readonly #namespaces = new Map<string, Namespace>();
  /** Per object kind, the namespaces its watch has seen one in (found again at resync, whatever their labels). */
  readonly #holding: Set<string>[];
  /** `<object index>/<namespace>`, in arrival order. */
  readonly #queue = new Set<string>();
  readonly #wakeup = new Wakeup();
  #synced = false;

  constructor(o: NamespaceControllerOptions) {
    this.#o = o;
    this.#holding = o.objects.map(() => new Set());
  }

  #wants(ns: Namespace | undefined): boolean {
    return isManagedNamespace(ns, this.#o.revision, this.#o.excludedNamespaces);
  }

  #enqueue(object: number, namespace: string): void {
    this.#queue.add(`${object}/${namespace}`);
    this.#wakeup.wake();
  }

  #enqueueNamespace(namespace: string): void {
    for (let i = 0; i < this.#o.objects.length; i++) this.#enqueue(i, namespace);
  }

  #requeue(object: number): void {
    for (const name of new Set([...this.#namespaces.keys(), ...(this.#holding[object] ?? [])]))
      this.#enqueue(object, name);
  }

  #updateGauge(): void {
    let n = 0;
    for (const ns of this.#namespaces.values()) if (this.#wants(ns)) n++;
    this.#o.metrics?.managedNamespaces.set(n);
  }

  /** Reconciles one object kind in one namespace. */
  reconcile(object: number, namespace: string): Promise<NamespacedAction> {
    const ns = this.#namespaces.get(namespace);
    const kind = this.#o.objects[object] as NamespacedObject;
    return kind.reconcile(namespace, this.#wants(ns) ? ns : undefined);
  }

  /** Runs until `signal` aborts (leadership lost or shutdown). */
  async run(signal: AbortSignal): Promise<void> {
    const o = this.#o;
    const logger = o.logger ? { logger: o.logger } : {};
    const informers = [
      runInformer<Namespace>({
        client: o.client,
        path: '/api/v1/namespaces',
        name: 'namespaces',
        signal,
        ...logger,
        onSync: (items) => {
          const seen = new Set(items.map((n) => n.metadata.name));
          for (const name of [...this.#namespaces.keys()]) if (!seen.has(name)) this.#enqueueNamespace(name);
          this.#namespaces.clear();
          for (const n of items) {
            this.#namespaces.set(n.metadata.name, n);
            if (this.#wants(n)) this.#enqueueNamespace(n.metadata.name);
          }
          this.#synced = true;
          this.#updateGauge();
        },
        onEvent: (type, n) => {
          const before = this.#namespaces.get(n.metadata.name);
          if (type === 'DELETED') this.#namespaces.delete(n.metadata.name);
          else this.#namespaces.set(n.metadata.name, n);
          if (this.#wants(before) || this.#wants(n)) this.#enqueueNamespace(n.metadata.name);
          this.#updateGauge();
        },
      }),
      ...o.objects.map((kind, i) => {
        const holding = this.#holding[i] as Set<string>;
        return runInformer<{ metadata: { namespace: string } }>({
          client: o.client,
          path: kind.watch.path,
          query: kind.watch.query,
          name: kind.what,
          signal,
          ...logger,
          onSync: (items) => {
            holding.clear();
            for (const item of items) {
              holding.add(item.metadata.namespace);
              this.#enqueue(i, item.metadata.namespace);
            }
          },
          onEvent: (type, item) => {
            if (type === 'DELETED') holding.delete(item.metadata.namespace);
            else holding.add(item.metadata.namespace);
            this.#enqueue(i, item.metadata.namespace);
          },
        });
      }),
    ];
    const side = o.objects.map((kind, i) =>
      kind.run ? kind.run(signal, () => this.#requeue(i)) : Promise.resolve(),
    );
    const resync = (async () => {
      while (!signal.aborted) {
        await sleep(o.resyncIntervalMs, signal);
        if (!signal.aborted) for (let i = 0; i < o.objects.length; i++) this.#requeue(i);
      }
    })();
    const failures = new Map<string, number>();
    while (!signal.aborted) {
      if (this.#queue.size === 0 || !this.#synced) {
        await this.#wakeup.wait(signal, 1000);
        continue;
      }
      const key = this.#queue.values().next().value as string;
      this.#queue.delete(key);
      const slash = key.indexOf('/');
      const object = Number(key.slice(0, slash));
      const namespace = key.slice(slash + 1);
      const kind = o.objects[object] as NamespacedObject;
      try {
        kind.count?.(await this.reconcile(object, namespace));
        failures.delete(key);
      } catch (err) {
        if (signal.aborted) break;
        kind.count?.('error');
        const n = (failures.get(key) ?? 0) + 1;
        failures.set(key, n);
        const conflict = err instanceof KubeApiError && err.status === 409;
        const delay = conflict ? 100 : Math.min(30_000, 500 * 2 ** Math.min(n, 6));
        if (!conflict)
          o.logger?.warn(
            { namespace, object: kind.what, err: (err as Error).message, retryInMs: delay },
            `could not reconcile ${kind.what}`,
          );
        setTimeout(() => this.#enqueue(object, namespace), delay).unref();
      }
    }
    await Promise.allSettled([...informers, ...side, resync]);
  }
}
