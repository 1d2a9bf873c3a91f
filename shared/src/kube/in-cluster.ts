/**
 * The pod's own service account, as client-go's rest.InClusterConfig reads it:
 * https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT, the CA and the
 * namespace from the service-account directory, and its token re-read as the
 * kubelet rotates it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../errors.ts';
import type { KubeConnection } from './connection.ts';
import { serverConnection } from './server-connection.ts';

export const IN_CLUSTER_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export function inClusterConnection(
  env: Readonly<Record<string, string | undefined>>,
  dir = IN_CLUSTER_DIR,
): KubeConnection {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port)
    throw new ConfigError('not running in a cluster: KUBERNETES_SERVICE_HOST/PORT are not set');
  const namespaceFile = join(dir, 'namespace');
  return serverConnection({
    server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    caFile: join(dir, 'ca.crt'),
    tokenFile: join(dir, 'token'),
    ...(existsSync(namespaceFile) ? { namespace: readFileSync(namespaceFile, 'utf8').trim() } : {}),
    source: 'in-cluster service account',
  });
}
