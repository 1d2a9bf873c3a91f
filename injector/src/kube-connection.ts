/**
 * Where the Kubernetes API is and how to authenticate: the in-cluster service
 * account, or a kubeconfig (token, token file, client certificate or exec
 * plugin; auth-provider plugins are refused with a clear message rather than
 * half supported). Read once in main.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { ConfigError } from '@chaperone/shared';
import YAML from 'yaml';
import { type ExecConfig, execTokenSource, runExecCredential } from './exec-credential.ts';

export interface KubeConnection {
  readonly server: string;
  readonly ca?: string;
  readonly insecureSkipTlsVerify?: boolean;
  readonly tlsServerName?: string;
  readonly clientCert?: string;
  readonly clientKey?: string;
  /** Bearer token, read on use (projected tokens are rotated on disk). */
  readonly token?: () => string | undefined;
  /** The namespace of the context or the in-cluster pod, when known. */
  readonly namespace?: string;
  /** Where this came from, for messages. */
  readonly source: string;
}

export const IN_CLUSTER_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** A token file re-read at most once a minute, as client-go does. */
export function tokenFile(path: string): () => string | undefined {
  let cached: string | undefined;
  let readAt = 0;
  let mtime = 0;
  return () => {
    const now = Date.now();
    if (cached !== undefined && now - readAt < 60_000) return cached;
    try {
      const m = statSync(path).mtimeMs;
      if (cached === undefined || m !== mtime) {
        cached = readFileSync(path, 'utf8').trim();
        mtime = m;
      }
      readAt = now;
    } catch {
      // keep the last token we had; requests will fail with 401 if it is gone for good
    }
    return cached;
  };
}

export function inClusterConnection(
  env: Readonly<Record<string, string | undefined>>,
  dir = IN_CLUSTER_DIR,
): KubeConnection {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port)
    throw new ConfigError('not running in a cluster: KUBERNETES_SERVICE_HOST/PORT are not set');
  const hostPart = host.includes(':') ? `[${host}]` : host;
  return {
    server: `https://${hostPart}:${port}`,
    ca: readFileSync(join(dir, 'ca.crt'), 'utf8'),
    token: tokenFile(join(dir, 'token')),
    namespace: existsSync(join(dir, 'namespace'))
      ? readFileSync(join(dir, 'namespace'), 'utf8').trim()
      : undefined,
    source: 'in-cluster service account',
  } as KubeConnection;
}

interface KubeconfigFile {
  'current-context'?: string;
  contexts?: { name: string; context: { cluster: string; user: string; namespace?: string } }[];
  clusters?: {
    name: string;
    cluster: {
      server: string;
      'certificate-authority'?: string;
      'certificate-authority-data'?: string;
      'insecure-skip-tls-verify'?: boolean;
      'tls-server-name'?: string;
    };
  }[];
  users?: {
    name: string;
    user: {
      token?: string;
      tokenFile?: string;
      'client-certificate'?: string;
      'client-certificate-data'?: string;
      'client-key'?: string;
      'client-key-data'?: string;
      exec?: ExecConfig;
      'auth-provider'?: unknown;
      username?: string;
    };
  }[];
}

export function kubeconfigConnection(
  path: string,
  env: Readonly<Record<string, string | undefined>> = {},
  context?: string,
): KubeConnection {
  let doc: KubeconfigFile;
  try {
    doc = YAML.parse(readFileSync(path, 'utf8')) as KubeconfigFile;
  } catch (err) {
    throw new ConfigError(`cannot read kubeconfig ${path}: ${(err as Error).message}`, { cause: err });
  }
  const base = dirname(path);
  const resolve = (p: string) => (isAbsolute(p) ? p : join(base, p));
  /** Inline base64 data wins over a file path, as in kubectl. */
  const dataOrFile = (data: string | undefined, file: string | undefined) =>
    data
      ? Buffer.from(data, 'base64').toString('utf8')
      : file
        ? readFileSync(resolve(file), 'utf8')
        : undefined;
  const ctxName = context ?? doc['current-context'];
  const ctx = doc.contexts?.find((c) => c.name === ctxName) ?? (ctxName ? undefined : doc.contexts?.[0]);
  if (!ctx) throw new ConfigError(`kubeconfig ${path}: context "${ctxName ?? ''}" not found`);
  const cluster = doc.clusters?.find((c) => c.name === ctx.context.cluster)?.cluster;
  if (!cluster?.server)
    throw new ConfigError(`kubeconfig ${path}: cluster "${ctx.context.cluster}" not found or has no server`);
  const user = doc.users?.find((u) => u.name === ctx.context.user)?.user ?? {};
  if (user['auth-provider']) {
    throw new ConfigError(
      `kubeconfig ${path}: user "${ctx.context.user}" uses an auth-provider plugin (removed from kubectl); use an exec plugin, a token or a client certificate`,
    );
  }
  const exec = user.exec ? runExecCredential(user.exec, base, env) : undefined;
  const staticToken = user.token;
  return {
    server: cluster.server.replace(/\/+$/, ''),
    ca: dataOrFile(cluster['certificate-authority-data'], cluster['certificate-authority']),
    insecureSkipTlsVerify: cluster['insecure-skip-tls-verify'] === true,
    tlsServerName: cluster['tls-server-name'],
    clientCert: exec?.clientCert
      ? exec.clientCert
      : dataOrFile(user['client-certificate-data'], user['client-certificate']),
    clientKey: exec?.clientCert ? exec.clientKey : dataOrFile(user['client-key-data'], user['client-key']),
    token: exec?.token
      ? execTokenSource(user.exec as ExecConfig, base, env, exec)
      : staticToken
        ? () => staticToken
        : user.tokenFile
          ? tokenFile(resolve(user.tokenFile))
          : undefined,
    namespace: ctx.context.namespace,
    source: `kubeconfig ${path} (context ${ctx.name})`,
  } as KubeConnection;
}

/**
 * The connection for a binary: an explicit kubeconfig, else in-cluster when
 * KUBERNETES_SERVICE_HOST is set, else $KUBECONFIG (first entry), else ~/.kube/config.
 */
export function resolveKubeConnection(
  kubeconfig: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
): KubeConnection {
  if (kubeconfig) return kubeconfigConnection(kubeconfig, env);
  if (env.KUBERNETES_SERVICE_HOST && existsSync(join(IN_CLUSTER_DIR, 'token')))
    return inClusterConnection(env);
  const fromEnv = env.KUBECONFIG?.split(':').find((p) => p.length > 0);
  if (fromEnv) return kubeconfigConnection(fromEnv, env);
  const home = join(env.HOME ?? homedir(), '.kube', 'config');
  if (existsSync(home)) return kubeconfigConnection(home, env);
  throw new ConfigError(
    'no Kubernetes API to talk to: not in a cluster, no --kubeconfig, $KUBECONFIG or ~/.kube/config',
  );
}
