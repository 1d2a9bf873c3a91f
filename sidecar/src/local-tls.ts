/**
 * The per-pod local CA. Agents reach the sidecar at https://127.0.0.1:<port>
 * and verify it with the `ca.crt` the injector mounts at the service-account
 * path, so unmodified in-cluster clients work. The CA key stays in a
 * sidecar-only directory (reused across sidecar restarts so agents keep
 * trusting it); agents only ever see the certificate.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  createCA,
  inspectCertificate,
  issueCertificate,
  type KeyPairPem,
  needsRenewal,
} from '@chaperone/shared';

export const PLACEHOLDER_TOKEN =
  'chaperone-placeholder-token: the real credentials are held by the chaperone sidecar';

function writeAtomic(path: string, content: string, mode: number): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, content, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}

/** Loads the pod's CA from `tlsDir` or creates it (valid 10 years), then issues a fresh serving leaf. */
export function ensureLocalTls(tlsDir: string, podName: string): { ca: KeyPairPem; leaf: KeyPairPem } {
  mkdirSync(tlsDir, { recursive: true, mode: 0o700 });
  const certPath = join(tlsDir, 'ca.crt');
  const keyPath = join(tlsDir, 'ca.key');
  let ca: KeyPairPem | undefined;
  if (existsSync(certPath) && existsSync(keyPath)) {
    const cert = readFileSync(certPath, 'utf8');
    if (!needsRenewal(cert)) ca = { cert, key: readFileSync(keyPath, 'utf8') };
  }
  if (!ca) {
    const created = createCA({
      commonName: `chaperone local CA for ${podName}`,
      validForMs: 10 * 365 * 86_400_000,
    });
    ca = { cert: created.cert, key: created.key };
    writeAtomic(keyPath, ca.key, 0o600);
    writeAtomic(certPath, ca.cert, 0o644);
  }
  const leaf = issueCertificate({
    ca,
    commonName: 'chaperone-sidecar',
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1', '::1'],
    validForMs: 365 * 86_400_000,
  });
  return { ca, leaf };
}

/** Writes what agents see at /var/run/secrets/kubernetes.io/serviceaccount: the local CA, a placeholder token, the namespace. */
export function writeAgentServiceAccountDir(dir: string, caCert: string, namespace: string): void {
  mkdirSync(dir, { recursive: true });
  writeAtomic(join(dir, 'ca.crt'), caCert, 0o644);
  writeAtomic(join(dir, 'token'), PLACEHOLDER_TOKEN, 0o644);
  writeAtomic(join(dir, 'namespace'), namespace, 0o644);
}

export function certificateExpiry(pem: string): Date {
  return inspectCertificate(pem).notAfter;
}
