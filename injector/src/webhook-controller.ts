/**
 * Leader duty: keep the MutatingWebhookConfiguration as desired — created at
 * start, repaired on any change (watched) and at every resync.
 */
import type { Logger } from '@chaperone/shared';
import { runInformer } from './informer.ts';
import type { InjectorMetrics } from './injector-metrics.ts';
import type { KubeClient } from './kube-client.ts';
import type { Wakeup } from './wakeup.ts';
import {
  type MutatingWebhookConfiguration,
  reconcileWebhookConfiguration,
  WEBHOOK_CONFIGURATIONS_PATH,
} from './webhook-configuration.ts';

export interface WebhookControllerOptions {
  readonly client: KubeClient;
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
    path: WEBHOOK_CONFIGURATIONS_PATH,
    query: { fieldSelector: `metadata.name=${o.name}` },
    name: 'webhook-configuration',
    signal,
    ...(o.logger ? { logger: o.logger } : {}),
    onSync: () => o.wakeup.wake(),
    onEvent: () => o.wakeup.wake(),
  });
  let failures = 0;
  while (!signal.aborted) {
    const desired = o.desired();
    let wait = o.resyncIntervalMs;
    if (desired) {
      try {
        const action = await reconcileWebhookConfiguration(o.client, desired, o.manageCaBundle, o.logger);
        o.metrics?.webhookConfigurationActions.inc({ action });
        failures = 0;
      } catch (err) {
        if (signal.aborted) break;
        failures++;
        wait = Math.min(30_000, 500 * 2 ** Math.min(failures, 6));
        o.metrics?.webhookConfigurationActions.inc({ action: 'error' });
        o.logger?.warn(
          { err: (err as Error).message, retryInMs: wait },
          'could not reconcile the MutatingWebhookConfiguration',
        );
      }
    }
    await o.wakeup.wait(signal, wait);
  }
  await informer;
}
