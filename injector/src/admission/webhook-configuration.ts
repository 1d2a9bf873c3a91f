/**
 * The webhook configurations the injector owns — the MutatingWebhookConfiguration
 * that injects, and the ValidatingWebhookConfiguration that refuses whatever
 * would run unguarded in an opted-in namespace — built as data from the
 * settings. The leader creates them and repairs their drift
 * (controllers/webhook-controller.ts).
 */
import type { InjectionConfig } from '../inject/injection-config.ts';
import type { LabelSelector } from '../k8s-types.ts';
import {
  INJECT_ENABLED,
  INJECT_LABEL,
  INJECTOR_CONFIG_ANNOTATION,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  OPT_OUT_VALUE,
  REVISION_LABEL,
} from '../names.ts';

export const WEBHOOK_NAME = 'inject.chaperone.dev';
/** The validating webhook for pods: nothing uninjected (or un-injected later) in an opted-in namespace. */
export const VALIDATING_WEBHOOK_NAME = 'validate.chaperone.dev';
/** The validating webhook for namespaces: an opted-in namespace stays opted in. */
export const NAMESPACE_WEBHOOK_NAME = 'namespace.chaperone.dev';
export const WEBHOOK_CONFIGURATIONS_PATH =
  '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations';
export const VALIDATING_WEBHOOK_CONFIGURATIONS_PATH =
  '/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations';

export type WebhookConfigurationKind = 'MutatingWebhookConfiguration' | 'ValidatingWebhookConfiguration';

/** Where the API server keeps configurations of `kind`. */
export function configurationsPath(kind: WebhookConfigurationKind): string {
  return kind === 'MutatingWebhookConfiguration'
    ? WEBHOOK_CONFIGURATIONS_PATH
    : VALIDATING_WEBHOOK_CONFIGURATIONS_PATH;
}
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
  /** Path of the validating webhook on the same server, e.g. `/validate`. */
  readonly validatePath: string;
  /** The validating webhook's URL, when the webhooks are reached by URL. */
  readonly validateUrl?: string;
  readonly timeoutSeconds: number;
  readonly injection: InjectionConfig;
}

/** One webhook of either kind of configuration (validating webhooks have no reinvocationPolicy). */
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
  reinvocationPolicy?: string;
  namespaceSelector: LabelSelector;
  objectSelector: LabelSelector;
  [k: string]: unknown;
}

/** A webhook configuration of either kind, as the injector reads and writes it. */
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

export type WebhookConfiguration = MutatingWebhookConfiguration;

function clientConfigFor(
  s: WebhookSettings,
  path: string,
  url: string | undefined,
  caBundlePem: string | undefined,
): MutatingWebhook['clientConfig'] {
  const clientConfig: MutatingWebhook['clientConfig'] = url
    ? { url }
    : { service: { namespace: s.namespace, name: s.serviceName, path, port: s.servicePort } };
  if (caBundlePem) clientConfig.caBundle = Buffer.from(caBundlePem).toString('base64');
  return clientConfig;
}

function configurationLabels(s: WebhookSettings): Record<string, string> {
  return {
    'app.kubernetes.io/name': 'chaperone-injector',
    'app.kubernetes.io/part-of': 'chaperone',
    [MANAGED_BY_LABEL]: MANAGED_BY_VALUE,
    ...(s.revision ? { [REVISION_LABEL]: s.revision } : {}),
  };
}

export function desiredWebhookConfiguration(
  s: WebhookSettings,
  caBundlePem: string | undefined,
): MutatingWebhookConfiguration {
  const clientConfig = clientConfigFor(s, s.path, s.url, caBundlePem);
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: {
      name: s.name,
      labels: configurationLabels(s),
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

/**
 * The ValidatingWebhookConfiguration: two webhooks, both failing closed.
 *
 * - `validate.chaperone.dev` sees every pod CREATE and UPDATE (through the
 *   status subresource too, which can change labels and annotations, and
 *   ephemeral container changes) in an opted-in namespace. It has no objectSelector on
 *   purpose: pods labelled `chaperone.dev/inject=false`, which the mutating
 *   webhook never sees, must be seen here. Validating webhooks run after every
 *   mutation, so it judges the object that would be stored.
 * - `namespace.chaperone.dev` sees UPDATEs of opted-in namespaces, through
 *   the `status` and `finalize` subresources too (both can change labels). A
 *   namespaceSelector cannot do it: for a Namespace object the API server
 *   evaluates it against the new labels only, so the update that removes the
 *   opt-in label would not match. An objectSelector matches when the old or
 *   the new object matches, so the same expressions are used there.
 */
export function desiredValidatingWebhookConfiguration(
  s: WebhookSettings,
  caBundlePem: string | undefined,
): MutatingWebhookConfiguration {
  const clientConfig = clientConfigFor(s, s.validatePath, s.validateUrl, caBundlePem);
  const selected = namespaceSelector(s.revision, s.injection.excludedNamespaces);
  const common = {
    admissionReviewVersions: ['v1'],
    failurePolicy: 'Fail',
    matchPolicy: 'Equivalent',
    sideEffects: 'None',
    timeoutSeconds: s.timeoutSeconds,
  };
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingWebhookConfiguration',
    metadata: { name: s.name, labels: configurationLabels(s) },
    webhooks: [
      {
        name: VALIDATING_WEBHOOK_NAME,
        clientConfig,
        rules: [
          {
            operations: ['CREATE', 'UPDATE'],
            apiGroups: [''],
            apiVersions: ['v1'],
            // The status subresource can change labels and annotations too.
            resources: ['pods', 'pods/status', 'pods/ephemeralcontainers'],
            scope: 'Namespaced',
          },
        ],
        ...common,
        namespaceSelector: selected,
        objectSelector: {},
      },
      {
        name: NAMESPACE_WEBHOOK_NAME,
        clientConfig: structuredClone(clientConfig),
        rules: [
          {
            operations: ['UPDATE'],
            apiGroups: [''],
            apiVersions: ['v1'],
            // Both subresources can change a namespace's labels.
            resources: ['namespaces', 'namespaces/status', 'namespaces/finalize'],
            scope: 'Cluster',
          },
        ],
        ...common,
        namespaceSelector: {},
        objectSelector: selected,
      },
    ],
  };
}
