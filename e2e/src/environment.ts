/**
 * The environment the end-to-end tests share: one control plane and one
 * PostgreSQL per run, started by the global setup, described by a state file
 * named in CHAPERONE_E2E_STATE. Each test makes its own namespace or database
 * with the helpers here and removes it afterwards.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { DependencyError } from '@chaperone/shared';
import pg from 'pg';
import { kubectl } from './kubectl.ts';

export interface KubeInfo {
  readonly mode: 'local' | 'existing';
  readonly kubeconfigPath: string;
  readonly server: string;
  readonly caCert: string;
  readonly version: { major: number; minor: number; gitVersion: string };
  readonly serviceAccountIssuer?: string;
  readonly dir?: string;
  /** The API server's audit log (local mode only). */
  readonly auditLogPath?: string;
  readonly pids: readonly number[];
}

export interface PostgresInfo {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly database: string;
  readonly url: string;
  readonly version: string;
  readonly superuser: { readonly user: string; readonly password: string };
  readonly pids: readonly number[];
}

export interface E2eState {
  readonly kube?: KubeInfo;
  readonly postgres?: PostgresInfo;
}

export const STATE_ENV = 'CHAPERONE_E2E_STATE';

export function e2eState(): E2eState {
  const path = process.env[STATE_ENV];
  if (!path) {
    throw new DependencyError(
      `${STATE_ENV} is not set: end-to-end tests run under the e2e global setup (pnpm --filter @chaperone/e2e test)`,
    );
  }
  return JSON.parse(readFileSync(path, 'utf8')) as E2eState;
}

export function kubeInfo(): KubeInfo {
  const k = e2eState().kube;
  if (!k) throw new DependencyError('the e2e global setup did not start a control plane');
  return k;
}

export function postgresInfo(): PostgresInfo {
  const p = e2eState().postgres;
  if (!p) throw new DependencyError('the e2e global setup did not start PostgreSQL');
  return p;
}

/** `prefix-<random>`: a DNS-1123 label unique to this test. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

export interface TestNamespace {
  readonly name: string;
  delete(): Promise<void>;
}

/** Creates a fresh namespace (with optional labels); `delete()` removes it without waiting. */
export async function createNamespace(
  prefix: string,
  labels: Record<string, string> = {},
): Promise<TestNamespace> {
  const kube = kubeInfo();
  const name = uniqueName(prefix);
  const manifest = {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name, labels: { 'chaperone.dev/e2e': 'true', ...labels } },
  };
  const r = kubectl(kube.kubeconfigPath, ['create', '-f', '-'], { input: JSON.stringify(manifest) });
  if (r.code !== 0) throw new DependencyError(`creating namespace ${name} failed: ${r.stderr.trim()}`);
  return {
    name,
    async delete() {
      kubectl(kube.kubeconfigPath, ['delete', 'namespace', name, '--wait=false', '--ignore-not-found']);
    },
  };
}

export interface TestDatabase {
  readonly name: string;
  /** Connection URL for the application role. */
  readonly url: string;
  drop(): Promise<void>;
}

async function asSuperuser<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const p = postgresInfo();
  const client = new pg.Client({
    host: p.host,
    port: p.port,
    user: p.superuser.user,
    password: p.superuser.password,
    database: 'postgres',
  });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Creates a fresh database owned by the application role. */
export async function createDatabase(prefix: string): Promise<TestDatabase> {
  const p = postgresInfo();
  const name = uniqueName(prefix).replace(/-/g, '_').toLowerCase();
  await asSuperuser((c) => c.query(`CREATE DATABASE ${name} OWNER ${p.user}`));
  return {
    name,
    url: `postgresql://${p.user}:${encodeURIComponent(p.password)}@${p.host}:${p.port}/${name}`,
    drop: () => asSuperuser((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => {}),
  };
}
