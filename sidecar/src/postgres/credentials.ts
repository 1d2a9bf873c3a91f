/**
 * A declared database's credentials: the Secret the injector mounts into the
 * sidecar only, one file per key. Keys: `host`, `port`, `dbname` (or
 * `database`), `user` (or `username`), `password`, `sslmode`, and optionally
 * `sslrootcert`, `sslcert`, `sslkey` (PEM contents); or a `url`
 * (`postgresql://user:password@host:port/dbname?sslmode=…`) which the other
 * keys override. Checked on an interval and re-read when the Secret changes
 * (the kubelet swaps its files atomically); a broken edit keeps the last good
 * credentials and is logged. Nothing here is ever logged by value.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '@chaperone/shared';

export const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
export type SslMode = (typeof SSL_MODES)[number];

export interface Credentials {
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly user: string;
  readonly password: string;
  readonly sslmode: SslMode;
  readonly sslrootcert?: string;
  readonly sslcert?: string;
  readonly sslkey?: string;
}

export class CredentialsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CredentialsError';
  }
}

const KEYS = [
  'url',
  'host',
  'port',
  'dbname',
  'database',
  'user',
  'username',
  'password',
  'sslmode',
  'sslrootcert',
  'sslcert',
  'sslkey',
];

/** The credentials in a Secret's files (pure apart from reading `files`). */
export function parseCredentials(files: ReadonlyMap<string, string>, what: string): Credentials {
  const get = (k: string) => {
    const v = files.get(k);
    // Secrets written by hand often end in a newline; a password may end in spaces on purpose.
    return v === undefined ? undefined : k === 'password' ? v.replace(/\r?\n$/, '') : v.trim();
  };
  let host: string | undefined;
  let port: string | undefined;
  let database: string | undefined;
  let user: string | undefined;
  let password: string | undefined;
  let sslmode: string | undefined;
  const url = get('url');
  if (url !== undefined && url !== '') {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new CredentialsError(
        `${what}: "url" is not a URL (expected postgresql://user:password@host:port/dbname)`,
      );
    }
    if (u.protocol !== 'postgresql:' && u.protocol !== 'postgres:') {
      throw new CredentialsError(
        `${what}: "url" must start with postgresql:// (it starts with ${u.protocol}//)`,
      );
    }
    host = decodeURIComponent(u.hostname.replace(/^\[|\]$/g, '')) || undefined;
    port = u.port || undefined;
    database = decodeURIComponent(u.pathname.replace(/^\//, '')) || undefined;
    user = u.username ? decodeURIComponent(u.username) : undefined;
    password = u.password ? decodeURIComponent(u.password) : undefined;
    sslmode = u.searchParams.get('sslmode') ?? undefined;
  }
  host = get('host') ?? host;
  port = get('port') ?? port;
  database = get('dbname') ?? get('database') ?? database;
  user = get('user') ?? get('username') ?? user;
  password = files.has('password') ? get('password') : password;
  sslmode = get('sslmode') ?? sslmode ?? 'prefer';
  if (!host) throw new CredentialsError(`${what}: no "host" (or "url")`);
  if (!user) throw new CredentialsError(`${what}: no "user" (or "url" with one)`);
  const portNumber = port === undefined ? 5432 : Number(port);
  if (!Number.isInteger(portNumber) || portNumber < 1 || portNumber > 65535) {
    throw new CredentialsError(`${what}: "port" must be a number from 1 to 65535`);
  }
  if (!(SSL_MODES as readonly string[]).includes(sslmode)) {
    throw new CredentialsError(`${what}: "sslmode" must be one of ${SSL_MODES.join(', ')}`);
  }
  const rootcert = get('sslrootcert');
  if ((sslmode === 'verify-ca' || sslmode === 'verify-full') && !rootcert) {
    throw new CredentialsError(`${what}: sslmode ${sslmode} needs "sslrootcert" (the server's CA, PEM)`);
  }
  const cert = get('sslcert');
  const key = get('sslkey');
  if ((cert === undefined) !== (key === undefined)) {
    throw new CredentialsError(`${what}: "sslcert" and "sslkey" go together`);
  }
  return {
    host,
    port: portNumber,
    database: database || user,
    user,
    password: password ?? '',
    sslmode: sslmode as SslMode,
    ...(rootcert ? { sslrootcert: rootcert } : {}),
    ...(cert && key ? { sslcert: cert, sslkey: key } : {}),
  };
}

function readSecretDir(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const name of readdirSync(dir)) {
    // The kubelet's own entries (..data, ..2024_…) are not keys.
    if (name.startsWith('..') || !KEYS.includes(name)) continue;
    out.set(name, readFileSync(join(dir, name), 'utf8'));
  }
  return out;
}

/** One database's credentials, kept current. */
export class CredentialStore {
  readonly #dir: string;
  readonly #name: string;
  readonly #log: Logger;
  #current: Credentials | undefined;
  #problem: string | undefined;
  #hash = '';
  #timer: NodeJS.Timeout | undefined;

  constructor(name: string, dir: string, log: Logger) {
    this.#name = name;
    this.#dir = dir;
    this.#log = log;
    this.reload();
  }

  /** The credentials in force, or a CredentialsError saying why there are none. */
  get current(): Credentials {
    if (this.#current) return this.#current;
    throw new CredentialsError(this.#problem ?? `database ${this.#name}: no credentials`);
  }

  /** Reads the Secret's files; returns whether the credentials changed. */
  reload(): boolean {
    let files: Map<string, string>;
    try {
      files = readSecretDir(this.#dir);
    } catch (err) {
      this.#fail(
        `database ${this.#name}: cannot read its Secret at ${this.#dir} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      );
      return false;
    }
    const h = createHash('sha256');
    for (const [k, v] of [...files].sort()) h.update(k).update('\0').update(v).update('\0');
    const hash = h.digest('hex');
    if (hash === this.#hash) return false;
    this.#hash = hash;
    try {
      const next = parseCredentials(files, `database ${this.#name} (Secret at ${this.#dir})`);
      const changed = this.#current !== undefined;
      this.#current = next;
      this.#problem = undefined;
      if (changed)
        this.#log.info({ database: this.#name }, 'database credentials changed; new connections use them');
      return true;
    } catch (err) {
      this.#fail((err as Error).message);
      return false;
    }
  }

  #fail(problem: string): void {
    if (problem === this.#problem) return;
    this.#problem = problem;
    if (this.#current)
      this.#log.error(
        { database: this.#name, problem },
        'database credentials are invalid; the last good ones stay in use',
      );
    else
      this.#log.error(
        { database: this.#name, problem },
        'database credentials are invalid; connections to it are refused',
      );
  }

  watch(intervalMs: number): void {
    this.stop();
    this.#timer = setInterval(() => this.reload(), intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
