/**
 * A real PostgreSQL server from Debian's packages for tests and the demo:
 * `initdb` in a temp dir, SCRAM-SHA-256 password authentication for every
 * connection (TCP and socket), a free loopback port, an application role and
 * database. Each test creates its own database with `createDatabase`.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DependencyError } from '@chaperone/shared';
import { freePort } from './ports.ts';
import { type ManagedProcess, startProcess, waitFor } from './process.ts';
import { ensurePackages } from './system-packages.ts';

export interface PostgresOptions {
  /** Keep fsync on (benchmarks); off by default for fast tests. */
  durable?: boolean;
  /** Extra `-c name=value` server settings. */
  settings?: Readonly<Record<string, string>>;
  log?: (line: string) => void;
}

export interface PostgresServer {
  readonly host: string;
  readonly port: number;
  /** The application role and its database. */
  readonly user: string;
  readonly password: string;
  readonly database: string;
  /** Superuser, for administration in tests. */
  readonly superuser: { readonly user: string; readonly password: string };
  /** `postgresql://user:password@127.0.0.1:port/database` */
  readonly url: string;
  readonly version: string;
  readonly dataDir: string;
  /** The postmaster's pid. */
  readonly pid: number;
  /** Creates a fresh database owned by the application role; returns its URL. */
  createDatabase(name: string): Promise<string>;
  dropDatabase(name: string): Promise<void>;
  /** Runs SQL as the superuser with psql and returns its stdout. */
  psql(sql: string, database?: string): string;
  stop(): Promise<void>;
}

function findBinDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : join(root, versions[0], 'bin');
}

function pgBinDir(log: (line: string) => void): string {
  let dir = findBinDir();
  if (!dir) {
    ensurePackages(['postgresql', 'postgresql-client'], 'PostgreSQL for the end-to-end tests', log);
    dir = findBinDir();
  }
  if (!dir) throw new DependencyError('PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin');
  return dir;
}

const IDENT = /^[a-z_][a-z0-9_]{0,62}$/;

export async function startPostgres(opts: PostgresOptions = {}): Promise<PostgresServer> {
  const log = opts.log ?? (() => {});
  const bin = pgBinDir(log);
  const asRoot = process.getuid?.() === 0;
  const runAs = asRoot ? 'postgres' : undefined;
  const dir = mkdtempSync(join(tmpdir(), 'chaperone-pg-'));
  const dataDir = join(dir, 'data');
  const socketDir = join(dir, 'run');
  mkdirSync(socketDir);
  const superPassword = randomBytes(18).toString('base64url');
  const password = randomBytes(18).toString('base64url');
  const pwfile = join(dir, 'pwfile');
  writeFileSync(pwfile, `${superPassword}\n`, { mode: 0o600 });
  if (runAs) {
    const uid = Number(execFileSync('id', ['-u', runAs], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', runAs], { encoding: 'utf8' }).trim());
    chmodSync(dir, 0o700);
    for (const p of [dir, socketDir, pwfile]) chownSync(p, uid, gid);
  }

  const initArgs = [
    '-D',
    dataDir,
    '-U',
    'postgres',
    '--pwfile',
    pwfile,
    '--auth-local=scram-sha-256',
    '--auth-host=scram-sha-256',
    '--encoding=UTF8',
    '--no-locale',
    '--no-sync',
  ];
  const privPrefix = runAs ? ['--reuid', runAs, '--regid', runAs, '--init-groups', '--'] : ['--'];
  const init = spawnSync('setpriv', [...privPrefix, join(bin, 'initdb'), ...initArgs], { encoding: 'utf8' });
  rmSync(pwfile, { force: true });
  if (init.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new DependencyError(
      `initdb failed:\n${`${init.stdout}\n${init.stderr}`.trim().split('\n').slice(-10).join('\n')}`,
    );
  }

  const port = await freePort();
  const settings: Record<string, string> = {
    listen_addresses: '127.0.0.1',
    port: String(port),
    unix_socket_directories: socketDir,
    password_encryption: 'scram-sha-256',
    max_connections: '200',
    shared_buffers: '128MB',
    ...(opts.durable ? {} : { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off' }),
    ...(opts.settings ?? {}),
  };
  const serverArgs = ['-D', dataDir, ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])];
  const proc: ManagedProcess = startProcess({
    name: 'postgres',
    command: join(bin, 'postgres'),
    args: serverArgs,
    logFile: join(dir, 'postgres.log'),
    ...(runAs ? { user: runAs } : {}),
  });

  const superEnv = { ...process.env, PGPASSWORD: superPassword, PGCONNECT_TIMEOUT: '5' };
  const psqlBin = existsSync(join(bin, 'psql')) ? join(bin, 'psql') : 'psql';
  const psql = (sql: string, database = 'postgres'): string => {
    const r = spawnSync(
      psqlBin,
      [
        '-X',
        '-q',
        '-A',
        '-t',
        '-v',
        'ON_ERROR_STOP=1',
        '-h',
        '127.0.0.1',
        '-p',
        String(port),
        '-U',
        'postgres',
        '-d',
        database,
      ],
      { input: sql, env: superEnv, encoding: 'utf8' },
    );
    if (r.status !== 0) throw new DependencyError(`psql failed: ${r.stderr.trim()}`);
    return r.stdout.trim();
  };

  const stop = async () => {
    await proc.stop(15_000);
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    await waitFor(
      async () =>
        spawnSync(join(bin, 'pg_isready'), ['-q', '-h', '127.0.0.1', '-p', String(port)]).status === 0,
      { what: `PostgreSQL to accept connections on 127.0.0.1:${port}`, timeoutMs: 30_000, process: proc },
    );
    const user = 'chaperone';
    const database = 'chaperone';
    psql(
      `CREATE ROLE ${user} LOGIN CREATEDB PASSWORD '${password}'; CREATE DATABASE ${database} OWNER ${user};`,
    );
    const version = psql('SHOW server_version');
    const urlFor = (db: string) =>
      `postgresql://${user}:${encodeURIComponent(password)}@127.0.0.1:${port}/${db}`;
    return {
      host: '127.0.0.1',
      port,
      user,
      password,
      database,
      superuser: { user: 'postgres', password: superPassword },
      url: urlFor(database),
      version,
      dataDir,
      pid: proc.pid,
      async createDatabase(name) {
        if (!IDENT.test(name)) throw new DependencyError(`database name "${name}" must match ${IDENT}`);
        psql(`CREATE DATABASE ${name} OWNER ${user}`);
        return urlFor(name);
      },
      async dropDatabase(name) {
        if (!IDENT.test(name)) throw new DependencyError(`database name "${name}" must match ${IDENT}`);
        psql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      },
      psql,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
