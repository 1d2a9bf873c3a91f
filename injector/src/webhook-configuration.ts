/**
 * The MutatingWebhookConfiguration the injector owns: built as data from the
 * settings, created at start-up and repaired whenever it drifts (GitOps tools
 * resetting caBundle, someone editing the selectors or failure policy).
 */
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from '@chaperone/shared';
import type { InjectionConfig } from './injection-config.ts';
import type { LabelSelector } from './k8s-types.ts';
import type { KubeClient } from './kube-client.ts';
import { KubeApiError } from './kube-client.ts';
import {
  INJECT_ENABLED,
  INJECT_LABEL,
  INJECTOR_CONFIG_ANNOTATION,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  OPT_OUT_VALUE,
  REVISION_LABEL,
} from './names.ts';

export const WEBHOOK_NAME = 'inject.chaperone.dev';
export const WEBHOOK_CONFIGURATIONS_PATH =
  '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations';
/** Label Kubernetes >= 1.21 puts on every namespace (absent on 1.20, where NotIn still matches). */
export const NAMESPACE_NAME_LABEL = 'kubernetes.io/metadata.name';

export interface WebhookSettings {
  /** Name of the configuration object (instance name). */
  readonly name: string;
  readonly namespace: string;
  readonly revision?: string;
  readonly serviceName: string;
  readonly servicePort: number;
  readonly path: string;
  /** When set, the API server calls this URL instead of the Service. */
  readonly url?: string;
  readonly timeoutSeconds: number;
  readonly injection: InjectionConfig;
}

export interface MutatingWebhook {
  name: string;
  admissionReviewVersions: string[];
  clientConfig: {
    service?: { namespace: string; name: string; path: string; port: number };
    url?: string;
    caBundle?: string;
  };
  rules: {
    operations: string[];
    apiGroups: string[];
    apiVersions: string[];
    resources: string[];
    scope: string;
  }[];
  failurePolicy: string;
  matchPolicy: string;
  sideEffects: string;
  timeoutSeconds: number;
  reinvocationPolicy: string;
  namespaceSelector: LabelSelector;
  objectSelector: LabelSelector;
  [k: string]: unknown;
}

export interface MutatingWebhookConfiguration {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [k: string]: unknown;
  };
  webhooks?: MutatingWebhook[];
}

export function namespaceSelector(revision: string | undefined, excluded: readonly string[]): LabelSelector {
  return {
    matchExpressions: [
      { key: INJECT_LABEL, operator: 'In', values: [INJECT_ENABLED] },
      revision
        ? { key: REVISION_LABEL, operator: 'In', values: [revision] }
        : { key: REVISION_LABEL, operator: 'DoesNotExist' },
      { key: NAMESPACE_NAME_LABEL, operator: 'NotIn', values: [...excluded] },
    ],
  };
}

/** Pods labelled chaperone.dev/inject=false never reach the webhook. */
export const OBJECT_SELECTOR: LabelSelector = {
  matchExpressions: [{ key: INJECT_LABEL, operator: 'NotIn', values: [OPT_OUT_VALUE] }],
};

export function desiredWebhookConfiguration(
  s: WebhookSettings,
  caBundlePem: string | undefined,
): MutatingWebhookConfiguration {
  const clientConfig: MutatingWebhook['clientConfig'] = s.url
    ? { url: s.url }
    : { service: { namespace: s.namespace, name: s.serviceName, path: s.path, port: s.servicePort } };
  if (caBundlePem) clientConfig.caBundle = Buffer.from(caBundlePem).toString('base64');
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: {
      name: s.name,
      labels: {
        'app.kubernetes.io/name': 'chaperone-injector',
        'app.kubernetes.io/part-of': 'chaperone',
        [MANAGED_BY_LABEL]: MANAGED_BY_VALUE,
        ...(s.revision ? { [REVISION_LABEL]: s.revision } : {}),
      },
      annotations: { [INJECTOR_CONFIG_ANNOTATION]: JSON.stringify(s.injection) },
    },
    webhooks: [
      {
        name: WEBHOOK_NAME,
        admissionReviewVersions: ['v1'],
        clientConfig,
        rules: [
          {
            operations: ['CREATE'],
            apiGroups: [''],
            apiVersions: ['v1'],
            resources: ['pods'],
            scope: 'Namespaced',
          },
        ],
        failurePolicy: 'Fail',
        matchPolicy: 'Equivalent',
        sideEffects: 'None',
        timeoutSeconds: s.timeoutSeconds,
        reinvocationPolicy: 'IfNeeded',
        namespaceSelector: namespaceSelector(s.revision, s.injection.excludedNamespaces),
        objectSelector: OBJECT_SELECTOR,
      },
    ],
  };
}

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
  const path = `${WEBHOOK_CONFIGURATIONS_PATH}/${desired.metadata.name}`;
  const existing = await client.get<MutatingWebhookConfiguration>(path);
  if (!existing) {
    try {
      await client.create(WEBHOOK_CONFIGURATIONS_PATH, desired);
      logger?.info(
        { webhookConfiguration: desired.metadata.name },
        'created the MutatingWebhookConfiguration',
      );
      return 'created';
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 409)
        return reconcileWebhookConfiguration(client, desired, manageCaBundle, logger);
      throw err;
    }
  }
  const webhooks = structuredClone(desired.webhooks ?? []);
  if (!manageCaBundle) {
    const kept = existing.webhooks?.find((w) => w.name === WEBHOOK_NAME)?.clientConfig?.caBundle;
    for (const w of webhooks) {
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
    'repaired the MutatingWebhookConfiguration',
  );
  return 'repaired';
}
