/**
 * Leader duty: keep one webhook configuration (the mutating or the
 * validating one) as desired — created at start, repaired on any change
 * (watched) and at every resync.
 */
import type { Logger } from '@chaperone/shared';
import { runInformer } from './informer.ts';
import type { InjectorMetrics } from './injector-metrics.ts';
import type { KubeClient } from './kube-client.ts';
import type { Wakeup } from './wakeup.ts';
import {
  configurationsPath,
  type MutatingWebhookConfiguration,
  reconcileWebhookConfiguration,
  type WebhookConfigurationKind,
} from './webhook-configuration.ts';

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
