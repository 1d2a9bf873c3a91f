/**
 * The connection a binary uses, from its flags and environment, first match:
 * an explicit kubeconfig (`--kubeconfig`, with `--context`); an API server
 * named directly (`server`, with a CA file and token file); the pod's service
 * account when KUBERNETES_SERVICE_HOST is set and its token is mounted; the
 * $KUBECONFIG list; ~/.kube/config. Read once, at start-up.
 */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { ConfigError } from '../errors.ts';
import type { KubeConnection } from './connection.ts';
import { IN_CLUSTER_DIR, inClusterConnection } from './in-cluster.ts';
import { kubeconfigConnection } from './kubeconfig.ts';
import { serverConnection } from './server-connection.ts';

export interface ConnectionOptions {
  /** A kubeconfig file to use alone. */
  readonly kubeconfig?: string;
  /** The kubeconfig context to use instead of its current-context. */
  readonly context?: string;
  /** An API server URL to use with `caFile` and `tokenFile` (when no kubeconfig is given). */
  readonly server?: string;
  readonly caFile?: string;
  readonly tokenFile?: string;
  /** The in-cluster service-account directory (tests). */
  readonly inClusterDir?: string;
}

export function resolveKubeConnection(
  opts: ConnectionOptions,
  env: Readonly<Record<string, string | undefined>>,
): KubeConnection {
  const context = opts.context ? { context: opts.context } : {};
  if (opts.kubeconfig) return kubeconfigConnection(opts.kubeconfig, { env, ...context });
  if (opts.server)
    return serverConnection({
      server: opts.server,
      ...(opts.caFile ? { caFile: opts.caFile } : {}),
      ...(opts.tokenFile ? { tokenFile: opts.tokenFile } : {}),
    });
  const saDir = opts.inClusterDir ?? IN_CLUSTER_DIR;
  if (env.KUBERNETES_SERVICE_HOST && existsSync(join(saDir, 'token'))) return inClusterConnection(env, saDir);
  const fromEnv = (env.KUBECONFIG ?? '').split(delimiter).filter((p) => p.length > 0);
  if (fromEnv.length > 0) return kubeconfigConnection(fromEnv, { env, skipMissing: true, ...context });
  const home = join(env.HOME ?? homedir(), '.kube', 'config');
  if (existsSync(home)) return kubeconfigConnection(home, { env, ...context });
  throw new ConfigError(
    'no Kubernetes API to talk to: not in a cluster, no --kubeconfig, $KUBECONFIG or ~/.kube/config',
  );
}
