/**
 * The collector as a real child process (`node bin/chaperone.ts collector`),
 * for tests that kill it: same port across restarts, its log in a file, and
 * an environment without the test runner's CHAPERONE_* variables (the
 * collector rejects settings it does not know).
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, fetch as undiciFetch } from 'undici';
import { freePort } from './ports.ts';
import { type ManagedProcess, startProcess, waitFor } from './process.ts';

export const CHAPERONE_BIN = fileURLToPath(new URL('../../bin/chaperone.ts', import.meta.url));

export function childEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env))
    if (v !== undefined && !k.startsWith('CHAPERONE_')) env[k] = v;
  return { ...env, ...extra };
}

export interface CollectorProcess {
  /** Ingest (WebSocket /v1/ingest) and the probes: what sidecars are given. */
  readonly url: string;
  /** The query API (`--collector-url` of `chaperone audit …`). */
  readonly queryUrl: string;
  readonly queryPort: number;
  readonly process: ManagedProcess;
  /** kill -9, then wait until it is gone. */
  kill9(): Promise<void>;
  stop(): Promise<void>;
}

export async function startCollectorProcess(opts: {
  name: string;
  port: number;
  /** Port of the query listener (default: a free one; pass the previous one across restarts). */
  queryPort?: number;
  /** Port of the metrics listener (default: any free one, not told). */
  metricsPort?: number;
  args: readonly string[];
  logDir: string;
  /** Serve TLS with this certificate (readiness is then checked trusting `ca`). */
  tls?: { certFile: string; keyFile: string; ca: string };
}): Promise<CollectorProcess> {
  const queryPort = opts.queryPort ?? (await freePort());
  const proc = startProcess({
    name: opts.name,
    command: process.execPath,
    args: [
      CHAPERONE_BIN,
      'collector',
      '--listen-host',
      '127.0.0.1',
      '--listen-port',
      String(opts.port),
      '--query-listen-port',
      String(queryPort),
      '--metrics-host',
      '127.0.0.1',
      '--metrics-port',
      String(opts.metricsPort ?? 0),
      ...(opts.tls ? ['--tls-cert-file', opts.tls.certFile, '--tls-key-file', opts.tls.keyFile] : []),
      ...opts.args,
    ],
    logFile: join(opts.logDir, `${opts.name}.log`),
    env: childEnv(),
  });
  const scheme = opts.tls ? 'https' : 'http';
  const url = `${scheme}://127.0.0.1:${opts.port}`;
  const queryUrl = `${scheme}://127.0.0.1:${queryPort}`;
  const dispatcher = opts.tls ? new Agent({ connect: { ca: opts.tls.ca } }) : undefined;
  const ready = (u: string) =>
    dispatcher
      ? undiciFetch(`${u}/readyz`, { signal: AbortSignal.timeout(1000), dispatcher })
      : fetch(`${u}/readyz`, { signal: AbortSignal.timeout(1000) });
  try {
    await waitFor(async () => (await ready(url)).ok && (await ready(queryUrl)).ok, {
      what: `${opts.name} to be ready`,
      timeoutMs: 30_000,
      intervalMs: 50,
      process: proc,
    });
  } finally {
    await dispatcher?.close();
  }
  return {
    url,
    queryUrl,
    queryPort,
    process: proc,
    async kill9() {
      process.kill(proc.pid, 'SIGKILL');
      await proc.exited;
    },
    async stop() {
      await proc.stop(10_000);
    },
  };
}
