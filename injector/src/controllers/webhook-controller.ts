/**
 * Leader duty: keep one webhook configuration (the mutating or the
 * validating one) as desired — created at start, repaired whenever it drifts
 * (GitOps tools resetting caBundle, someone editing the selectors or failure
 * policy): on any change (watched) and at every resync.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from '@chaperone/shared';
import { KubeApiError, type KubeClient } from '@chaperone/shared/kube';
import {
  configurationsPath,
  type MutatingWebhookConfiguration,
  type WebhookConfigurationKind,
} from '../admission/webhook-configuration.ts';
import type { InjectorMetrics } from '../injector-metrics.ts';
import { runInformer } from './informer.ts';
import type { Wakeup } from './wakeup.ts';

export type ReconcileAction = 'created' | 'repaired' | 'unchanged';

/**
 * Makes the stored configuration match `desired`. With `manageCaBundle`
 * false the stored caBundle is kept (cert-manager's CA injector owns it).
 */
export async function reconcileWebhookConfiguration(
  client: KubeClient,
  desired: MutatingWebhookConfiguration,
  manageCaBundle: boolean,
  logger?: Logger,
): Promise<ReconcileAction> {
  const kind = desired.kind as WebhookConfigurationKind;
  const collection = configurationsPath(kind);
  const path = `${collection}/${desired.metadata.name}`;
  const existing = await client.get<MutatingWebhookConfiguration>(path);
  if (!existing) {
    try {
      await client.create(collection, desired);
      logger?.info({ webhookConfiguration: desired.metadata.name }, `created the ${kind}`);
      return 'created';
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 409)
        return reconcileWebhookConfiguration(client, desired, manageCaBundle, logger);
      throw err;
    }
  }
  const webhooks = structuredClone(desired.webhooks ?? []);
  if (!manageCaBundle) {
    for (const w of webhooks) {
      const kept = existing.webhooks?.find((e) => e.name === w.name)?.clientConfig?.caBundle;
      if (kept) w.clientConfig.caBundle = kept;
      else delete w.clientConfig.caBundle;
    }
  }
  const labels = { ...(existing.metadata.labels ?? {}), ...(desired.metadata.labels ?? {}) };
  const annotations = { ...(existing.metadata.annotations ?? {}), ...(desired.metadata.annotations ?? {}) };
  const metaSame =
    isDeepStrictEqual(labels, existing.metadata.labels ?? {}) &&
    isDeepStrictEqual(annotations, existing.metadata.annotations ?? {});
  if (metaSame && isDeepStrictEqual(existing.webhooks ?? [], webhooks)) return 'unchanged';
  const drift = (existing.webhooks ?? []).length !== webhooks.length ? 'webhook list' : 'webhook fields';
  await client.replace(path, {
    ...existing,
    metadata: { ...existing.metadata, labels, annotations },
    webhooks,
  });
  logger?.warn(
    { webhookConfiguration: desired.metadata.name, drift: metaSame ? drift : 'labels/annotations' },
    `repaired the ${kind}`,
  );
  return 'repaired';
}

export interface WebhookControllerOptions {
  readonly client: KubeClient;
  readonly kind: WebhookConfigurationKind;
  readonly name: string;
  /** Desired configuration, given the current CA bundle (undefined: leave caBundle alone or not known yet). */
  readonly desired: () => MutatingWebhookConfiguration | undefined;
  readonly manageCaBundle: boolean;
  readonly resyncIntervalMs: number;
  readonly logger?: Logger;
  readonly metrics?: InjectorMetrics;
  /** Woken by the caller when the CA bundle changes. */
  readonly wakeup: Wakeup;
}

export async function runWebhookController(o: WebhookControllerOptions, signal: AbortSignal): Promise<void> {
  const informer = runInformer<MutatingWebhookConfiguration>({
    client: o.client,
    path: configurationsPath(o.kind),
    query: { fieldSelector: `metadata.name=${o.name}` },
    name:
      o.kind === 'MutatingWebhookConfiguration'
        ? 'webhook-configuration'
        : 'validating-webhook-configuration',
    signal,
    ...(o.logger ? { logger: o.logger } : {}),
    onSync: () => o.wakeup.wake(),
    onEvent: () => o.wakeup.wake(),
  });
  const configuration = o.kind === 'MutatingWebhookConfiguration' ? 'mutating' : 'validating';
  let failures = 0;
  while (!signal.aborted) {
    const desired = o.desired();
    let wait = o.resyncIntervalMs;
    if (desired) {
      try {
        const action = await reconcileWebhookConfiguration(o.client, desired, o.manageCaBundle, o.logger);
        o.metrics?.webhookConfigurationActions.inc({ configuration, action });
        failures = 0;
      } catch (err) {
        if (signal.aborted) break;
        failures++;
        wait = Math.min(30_000, 500 * 2 ** Math.min(failures, 6));
        o.metrics?.webhookConfigurationActions.inc({ configuration, action: 'error' });
        o.logger?.warn({ err: (err as Error).message, retryInMs: wait }, `could not reconcile the ${o.kind}`);
      }
    }
    await o.wakeup.wait(signal, wait);
  }
  await informer;
}
