/**
 * The collector's CA bundle as the injector publishes it: read from a file
 * (`--collector-ca-file`, a key of a Secret or ConfigMap mounted into the
 * injector), checked, and written as the ConfigMap `chaperone-collector-ca`
 * (key `ca.crt`) into each opted-in namespace, where injection mounts it into
 * the sidecar. Like Istio's `istio-ca-root-cert`: the sidecars of a
 * namespace learn whom to trust from an object only the injector writes.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ChaperoneError } from '@chaperone/shared';
import { splitPemBundle } from '@chaperone/shared/tls';
import type { NamespacedMeta } from '../k8s-types.ts';
import {
  COLLECTOR_CA_CONFIGMAP,
  COLLECTOR_CA_KEY,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  REVISION_LABEL,
} from '../names.ts';

export interface ConfigMap {
  apiVersion: string;
  kind: string;
  metadata: NamespacedMeta;
  data?: Record<string, string>;
  binaryData?: Record<string, string>;
  immutable?: boolean;
  [k: string]: unknown;
}

/**
 * The certificates of a PEM bundle, each checked, one after the other. A
 * private key anywhere in it is refused: the bundle goes into every opted-in
 * namespace, and a key there (a combined file, the wrong key of a TLS Secret)
 * would be readable by whoever can read ConfigMaps.
 */
export function parseCaBundle(pem: string, what: string): string {
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) {
    throw new ChaperoneError(
      'tls_failed',
      `${what} holds a private key; it is published in every opted-in namespace, so give it the CA certificates only (ca.crt, not tls.key)`,
    );
  }
  const certs = splitPemBundle(pem.replace(/\r\n/g, '\n'));
  if (certs.length === 0) throw new ChaperoneError('tls_failed', `${what} holds no PEM certificate`);
  for (const [i, c] of certs.entries()) {
    try {
      new X509Certificate(c);
    } catch (err) {
      throw new ChaperoneError('tls_failed', `certificate ${i + 1} of ${what} cannot be read`, {
        cause: err,
      });
    }
  }
  return certs.join('');
}

/** Reads and checks the CA bundle file. */
export function readCaBundle(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ChaperoneError('tls_failed', `cannot read the collector CA file: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return parseCaBundle(text, path);
}

export function desiredCollectorCaConfigMap(namespace: string, bundle: string, revision?: string): ConfigMap {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: COLLECTOR_CA_CONFIGMAP,
      namespace,
      labels: {
        'app.kubernetes.io/part-of': 'chaperone',
        [MANAGED_BY_LABEL]: MANAGED_BY_VALUE,
        ...(revision ? { [REVISION_LABEL]: revision } : {}),
      },
      annotations: {
        'chaperone.dev/description':
          'Managed by the Chaperone injector: the CA bundle Chaperone sidecars verify the collector with. Edits are reverted; remove the chaperone.dev/inject label from the namespace to remove it.',
      },
    },
    data: { [COLLECTOR_CA_KEY]: bundle },
  };
}

/** What differs between a stored ConfigMap and the desired one (the parts we own), or undefined. */
export function configMapDrift(existing: ConfigMap, desired: ConfigMap): string | undefined {
  // An immutable ConfigMap cannot be repaired in place (it is deleted and created again).
  if (existing.immutable === true) return 'immutable';
  const want = desired.data ?? {};
  const have = existing.data ?? {};
  const keys = new Set([...Object.keys(want), ...Object.keys(have)]);
  for (const k of keys) if (have[k] !== want[k]) return `data ${k}`;
  const binary = Object.keys(existing.binaryData ?? {})[0];
  if (binary !== undefined) return `binaryData ${binary}`;
  for (const [k, v] of Object.entries(desired.metadata.labels ?? {})) {
    if (existing.metadata.labels?.[k] !== v) return `label ${k}`;
  }
  return undefined;
}
