/**
 * Serving certificates provided as files (cert-manager, a mounted Secret):
 * validated at start, then checked for changes and hot-reloaded. A Secret
 * volume is updated by swapping a symlink, so files are re-read by content
 * rather than watched with inotify. A broken update is logged and ignored:
 * the server keeps the last good certificate.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ChaperoneError, type Logger } from '@chaperone/shared';
import { sleep } from '../controllers/informer.ts';

export interface CertificateFiles {
  readonly cert: string;
  readonly key: string;
  /** CA bundle to publish as caBundle, when a CA file is given. */
  readonly ca?: string;
}

export function loadCertificateFiles(certPath: string, keyPath: string, caPath?: string): CertificateFiles {
  let cert: string;
  let key: string;
  let ca: string | undefined;
  try {
    cert = readFileSync(certPath, 'utf8');
    key = readFileSync(keyPath, 'utf8');
    ca = caPath ? readFileSync(caPath, 'utf8') : undefined;
  } catch (err) {
    throw new ChaperoneError(
      'tls_failed',
      `cannot read the serving certificate files: ${(err as Error).message}`,
      { cause: err },
    );
  }
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    throw new ChaperoneError('tls_failed', `${certPath} is not a PEM certificate`, { cause: err });
  }
  try {
    if (!x509.checkPrivateKey(createPrivateKey(key))) {
      throw new ChaperoneError('tls_failed', `${keyPath} is not the private key of ${certPath}`);
    }
  } catch (err) {
    if (err instanceof ChaperoneError) throw err;
    throw new ChaperoneError('tls_failed', `${keyPath} is not a PEM private key`, { cause: err });
  }
  if (ca !== undefined) {
    try {
      new X509Certificate(ca);
    } catch (err) {
      throw new ChaperoneError('tls_failed', `${caPath} is not a PEM certificate bundle`, { cause: err });
    }
  }
  return { cert, key, ...(ca !== undefined ? { ca } : {}) };
}

export async function watchCertificateFiles(o: {
  certPath: string;
  keyPath: string;
  caPath?: string;
  intervalMs: number;
  initial: CertificateFiles;
  signal: AbortSignal;
  logger?: Logger;
  onChange: (files: CertificateFiles) => void;
}): Promise<void> {
  let last = o.initial;
  let lastError = '';
  while (!o.signal.aborted) {
    await sleep(o.intervalMs, o.signal);
    if (o.signal.aborted) return;
    try {
      const now = loadCertificateFiles(o.certPath, o.keyPath, o.caPath);
      lastError = '';
      if (now.cert !== last.cert || now.key !== last.key || now.ca !== last.ca) {
        last = now;
        o.onChange(now);
      }
    } catch (err) {
      // Mid-update (certificate written, key not yet) or broken: keep serving the last good one.
      const msg = (err as Error).message;
      if (msg !== lastError)
        o.logger?.warn({ err: msg }, 'the certificate files are not usable; keeping the current certificate');
      lastError = msg;
    }
  }
}
