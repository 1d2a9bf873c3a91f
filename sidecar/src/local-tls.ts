/**
 * The per-pod local CA. Agents reach the sidecar at https://127.0.0.1:<port>
 * and verify it with the `ca.crt` the injector mounts at the service-account
 * path, so unmodified in-cluster clients work. The CA key stays in a
 * sidecar-only directory (reused across sidecar restarts so agents keep
 * trusting it); agents only ever see the certificate.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCA, issueCertificate, type KeyPairPem, needsRenewal } from '@chaperone/shared/tls';
import { writeAtomic } from './write-atomic.ts';

export interface LocalTls {
  readonly ca: KeyPairPem;
  readonly leaf: KeyPairPem;
  readonly leafNotAfter: Date;
}

/** Loads the pod's CA from `tlsDir` or creates it (valid 10 years), then issues a fresh serving leaf. */
export function ensureLocalTls(tlsDir: string, podName: string): LocalTls {
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
  return { ca, leaf: { cert: leaf.cert, key: leaf.key }, leafNotAfter: leaf.notAfter };
}
