/**
 * What agents see at /var/run/secrets/kubernetes.io/serviceaccount: the
 * sidecar's local CA, a placeholder token and the namespace.
 */
import { chmodSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const PLACEHOLDER_TOKEN =
  'chaperone-placeholder-token: the real credentials are held by the chaperone sidecar';

/** Writes a file whole or not at all (readers never see a partial file). */
export function writeAtomic(path: string, content: string, mode: number): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, content, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}

export function writeAgentServiceAccountDir(dir: string, caCert: string, namespace: string): void {
  mkdirSync(dir, { recursive: true });
  writeAtomic(join(dir, 'ca.crt'), caCert, 0o644);
  writeAtomic(join(dir, 'token'), PLACEHOLDER_TOKEN, 0o644);
  writeAtomic(join(dir, 'namespace'), namespace, 0o644);
}
