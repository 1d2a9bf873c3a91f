/**
 * A connection to an API server named directly: its URL, the CA to trust and
 * a token file (re-read as it rotates). The in-cluster connection is one of
 * these; so is a binary's `--kube-api-server` with `--kube-ca-file` and
 * `--kube-token-file`.
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors.ts';
import { fixedCredentials, type KubeConnection } from './connection.ts';
import { tokenFileCredentials } from './token-file.ts';

export interface ServerConnectionOptions {
  /** `https://host:port` (a path prefix is kept: requests go below it). */
  readonly server: string;
  /** PEM CA bundle file; the system's roots when absent. */
  readonly caFile?: string;
  /** Bearer token file, re-read while it rotates. */
  readonly tokenFile?: string;
  readonly namespace?: string;
  /** For messages; default `API server <server>`. */
  readonly source?: string;
}

export function readConfigFile(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read ${what} ${path}: ${(err as Error).message}`, { cause: err });
  }
}

export function serverConnection(o: ServerConnectionOptions): KubeConnection {
  let url: URL;
  try {
    url = new URL(o.server);
  } catch {
    throw new ConfigError(`the API server address "${o.server}" is not a URL (expected https://host:port)`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw new ConfigError(`the API server address "${o.server}" must be an https:// URL`);
  return {
    server: o.server.replace(/\/+$/, ''),
    ...(o.caFile ? { ca: readConfigFile(o.caFile, 'the cluster CA') } : {}),
    credentials: o.tokenFile ? tokenFileCredentials(o.tokenFile) : fixedCredentials(),
    ...(o.namespace ? { namespace: o.namespace } : {}),
    source: o.source ?? `API server ${o.server}`,
  };
}
