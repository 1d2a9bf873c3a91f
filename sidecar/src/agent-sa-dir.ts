/**
 * What agents see at /var/run/secrets/kubernetes.io/serviceaccount: the
 * sidecar's local CA, a placeholder token and the namespace.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeAtomic } from './write-atomic.ts';

export const PLACEHOLDER_TOKEN =
  'chaperone-placeholder-token: the real credentials are held by the chaperone sidecar';

export function writeAgentServiceAccountDir(dir: string, caCert: string, namespace: string): void {
  mkdirSync(dir, { recursive: true });
  writeAtomic(join(dir, 'ca.crt'), caCert, 0o644);
  writeAtomic(join(dir, 'token'), PLACEHOLDER_TOKEN, 0o644);
  writeAtomic(join(dir, 'namespace'), namespace, 0o644);
}
