/**
 * The little of the Kubernetes API the collector needs (issuer keys and
 * TokenReview), over node:https with the cluster CA. Credentials come from a
 * kubeconfig (token or client certificate) or from the pod's own mounted
 * service account; a token file is re-read so rotated projected tokens work.
 */
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { dirname, resolve } from 'node:path';
import { ChaperoneError, ConfigError } from '@chaperone/shared';
import YAML from 'yaml';

export interface KubeConnection {
  readonly server: string;
  readonly agent: Agent;
  /** Current bearer token, if the connection authenticates with one. */
  token(): string | undefined;
}

export interface KubeConnectionOptions {
  kubeconfig?: string;
  apiServer?: string;
  caFile?: string;
  tokenFile?: string;
}

const TOKEN_REREAD_MS = 60_000;

function tokenFromFile(path: string): () => string {
  let cached = '';
  let readAt = 0;
  return () => {
    if (Date.now() - readAt > TOKEN_REREAD_MS || !cached) {
      try {
        cached = readFileSync(path, 'utf8').trim();
      } catch (err) {
        throw new ChaperoneError(
          'unavailable',
          `cannot read the API token from ${path}: ${(err as Error).message}`,
        );
      }
      readAt = Date.now();
    }
    return cached;
  };
}

function readFile(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read ${what} ${path}: ${(err as Error).message}`);
  }
}

interface Kubeconfig {
  'current-context'?: string;
  contexts?: { name: string; context: { cluster: string; user: string } }[];
  clusters?: {
    name: string;
    cluster: { server: string; 'certificate-authority-data'?: string; 'certificate-authority'?: string };
  }[];
  users?: {
    name: string;
    user: {
      token?: string;
      tokenFile?: string;
      'client-certificate-data'?: string;
      'client-key-data'?: string;
      'client-certificate'?: string;
      'client-key'?: string;
    };
  }[];
}

export function loadKubeConnection(opts: KubeConnectionOptions): KubeConnection {
  if (opts.kubeconfig) {
    const base = dirname(resolve(opts.kubeconfig));
    const cfg = YAML.parse(readFile(opts.kubeconfig, 'kubeconfig')) as Kubeconfig;
    const ctx = cfg.contexts?.find((c) => c.name === cfg['current-context']) ?? cfg.contexts?.[0];
    const cluster = cfg.clusters?.find((c) => c.name === ctx?.context.cluster)?.cluster;
    const user = cfg.users?.find((u) => u.name === ctx?.context.user)?.user ?? {};
    if (!cluster?.server) throw new ConfigError(`kubeconfig ${opts.kubeconfig} names no cluster server`);
    const rel = (p: string) => resolve(base, p);
    const ca = cluster['certificate-authority-data']
      ? Buffer.from(cluster['certificate-authority-data'], 'base64').toString()
      : cluster['certificate-authority']
        ? readFile(rel(cluster['certificate-authority']), 'CA file')
        : undefined;
    const cert = user['client-certificate-data']
      ? Buffer.from(user['client-certificate-data'], 'base64').toString()
      : user['client-certificate']
        ? readFile(rel(user['client-certificate']), 'client certificate')
        : undefined;
    const key = user['client-key-data']
      ? Buffer.from(user['client-key-data'], 'base64').toString()
      : user['client-key']
        ? readFile(rel(user['client-key']), 'client key')
        : undefined;
    const staticToken = user.token;
    const fileToken = user.tokenFile ? tokenFromFile(rel(user.tokenFile)) : undefined;
    return {
      server: cluster.server.replace(/\/+$/, ''),
      agent: new Agent({ keepAlive: true, ...(ca ? { ca } : {}), ...(cert && key ? { cert, key } : {}) }),
      token: () => staticToken ?? fileToken?.(),
    };
  }
  if (!opts.apiServer) {
    throw new ConfigError(
      'no Kubernetes API server: run in a pod (KUBERNETES_SERVICE_HOST) or set --kube-api-server or --kubeconfig',
    );
  }
  const ca = opts.caFile ? readFile(opts.caFile, 'cluster CA') : undefined;
  const token = opts.tokenFile ? tokenFromFile(opts.tokenFile) : undefined;
  return {
    server: opts.apiServer.replace(/\/+$/, ''),
    agent: new Agent({ keepAlive: true, ...(ca ? { ca } : {}) }),
    token: () => token?.(),
  };
}

export interface KubeResponse {
  readonly status: number;
  readonly body: string;
}

/** One request to the API server; rejects only when it could not be made. */
export function kubeRequest(
  conn: KubeConnection,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
  timeoutMs = 10_000,
  accept = 'application/json',
): Promise<KubeResponse> {
  const url = new URL(path, `${conn.server}/`);
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const token = conn.token();
  return new Promise((resolvePromise, reject) => {
    const req = request(
      url,
      {
        method,
        agent: conn.agent,
        timeout: timeoutMs,
        headers: {
          accept,
          ...(payload ? { 'content-type': 'application/json' } : {}),
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolvePromise({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url.origin} within ${timeoutMs} ms`)));
    req.on('error', (err) =>
      reject(
        new ChaperoneError('unavailable', `Kubernetes API ${method} ${url.pathname} failed: ${err.message}`, {
          cause: err,
        }),
      ),
    );
    req.end(payload);
  });
}
