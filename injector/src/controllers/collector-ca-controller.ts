/**
 * The collector's CA bundle as one of the namespace controller's objects
 * (namespace-controller.ts): the ConfigMap `chaperone-collector-ca` in each
 * opted-in namespace holds exactly the bundle of `--collector-ca-file`. The
 * file is checked for changes (a mounted Secret or ConfigMap is updated by
 * the kubelet swapping a symlink, so it is re-read by content) and a new
 * bundle reaches every namespace; a broken one is logged and the last good
 * one stays published.
 *
 * A missing ConfigMap is created with a server-side apply, which RBAC
 * authorises as a create of that name: the injector needs no right to create
 * other ConfigMaps (deploy/base/injector/cluster-role.yaml).
 */
import type { Logger } from '@chaperone/shared';
import { asStatus, KubeApiError, type KubeClient } from '@chaperone/shared/kube';
import type { InjectorMetrics } from '../injector-metrics.ts';
import { COLLECTOR_CA_CONFIGMAP, MANAGED_BY_VALUE } from '../names.ts';
import { type ConfigMap, configMapDrift, desiredCollectorCaConfigMap, readCaBundle } from './collector-ca.ts';
import { sleep } from './informer.ts';
import {
  isOurs,
  type Namespace,
  type NamespacedAction,
  type NamespacedObject,
  replacementFor,
  watchByName,
} from './namespace-controller.ts';

export interface CollectorCaOptions {
  readonly client: KubeClient;
  /** The bundle file, and its content as read (and checked) at start. */
  readonly caFile: string;
  readonly bundle: string;
  readonly revision?: string;
  /** How often the file is checked for changes. */
  readonly intervalMs: number;
  readonly logger?: Logger;
  readonly metrics?: InjectorMetrics;
}

export class CollectorCaObject implements NamespacedObject {
  readonly what = 'the collector CA ConfigMap';
  readonly watch = watchByName('/api/v1/configmaps', COLLECTOR_CA_CONFIGMAP);
  readonly #o: CollectorCaOptions;
  #bundle: string;

  constructor(o: CollectorCaOptions) {
    this.#o = o;
    this.#bundle = o.bundle;
  }

  /** The bundle being published. */
  get bundle(): string {
    return this.#bundle;
  }

  count(action: NamespacedAction | 'error'): void {
    this.#o.metrics?.collectorCaActions.inc({ action });
  }

  /** Checks the file every interval; a changed, valid bundle is published everywhere. */
  async run(signal: AbortSignal, requeue: () => void): Promise<void> {
    let lastError = '';
    while (!signal.aborted) {
      await sleep(this.#o.intervalMs, signal);
      if (!signal.aborted) lastError = this.checkFile(requeue, lastError);
    }
  }

  /**
   * Reads the file once: a new valid bundle replaces the published one and
   * `requeue` spreads it. Returns why the file is not usable ('' when it is),
   * logged unless it is `lastError` again.
   */
  checkFile(requeue: () => void, lastError = ''): string {
    let now: string;
    try {
      now = readCaBundle(this.#o.caFile);
    } catch (err) {
      const msg = (err as Error).message;
      if (msg !== lastError)
        this.#o.logger?.warn(
          { err: msg, file: this.#o.caFile },
          'the collector CA file is not usable; the last good bundle stays published',
        );
      return msg;
    }
    if (now !== this.#bundle) {
      this.#bundle = now;
      this.#o.logger?.info({ file: this.#o.caFile }, 'the collector CA bundle changed; publishing it');
      requeue();
    }
    return '';
  }

  async reconcile(namespace: string, ns: Namespace | undefined): Promise<NamespacedAction> {
    const { client, logger, revision } = this.#o;
    const path = `/api/v1/namespaces/${namespace}/configmaps/${COLLECTOR_CA_CONFIGMAP}`;
    const existing = await client.get<ConfigMap>(path);
    if (!ns) {
      if (existing && isOurs(existing.metadata, revision)) {
        await client.delete(path);
        logger?.info(
          { namespace },
          'removed the collector CA ConfigMap: the namespace is no longer opted in',
        );
        return 'deleted';
      }
      return 'unchanged';
    }
    const desired = desiredCollectorCaConfigMap(namespace, this.#bundle, revision);
    if (!existing) {
      await this.#apply(path, desired);
      logger?.info({ namespace }, 'published the collector CA ConfigMap');
      return 'created';
    }
    const drift = configMapDrift(existing, desired);
    if (!drift) return 'unchanged';
    if (drift === 'immutable') {
      // Only a delete gets rid of an immutable ConfigMap; the uid precondition spares a newer one.
      await client.delete(path, { preconditions: { uid: existing.metadata.uid } });
      await this.#apply(path, desired);
    } else {
      await client.replace(path, replacementFor(existing, desired));
    }
    logger?.warn({ namespace, drift }, 'repaired the collector CA ConfigMap');
    return 'repaired';
  }

  async #apply(path: string, desired: ConfigMap): Promise<void> {
    const r = await this.#o.client.request('PATCH', path, {
      body: desired,
      contentType: 'application/apply-patch+yaml',
      query: { fieldManager: MANAGED_BY_VALUE, force: true },
    });
    if (r.status !== 200 && r.status !== 201)
      throw new KubeApiError('PATCH', path, r.status, asStatus(r.body));
  }
}
