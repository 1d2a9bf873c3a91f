/**
 * The collector a local guard ships to when no `--collector-url` is given:
 * `chaperone collector` as a child process with its embedded store in the
 * user's state directory, ingest and query API on 127.0.0.1. It checks the
 * guard's token against the session's own issuer (local-issuer.ts), whose key
 * set this process serves on loopback; the query API takes a token kept in the
 * state directory (mode 0600), for `chaperone local status|audit` and
 * `chaperone audit … --collector-url`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { ChaperoneError } from '@chaperone/shared';
import { writeAtomic } from '../write-atomic.ts';
import { freePort } from './free-port.ts';
import { LOCAL_ISSUER, type LocalIssuer } from './local-issuer.ts';

export interface EmbeddedCollectorOptions {
  /** How to run `chaperone`: the Node.js binary's arguments before the subcommand (the CLI's entry file). */
  readonly cli: readonly string[];
  /** `<state dir>/collector`: the store, the query token, the log. */
  readonly dir: string;
  readonly issuer: LocalIssuer;
  /** The environment the child runs with (no CHAPERONE_* variables: it rejects unknown ones). */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Longest wait for it to be ready. */
  readonly readyTimeoutMs?: number;
}

export interface EmbeddedCollector {
  /** Ingest, for the guard's shipper. */
  readonly url: string;
  readonly queryUrl: string;
  readonly queryTokenFile: string;
  readonly logFile: string;
  stop(): Promise<void>;
}

/** The query token of the state directory's collector, made once and kept. */
export function ensureQueryToken(file: string): string {
  if (existsSync(file)) {
    const t = readFileSync(file, 'utf8').trim();
    if (t.length >= 16) return t;
  }
  const token = randomBytes(24).toString('hex');
  writeAtomic(file, token, 0o600);
  return token;
}

function serveJwks(jwks: object): Promise<{ server: Server; url: string }> {
  const body = JSON.stringify(jwks);
  const server = createServer((req, res) => {
    res.writeHead(req.url === '/jwks' ? 200 : 404, { 'content-type': 'application/jwk-set+json' });
    res.end(req.url === '/jwks' ? body : '{}');
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const a = server.address();
      resolve({ server, url: `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}/jwks` });
    });
  });
}

/** The last lines of a log, for an error that points at it. */
function logTail(file: string, lines = 15): string {
  try {
    const text = readFileSync(file, 'utf8').trimEnd();
    return text === '' ? '(empty)' : text.split('\n').slice(-lines).join('\n');
  } catch (err) {
    return `(unreadable: ${(err as Error).message})`;
  }
}

async function ready(url: string): Promise<boolean> {
  try {
    return (await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(1000) })).ok;
  } catch {
    return false;
  }
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
}

export async function startEmbeddedCollector(o: EmbeddedCollectorOptions): Promise<EmbeddedCollector> {
  const queryTokenFile = join(o.dir, 'query-token');
  ensureQueryToken(queryTokenFile);
  const jwks = await serveJwks(o.issuer.jwks);
  const [port, queryPort] = [await freePort(), await freePort()];
  const logFile = join(o.dir, 'collector.log');
  const log = openSync(logFile, 'a', 0o600);
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(o.env)) if (v !== undefined && !k.startsWith('CHAPERONE_')) env[k] = v;
  const child = spawn(
    process.execPath,
    [
      ...o.cli,
      'collector',
      ...['--listen-host', '127.0.0.1', '--listen-port', String(port)],
      ...['--query-listen-port', String(queryPort)],
      ...['--metrics-host', '127.0.0.1', '--metrics-port', '0'],
      ...['--data-dir', join(o.dir, 'data')],
      ...['--jwks-url', jwks.url, '--token-issuer', LOCAL_ISSUER],
      ...['--query-token-file', queryTokenFile],
      ...['--log-level', 'warn'],
    ],
    { env, stdio: ['ignore', log, log] },
  );
  closeSync(log);
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited(child);
      clearTimeout(timer);
    }
    await new Promise<void>((resolve) => jwks.server.close(() => resolve()));
  };
  const url = `http://127.0.0.1:${port}`;
  const queryUrl = `http://127.0.0.1:${queryPort}`;
  const deadline = Date.now() + (o.readyTimeoutMs ?? 60_000);
  while (!((await ready(url)) && (await ready(queryUrl)))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      const why = child.exitCode !== null ? `it exited with ${child.exitCode}` : 'it was not ready in time';
      await stop();
      throw new ChaperoneError(
        'unavailable',
        `the embedded collector did not start: ${why}; the end of its log (${logFile}):\n${logTail(logFile)}\ngive --collector-url to ship elsewhere`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { url, queryUrl, queryTokenFile, logFile, stop };
}
