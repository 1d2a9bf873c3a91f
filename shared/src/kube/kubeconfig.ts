/**
 * Connections from kubeconfig files, read the way kubectl reads them: several
 * files (a $KUBECONFIG list) merge with the first file to name a cluster, user
 * or context winning, and the first `current-context` set; paths inside a
 * file are relative to that file; inline `*-data` wins over a file path.
 * Users authenticate with a token, a token file, a client certificate or an
 * exec plugin; auth-provider plugins and basic auth, both removed from
 * Kubernetes, are refused with what to use instead.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import YAML from 'yaml';
import { ConfigError } from '../errors.ts';
import type { CredentialSource, KubeConnection, KubeCredentials } from './connection.ts';
import { fixedCredentials } from './connection.ts';
import { type ExecClusterInfo, type ExecConfig, execCredentials } from './exec-credential.ts';
import { tokenFileCredentials } from './token-file.ts';

interface ContextEntry {
  readonly cluster: string;
  readonly user: string;
  readonly namespace?: string;
}

interface ClusterEntry {
  readonly server?: string;
  readonly 'certificate-authority'?: string;
  readonly 'certificate-authority-data'?: string;
  readonly 'insecure-skip-tls-verify'?: boolean;
  readonly 'tls-server-name'?: string;
  readonly extensions?: readonly { name: string; extension: unknown }[];
}

interface UserEntry {
  readonly token?: string;
  readonly tokenFile?: string;
  readonly 'client-certificate'?: string;
  readonly 'client-certificate-data'?: string;
  readonly 'client-key'?: string;
  readonly 'client-key-data'?: string;
  readonly exec?: ExecConfig;
  readonly 'auth-provider'?: unknown;
  readonly username?: string;
  readonly password?: string;
}

interface KubeconfigFile {
  readonly 'current-context'?: string;
  readonly contexts?: readonly { name: string; context?: ContextEntry }[];
  readonly clusters?: readonly { name: string; cluster?: ClusterEntry }[];
  readonly users?: readonly { name: string; user?: UserEntry }[];
}

/** An entry and the directory of the file that defined it (its relative paths start there). */
interface Found<T> {
  readonly value: T;
  readonly dir: string;
}

interface Merged {
  readonly files: string[];
  currentContext?: string;
  readonly contexts: Map<string, Found<ContextEntry>>;
  readonly clusters: Map<string, Found<ClusterEntry>>;
  readonly users: Map<string, Found<UserEntry>>;
}

export interface KubeconfigOptions {
  /** The environment exec plugins run with. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Use this context instead of `current-context`. */
  readonly context?: string;
  /** Skip files that do not exist, as kubectl does for a $KUBECONFIG list; default: refuse them. */
  readonly skipMissing?: boolean;
}

function addAll<T>(
  into: Map<string, Found<T>>,
  list: readonly { name: string }[] | undefined,
  key: string,
  dir: string,
): void {
  for (const item of list ?? []) {
    const value = (item as Record<string, unknown>)[key] as T | undefined;
    if (typeof item?.name === 'string' && value && !into.has(item.name)) into.set(item.name, { value, dir });
  }
}

function readMerged(paths: readonly string[], skipMissing: boolean): Merged {
  const merged: Merged = { files: [], contexts: new Map(), clusters: new Map(), users: new Map() };
  for (const path of paths) {
    if (skipMissing && !existsSync(path)) continue;
    let doc: KubeconfigFile | null;
    try {
      doc = YAML.parse(readFileSync(path, 'utf8')) as KubeconfigFile | null;
    } catch (err) {
      throw new ConfigError(`cannot read kubeconfig ${path}: ${(err as Error).message}`, { cause: err });
    }
    merged.files.push(path);
    if (!doc || typeof doc !== 'object') continue;
    const dir = dirname(resolve(path));
    merged.currentContext ||= doc['current-context'] || undefined;
    addAll(merged.contexts, doc.contexts, 'context', dir);
    addAll(merged.clusters, doc.clusters, 'cluster', dir);
    addAll(merged.users, doc.users, 'user', dir);
  }
  return merged;
}

