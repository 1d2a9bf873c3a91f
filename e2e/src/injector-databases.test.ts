// Declared databases, end to end: the environment the injector gives an agent container,
// read from the pod as the real API server stores it, used by real clients (psql, node `pg`)
// against a sidecar configured the way the injection configures it (its
// CHAPERONE_DATABASE_TLS; the listener on a free local port instead of 5432, since nothing
// here runs the pod) in front of the real PostgreSQL. The clients need nothing else — no
// password — and reach the Secret's database as the Secret's user.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Pod } from '@chaperone/injector';
import {
  createDatabase,
  createNamespace,
  kubeInfo,
  postgresInfo,
  type TestDatabase,
  type TestNamespace,
} from './environment.ts';
import {
  deleteNamespace,
  type Injector,
  optInNamespace,
  podManifest,
  startInjector,
  waitUntilInjecting,
} from './injector-harness.ts';
import { kubectl, kubectlJson } from './kubectl.ts';
import { freePort } from './ports.ts';
import { type SidecarUnderTest, startSidecar } from './sidecar-harness.ts';

const E2E_DIR = fileURLToPath(new URL('..', import.meta.url));
const POLICY = `apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: e2e }
spec:
  defaultAction: allow
`;

/** node `pg` configured from the environment alone, as an agent's program would be. */
const NODE_PG = `
import pg from 'pg';
const c = new pg.Client(process.env.ORDERS_URL && process.argv.includes('url') ? { connectionString: process.env.ORDERS_URL } : {});
await c.connect();
const r = await c.query('SELECT current_user AS u, current_database() AS d');
console.log(r.rows[0].u + '|' + r.rows[0].d);
await c.end();
`;

describe('injector: a declared database, reached with the environment the agent is given', () => {
  const kube = kubeInfo();
  let inj: Injector;
  let ns: string;
  let sidecarNs: TestNamespace;
  let db: TestDatabase;
  let dir: string;
  let sc: SidecarUnderTest;
  /** The agent container's environment, its listener port mapped to the local one. */
  let agentEnv: Record<string, string>;

  before(async () => {
    inj = await startInjector(kube);
    ns = optInNamespace(kube, inj, 'db');
    await waitUntilInjecting(kube, ns);
    const r = kubectl(kube.kubeconfigPath, ['create', '-n', ns, '-f', '-'], {
      input: podManifest('agent', {
        annotations: { 'chaperone.dev/databases': 'orders=orders-db-credentials;env=ORDERS_URL' },
      }),
    });
    assert.equal(r.code, 0, r.stderr);
    const pod = kubectlJson(kube.kubeconfigPath, ['get', 'pod', 'agent', '-n', ns, '-o', 'json']) as Pod;
    const values = (name: string) =>
      Object.fromEntries(
        (pod.spec.containers.find((c) => c.name === name)?.env ?? []).map((e) => [e.name, e.value ?? '']),
      );
    const sidecarEnv = values('chaperone-sidecar');
    assert.equal(sidecarEnv.CHAPERONE_DATABASES, 'orders=5432');

    // The Secret the injector mounts into the sidecar: the application role's URL, password included.
    db = await createDatabase('inj_db');
    dir = mkdtempSync(join(tmpdir(), 'injector-db-'));
    mkdirSync(join(dir, 'orders'));
    writeFileSync(join(dir, 'orders', 'url'), db.url);
    const port = await freePort();
    sidecarNs = await createNamespace('inj-db-sidecar');
    sc = await startSidecar({
      namespace: sidecarNs.name,
      policy: POLICY,
      extraArgs: ['--databases', `orders=${port}`, '--databases-dir', dir],
      extraEnv: { CHAPERONE_DATABASE_TLS: sidecarEnv.CHAPERONE_DATABASE_TLS ?? '' },
    });
    const env = values('agent');
    agentEnv = {
      ...env,
      PGPORT: env.PGPORT === '5432' ? String(port) : 'unexpected',
      ORDERS_URL: (env.ORDERS_URL ?? '').replace('@127.0.0.1:5432/', `@127.0.0.1:${port}/`),
    };
  });
  after(async () => {
    await sc?.stop();
    await db?.drop();
    await sidecarNs?.delete();
    deleteNamespace(kube, ns);
    await inj?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const run = (command: string, args: string[], env: Record<string, string>) => {
    const r = spawnSync(command, args, {
      cwd: E2E_DIR,
      encoding: 'utf8',
      timeout: 30_000,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, ...env },
    });
    return { code: r.status, stdout: r.stdout.trim(), stderr: r.stderr };
  };
  const expected = () => `${postgresInfo().user}|${db.name}`;

  it('gives no password, and URL and libpq variables that point at the sidecar', () => {
    assert.equal(agentEnv.PGPASSWORD, undefined);
    const password = decodeURIComponent(new URL(db.url).password);
    for (const [k, v] of Object.entries(agentEnv)) assert.ok(!v.includes(password), k);
    assert.equal(agentEnv.PGHOST, '127.0.0.1');
    assert.match(
      agentEnv.ORDERS_URL ?? '',
      /^postgresql:\/\/orders@127\.0\.0\.1:\d+\/orders\?sslmode=disable$/,
    );
  });

  // Fails when PGHOST/PGPORT/PGSSLMODE (or the URL) do not lead to the sidecar's listener as it answers.
  it('psql connects with the variables alone, and with the URL', () => {
    const vars = run(
      'psql',
      ['-X', '-w', '-A', '-t', '-c', 'SELECT current_user, current_database()'],
      agentEnv,
    );
    assert.equal(vars.code, 0, vars.stderr);
    assert.equal(vars.stdout, expected());
    const url = run(
      'psql',
      ['-X', '-w', '-A', '-t', '-c', 'SELECT current_user, current_database()', agentEnv.ORDERS_URL ?? ''],
      { PATH: process.env.PATH ?? '' },
    );
    assert.equal(url.code, 0, url.stderr);
    assert.equal(url.stdout, expected());
  });

  // Fails when the injector tells agents sslmode=prefer (or require): node `pg` then insists on
  // TLS, which the sidecar's listener (CHAPERONE_DATABASE_TLS=direct) does not offer.
  it('node pg connects with the variables alone, and with the URL; with sslmode=prefer it would not', () => {
    for (const how of ['env', 'url']) {
      const r = run(process.execPath, ['--input-type=module', '-e', NODE_PG, how], agentEnv);
      assert.equal(r.code, 0, `${how}: ${r.stderr}`);
      assert.equal(r.stdout, expected(), how);
    }
    const prefer = run(process.execPath, ['--input-type=module', '-e', NODE_PG, 'env'], {
      ...agentEnv,
      PGSSLMODE: 'prefer',
    });
    assert.notEqual(prefer.code, 0);
    assert.match(prefer.stderr, /does not support SSL/);
  });
});
