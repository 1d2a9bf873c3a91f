/**
 * The per-pod local CA. Agents reach the sidecar at https://127.0.0.1:<port>
 * and verify it with the `ca.crt` the injector mounts at the service-account
 * path, so unmodified in-cluster clients work. The CA key stays in a
 * sidecar-only directory (reused across sidecar restarts so agents keep
 * trusting it, including a CA an earlier version made with an RSA key);
 * agents only ever see the certificate. Keys are EC P-256, made natively in
 * about a millisecond, so this runs in the sidecar's own process at start.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ChaperoneError } from '@chaperone/shared';
import { createCA, issueCertificate, type KeyPairPem, needsRenewal } from '@chaperone/shared/tls';
import { writeAtomic } from './write-atomic.ts';

export interface LocalTls {
  readonly ca: KeyPairPem;
  readonly leaf: KeyPairPem;
  readonly leafNotAfter: Date;
}

/** A CA on disk that cannot issue: said with what to do, since the sidecar cannot start without it. */
function unusableCa(tlsDir: string, err: unknown): ChaperoneError {
  return new ChaperoneError(
    'tls_failed',
    `the local CA in ${tlsDir} cannot be used (${(err as Error).message}): remove ca.crt and ca.key there and restart the sidecar to make a new one (agents get its ca.crt as the sidecar starts)`,
    { cause: err },
  );
}

/** Loads the pod's CA from `tlsDir` or creates it (valid 10 years), then issues a fresh serving leaf. */
export function ensureLocalTls(tlsDir: string, podName: string): LocalTls {
  mkdirSync(tlsDir, { recursive: true, mode: 0o700 });
  const certPath = join(tlsDir, 'ca.crt');
  const keyPath = join(tlsDir, 'ca.key');
  let ca: KeyPairPem | undefined;
  const fromDisk = existsSync(certPath) && existsSync(keyPath);
  if (fromDisk) {
    try {
      const cert = readFileSync(certPath, 'utf8');
      if (!needsRenewal(cert)) ca = { cert, key: readFileSync(keyPath, 'utf8') };
    } catch (err) {
      throw unusableCa(tlsDir, err);
    }
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
  let leaf: ReturnType<typeof issueCertificate>;
  try {
    leaf = issueCertificate({
      ca,
      commonName: 'chaperone-sidecar',
      dnsNames: ['localhost'],
      ipAddresses: ['127.0.0.1', '::1'],
      validForMs: 365 * 86_400_000,
    });
  } catch (err) {
    throw fromDisk ? unusableCa(tlsDir, err) : err;
  }
  return { ca, leaf: { cert: leaf.cert, key: leaf.key }, leafNotAfter: leaf.notAfter };
}