function fileReader(where: string, dir: string) {
  /** Inline base64 data wins over a file path, as in kubectl. */
  return (data: string | undefined, file: string | undefined, what: string): string | undefined => {
    if (data) return Buffer.from(data, 'base64').toString('utf8');
    if (!file) return undefined;
    const path = isAbsolute(file) ? file : join(dir, file);
    try {
      return readFileSync(path, 'utf8');
    } catch (err) {
      throw new ConfigError(`${where}: cannot read the ${what} ${path}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  };
}

/** Later sources fill in or override what earlier ones gave (an exec plugin's token over a file's). */
function layered(sources: readonly CredentialSource[]): CredentialSource {
  if (sources.length <= 1) return sources[0] ?? fixedCredentials();
  return {
    async current() {
      let out: KubeCredentials = {};
      for (const s of sources) out = { ...out, ...(await s.current()) };
      return out;
    },
    refused() {
      for (const s of sources) s.refused?.();
    },
  };
}

function definedOnly(c: Record<string, string | undefined>): KubeCredentials {
  return Object.fromEntries(Object.entries(c).filter(([, v]) => v !== undefined && v !== ''));
}

/**
 * The connection of one context (`current-context` unless `opts.context`) of
 * the kubeconfig file, or of the merge of several files.
 */
export function kubeconfigConnection(
  paths: string | readonly string[],
  opts: KubeconfigOptions = {},
): KubeConnection {
  const list = typeof paths === 'string' ? [paths] : paths;
  const m = readMerged(list, opts.skipMissing === true);
  const where = `kubeconfig ${list.join(':')}`;
  if (m.files.length === 0) throw new ConfigError(`${where}: none of these files exists`);
  const ctxName = opts.context ?? m.currentContext;
  // With no context named at all, a file with one context still works (kubectl would ask for one).
  const ctxEntry = ctxName ? m.contexts.get(ctxName) : m.contexts.entries().next().value?.[1];
  const name = ctxName ?? m.contexts.keys().next().value;
  if (!ctxEntry) throw new ConfigError(`${where}: context "${ctxName ?? ''}" not found`);
  const ctx = ctxEntry.value;
  const clusterFound = m.clusters.get(ctx.cluster);
  if (!clusterFound?.value.server)
    throw new ConfigError(`${where}: cluster "${ctx.cluster}" not found or has no server`);
  const cluster = clusterFound.value;
  const server = clusterFound.value.server;
  const clusterFile = fileReader(where, clusterFound.dir);
  const userFound = m.users.get(ctx.user);
  const user: UserEntry = userFound?.value ?? {};
  const userDir = userFound?.dir ?? clusterFound.dir;
  const userFile = fileReader(where, userDir);
  if (user['auth-provider']) {
    throw new ConfigError(
      `${where}: user "${ctx.user}" uses an auth-provider plugin (removed from kubectl); use an exec plugin, a token or a client certificate`,
    );
  }
  if (user.username || user.password) {
    throw new ConfigError(
      `${where}: user "${ctx.user}" uses basic authentication (removed from the API server in Kubernetes 1.19); use a token, a client certificate or an exec plugin`,
    );
  }
  const ca = clusterFile(
    cluster['certificate-authority-data'],
    cluster['certificate-authority'],
    'certificate authority',
  );
  const sources: CredentialSource[] = [];
  if (!user.token && user.tokenFile)
    sources.push(
      tokenFileCredentials(isAbsolute(user.tokenFile) ? user.tokenFile : join(userDir, user.tokenFile)),
    );
  const inline = definedOnly({
    token: user.token,
    clientCert: userFile(user['client-certificate-data'], user['client-certificate'], 'client certificate'),
    clientKey: userFile(user['client-key-data'], user['client-key'], 'client key'),
  });
  if (Object.keys(inline).length > 0) sources.push(fixedCredentials(inline));
  if (user.exec) {
    const execConfig = cluster.extensions?.find((e) => e.name === 'client.authentication.k8s.io/exec');
    const info: ExecClusterInfo = {
      server,
      ...(cluster['tls-server-name'] ? { 'tls-server-name': cluster['tls-server-name'] } : {}),
      ...(cluster['insecure-skip-tls-verify'] ? { 'insecure-skip-tls-verify': true } : {}),
      ...(ca ? { 'certificate-authority-data': Buffer.from(ca).toString('base64') } : {}),
      ...(execConfig ? { config: execConfig.extension } : {}),
    };
    sources.push(execCredentials(user.exec, { baseDir: userDir, env: opts.env ?? {}, cluster: info }));
  }
  return {
    server: server.replace(/\/+$/, ''),
    ...(ca ? { ca } : {}),
    ...(cluster['insecure-skip-tls-verify'] === true ? { insecureSkipTlsVerify: true } : {}),
    ...(cluster['tls-server-name'] ? { tlsServerName: cluster['tls-server-name'] } : {}),
    credentials: layered(sources),
    ...(ctx.namespace ? { namespace: ctx.namespace } : {}),
    ...(name ? { context: name } : {}),
    source: `${where} (context ${name})`,
  };
}
