/**
 * The Secret that holds the self-managed webhook certificates
 * (`<instance>-tls` in the injector's namespace, type kubernetes.io/tls plus
 * `ca.crt` and `ca.key`): read and written by the leader, watched by every
 * replica. The CA key never leaves the injector's own namespace.
 */
import type { Logger } from '@chaperone/shared';
import { KubeApiError, type KubeClient } from '@chaperone/shared/kube';
import { runInformer, sleep } from '../controllers/informer.ts';
import type { InjectorMetrics } from '../injector-metrics.ts';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE } from '../names.ts';
import { type CertificatePlanSettings, type CertificateSet, planCertificates } from './certificate-plan.ts';

export const CA_PUBLISHED_ANNOTATION = 'chaperone.dev/ca-published-at';

interface Secret {
  apiVersion?: string;
  kind?: string;
  type?: string;
  metadata: {
    name: string;
    namespace?: string;
    resourceVersion?: string;
    annotations?: Record<string, string>;
    labels?: Record<string, string>;
  };
  data?: Record<string, string>;
}

const b64 = (s: string) => Buffer.from(s).toString('base64');
const unb64 = (s: string | undefined) => (s ? Buffer.from(s, 'base64').toString('utf8') : '');

export function secretToSet(secret: Secret | undefined): Partial<CertificateSet> | undefined {
  if (!secret?.data) return undefined;
  const published = Date.parse(secret.metadata.annotations?.[CA_PUBLISHED_ANNOTATION] ?? '');
  return {
    caBundle: unb64(secret.data['ca.crt']),
    caKey: unb64(secret.data['ca.key']),
    cert: unb64(secret.data['tls.crt']),
    key: unb64(secret.data['tls.key']),
    ...(Number.isFinite(published) ? { caPublishedAt: published } : {}),
  };
}

function setToSecret(name: string, namespace: string, set: CertificateSet, base?: Secret): Secret {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'kubernetes.io/tls',
    metadata: {
      ...(base?.metadata ?? {}),
      name,
      namespace,
      labels: { ...(base?.metadata.labels ?? {}), [MANAGED_BY_LABEL]: MANAGED_BY_VALUE },
      annotations: {
        ...(base?.metadata.annotations ?? {}),
        [CA_PUBLISHED_ANNOTATION]: new Date(set.caPublishedAt).toISOString(),
      },
    },
    data: {
      'tls.crt': b64(set.cert),
      'tls.key': b64(set.key),
      'ca.crt': b64(set.caBundle),
      'ca.key': b64(set.caKey),
    },
  };
}

export interface IssuerOptions {
  readonly client: KubeClient;
  readonly namespace: string;
  readonly secretName: string;
  readonly settings: CertificatePlanSettings;
  readonly logger?: Logger;
  readonly metrics?: InjectorMetrics;
  /** How often the leader checks (the watch also wakes it). */
  readonly intervalMs: number;
  readonly signal: AbortSignal;
  /** Resolves early when something changed (the Secret watch calls `wake`). */
  readonly wakeups?: { wait(signal: AbortSignal, ms: number): Promise<void> };
}

/** One round of the leader's certificate duty; returns what was done. */
export async function ensureCertificates(
  o: Omit<IssuerOptions, 'intervalMs' | 'signal' | 'wakeups'>,
  now = Date.now(),
): Promise<string> {
  const path = `/api/v1/namespaces/${o.namespace}/secrets/${o.secretName}`;
  const existing = await o.client.get<Secret>(path);
  const plan = planCertificates(secretToSet(existing), o.settings, now);
  if (!plan) return 'unchanged';
  const secret = setToSecret(o.secretName, o.namespace, plan.next, existing);
  try {
    if (existing) await o.client.replace(path, secret);
    else await o.client.create(`/api/v1/namespaces/${o.namespace}/secrets`, secret);
  } catch (err) {
    if (err instanceof KubeApiError && err.status === 409) return 'conflict';
    throw err;
  }
  for (const kind of plan.issued) o.metrics?.certificatesIssued.inc({ kind });
  o.logger?.info(
    { object: `secrets/${o.namespace}/${o.secretName}`, issued: plan.issued, reason: plan.reason },
    'updated the webhook certificates',
  );
  return plan.issued.length ? `issued ${plan.issued.join('+')}` : 'pruned';
}

/** The leader's loop: keeps the certificates valid until `signal` aborts (leadership lost). */
export async function runCertificateIssuer(o: IssuerOptions): Promise<void> {
  while (!o.signal.aborted) {
    let retry = o.intervalMs;
    try {
      if ((await ensureCertificates(o)) === 'conflict') retry = 500;
    } catch (err) {
      o.logger?.warn({ err: (err as Error).message }, 'could not update the webhook certificates; retrying');
      retry = Math.min(o.intervalMs, 5000);
    }
    if (o.wakeups) await o.wakeups.wait(o.signal, retry);
    else await sleep(retry, o.signal);
  }
}

/** Watches the Secret (every replica) and reports the certificates in it. */
export function watchCertificateSecret(o: {
  client: KubeClient;
  namespace: string;
  secretName: string;
  signal: AbortSignal;
  logger?: Logger;
  onChange: (set: Partial<CertificateSet> | undefined) => void;
}): Promise<void> {
  return runInformer<Secret>({
    client: o.client,
    path: `/api/v1/namespaces/${o.namespace}/secrets`,
    query: { fieldSelector: `metadata.name=${o.secretName}` },
    name: 'tls-secret',
    signal: o.signal,
    ...(o.logger ? { logger: o.logger } : {}),
    onSync: (items) => o.onChange(secretToSet(items[0])),
    onEvent: (type, obj) => o.onChange(type === 'DELETED' ? undefined : secretToSet(obj)),
  });
}
