/**
 * One fresh database, declared as `app` on a real `chaperone sidecar` of its
 * own, for the PostgreSQL guard's end-to-end tests: the database on the e2e
 * global setup's PostgreSQL, its Secret (a `url` key, mounted as the injector
 * would), a namespace for the sidecar's identity, and a free port for the
 * listener agents connect to.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { createDatabase, createNamespace, type TestDatabase, type TestNamespace } from './environment.ts';
import { freePorts } from './ports.ts';
import { type SidecarUnderTest, startSidecar } from './sidecar-harness.ts';

export interface GuardedDatabase {
  readonly sidecar: SidecarUnderTest;
  readonly database: TestDatabase;
  /** Where agents connect (database name `app`). */
  readonly port: number;
  /** Runs `fn` on a connection straight to the server, as the application role (setting up, checking). */
  direct<T>(fn: (c: pg.Client) => Promise<T>): Promise<T>;
  stop(): Promise<void>;
}

/** A policy that allows everything but DROP (rule `no-drop`), plus `moreRules` (YAML list items, indented 4). */
export function noDropPolicy(name: string, moreRules = ''): string {
  return `apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: ${name} }
spec:
  defaultAction: allow
  rules:
    - name: no-drop
      match: { protocols: [postgres], sql: { statements: [drop] } }
      action: deny
      message: Tables are not dropped by agents.
${moreRules}`;
}

/** A policy that allows everything and masks users.password (rule `mask-passwords`). */
export const MASK_USER_PASSWORDS = `apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: databases }
spec:
  defaultAction: allow
  rules:
    - name: mask-passwords
      match: { sql: { tables: [users], columns: [password] } }
      action: mask
`;

/** Setup: users (id, password) with a harmless password in row 1 and `canary` in row 2. */
export function usersWithCanary(canary: string): (c: pg.Client) => Promise<void> {
  return async (c) => {
    await c.query('CREATE TABLE users (id int PRIMARY KEY, password text)');
    await c.query(`INSERT INTO users VALUES (1, 'harmless'), (2, '${canary}')`);
  };
}

/** psql as the agent through the sidecar, each of `sql` a query string of its own on one session (verbose errors). */
export function psqlAsAgent(db: GuardedDatabase, ...sql: string[]) {
  const r = spawnSync(
    'psql',
    ['-X', '-w', '-A', '-t', '-v', 'VERBOSITY=verbose', ...sql.flatMap((s) => ['-c', s])],
    {
      encoding: 'utf8',
      timeout: 30_000,
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        PGHOST: '127.0.0.1',
        PGPORT: String(db.port),
        PGDATABASE: 'app',
        PGUSER: 'agent',
        PGCONNECT_TIMEOUT: '10',
      },
    },
  );
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, all: `${r.stdout}\n${r.stderr}` };
}

/**
 * Rules on tables (YAML list items, indented 4, for noDropPolicy): `keep-orders` denies deleting,
 * updating, emptying, altering and dropping orders ("Orders are kept."); `ledger-closed` denies
 * every statement on ledger ("The ledger is closed.").
 */
export const TABLE_RULES = `    - name: keep-orders
      match: { protocols: [postgres], sql: { statements: [delete, update, truncate, alter, drop], tables: [orders] } }
      action: deny
      message: Orders are kept.
    - name: ledger-closed
      match: { protocols: [postgres], sql: { tables: [ledger] } }
      action: deny
      message: The ledger is closed.
`;

/** Whether row `id` of orders is still there, asked on a connection straight to the server. */
export async function orderKept(db: GuardedDatabase, id: number): Promise<boolean> {
  return db.direct(
    async (c) => (await c.query('SELECT count(*)::int AS n FROM orders WHERE id = $1', [id])).rows[0].n === 1,
  );
}

/** Whether `table` exists, asked on a connection straight to the server. */
export async function tableExists(db: GuardedDatabase, table: string): Promise<boolean> {
  return db.direct(async (c) => (await c.query('SELECT to_regclass($1) AS t', [table])).rows[0].t !== null);
}

export async function startGuardedDatabase(o: {
  /** Names the namespace and database (`pg-mask` → namespace `pg-mask-…`, database `pg_mask_…`). */
  readonly name: string;
  readonly pod: string;
  readonly policy: string;
  /** Runs on the database before the sidecar starts. */
  readonly setup?: (c: pg.Client) => Promise<void>;
  /** More command-line arguments for the sidecar. */
  readonly extraArgs?: readonly string[];
}): Promise<GuardedDatabase> {
  const ns: TestNamespace = await createNamespace(o.name);
  const database = await createDatabase(o.name.replaceAll('-', '_'));
  const [port] = (await freePorts(1)) as [number];
  const secrets = mkdtempSync(join(tmpdir(), 'chaperone-db-secrets-'));
  mkdirSync(join(secrets, 'app'));
  writeFileSync(join(secrets, 'app', 'url'), database.url);
  const direct = async <T>(fn: (c: pg.Client) => Promise<T>): Promise<T> => {
    const c = new pg.Client({ connectionString: database.url });
    await c.connect();
    try {
      return await fn(c);
    } finally {
      await c.end();
    }
  };
  if (o.setup) await direct(o.setup);
  const sidecar = await startSidecar({
    namespace: ns.name,
    pod: o.pod,
    policy: o.policy,
    extraArgs: ['--databases', `app=${port}`, '--databases-dir', secrets, ...(o.extraArgs ?? [])],
  });
  return {
    sidecar,
    database,
    port,
    direct,
    async stop() {
      await sidecar.stop();
      await database.drop();
      await ns.delete();
      rmSync(secrets, { recursive: true, force: true });
    },
  };
}
