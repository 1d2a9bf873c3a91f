/**
 * A small Kubernetes API client on node:https: JSON requests with a
 * keep-alive agent, typed errors carrying the API's Status, and streaming
 * watches. Enough for the injector (webhook configuration, Secrets, Leases,
 * Namespaces, NetworkPolicies); nothing generated.
 */
import { Agent, request } from 'node:https';
import { ChaperoneError, type ErrorCode } from '@chaperone/shared';
import type { KubeConnection } from './kube-connection.ts';

export interface KubeStatus {
  kind?: 'Status';
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
}

export class KubeApiError extends ChaperoneError {
  readonly status: number;
  readonly reason: string;
  constructor(method: string, path: string, status: number, body: KubeStatus | undefined) {
    const code: ErrorCode =
      status === 404
        ? 'not_found'
        : status === 409
          ? 'conflict'
          : status === 401
            ? 'unauthenticated'
            : status === 403
              ? 'forbidden'
              : status === 400 || status === 422
                ? 'validation_failed'
                : 'unavailable';
    super(code, `${method} ${path}: HTTP ${status}${body?.message ? `: ${body.message}` : ''}`, {
      details: { status, reason: body?.reason },
    });
    this.name = 'KubeApiError';
    this.status = status;
    this.reason = body?.reason ?? '';
  }
}

export interface WatchEvent<T = unknown> {
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  readonly object: T;
}

export type Query = Readonly<Record<string, string | number | boolean | undefined>>;

export type PatchType = 'merge' | 'json' | 'strategic';

const PATCH_CONTENT_TYPES: Record<PatchType, string> = {
  merge: 'application/merge-patch+json',
  json: 'application/json-patch+json',
  strategic: 'application/strategic-merge-patch+json',
};

function withQuery(path: string, query?: Query): string {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined) params.set(k, String(v));
  const qs = params.toString();
  return qs ? `${path}${path.includes('?') ? '&' : '?'}${qs}` : path;
}

export class KubeClient {
  readonly connection: KubeConnection;
  readonly #agent: Agent;
  readonly #userAgent: string;

  constructor(connection: KubeConnection, userAgent = 'chaperone-injector') {
    this.connection = connection;
    this.#userAgent = userAgent;
    this.#agent = new Agent({
      keepAlive: true,
      maxSockets: 16,
      ...(connection.ca ? { ca: connection.ca } : {}),
      ...(connection.clientCert ? { cert: connection.clientCert, key: connection.clientKey } : {}),
      rejectUnauthorized: !connection.insecureSkipTlsVerify,
      ...(connection.tlsServerName ? { servername: connection.tlsServerName } : {}),
    });
  }

  #headers(contentType?: string, length?: number): Record<string, string> {
    const token = this.connection.token?.();
    return {
      accept: 'application/json',
      'user-agent': this.#userAgent,
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(contentType ? { 'content-type': contentType } : {}),
      ...(length !== undefined ? { 'content-length': String(length) } : {}),
    };
  }

  /** One request; resolves with the status and parsed JSON body (whatever the status). */
  request(
    method: string,
    path: string,
    opts: { body?: unknown; contentType?: string; query?: Query; timeoutMs?: number } = {},
  ): Promise<{ status: number; body: unknown }> {
    const url = new URL(withQuery(path, opts.query), this.connection.server);
    const payload = opts.body === undefined ? undefined : Buffer.from(JSON.stringify(opts.body));
    return new Promise((resolve, reject) => {
      const req = request(
        url,
        {
          method,
          agent: this.#agent,
          headers: this.#headers(
            payload ? (opts.contentType ?? 'application/json') : undefined,
            payload?.length,
          ),
          timeout: opts.timeoutMs ?? 30_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let body: unknown = text;
            if (text.length > 0) {
              try {
                body = JSON.parse(text);
              } catch {
                // not JSON (rare: proxies, /healthz); keep the text
              }
            }
            resolve({ status: res.statusCode ?? 0, body });
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () =>
        req.destroy(
          new ChaperoneError('timeout', `${method} ${url.pathname}: no answer from the API server`),
        ),
      );
      req.on('error', (err) =>
        reject(
          err instanceof ChaperoneError
            ? err
            : new ChaperoneError(
                'unavailable',
                `${method} ${url.pathname}: ${err.message} (${this.connection.server})`,
                { cause: err },
              ),
        ),
      );
      if (payload) req.write(payload);
      req.end();
    });
  }

  async #expect<T>(
    method: string,
    path: string,
    opts: Parameters<KubeClient['request']>[2],
    ok: (s: number) => boolean,
  ): Promise<T> {
    const r = await this.request(method, path, opts);
    if (!ok(r.status)) throw new KubeApiError(method, path, r.status, r.body as KubeStatus);
    return r.body as T;
  }

  /** GET; undefined on 404. */
  async get<T>(path: string, query?: Query): Promise<T | undefined> {
    const r = await this.request('GET', path, query ? { query } : {});
    if (r.status === 404) return undefined;
    if (r.status !== 200) throw new KubeApiError('GET', path, r.status, r.body as KubeStatus);
    return r.body as T;
  }

  create<T>(path: string, body: unknown, query?: Query): Promise<T> {
    return this.#expect(
      'POST',
      path,
      { body, ...(query ? { query } : {}) },
      (s) => s === 200 || s === 201 || s === 202,
    );
  }

  replace<T>(path: string, body: unknown): Promise<T> {
    return this.#expect('PUT', path, { body }, (s) => s === 200 || s === 201);
  }

  patch<T>(path: string, body: unknown, type: PatchType = 'merge'): Promise<T> {
    return this.#expect('PATCH', path, { body, contentType: PATCH_CONTENT_TYPES[type] }, (s) => s === 200);
  }

  /** DELETE; false when it was already gone. */
  async delete(path: string, body?: unknown): Promise<boolean> {
    const r = await this.request('DELETE', path, body === undefined ? {} : { body });
    if (r.status === 404) return false;
    if (r.status !== 200 && r.status !== 202)
      throw new KubeApiError('DELETE', path, r.status, r.body as KubeStatus);
    return true;
  }

  /**
   * Streams a watch: calls `onEvent` per event until the server ends the
   * stream (resolves), the signal aborts (resolves) or the connection fails
   * (rejects). Non-200 answers reject with a KubeApiError.
   */
  watch<T>(
    path: string,
    query: Query,
    onEvent: (e: WatchEvent<T>) => void,
    signal: AbortSignal,
  ): Promise<void> {
    const url = new URL(withQuery(path, { ...query, watch: 'true' }), this.connection.server);
    return new Promise((resolve, reject) => {
      if (signal.aborted) {
        resolve();
        return;
      }
      const req = request(url, { method: 'GET', agent: this.#agent, headers: this.#headers() });
      const onAbort = () => {
        req.destroy();
        resolve();
      };
      signal.addEventListener('abort', onAbort, { once: true });
      const done = (err?: unknown) => {
        signal.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve();
      };
      req.on('response', (res) => {
        if (res.statusCode !== 200) {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            let body: KubeStatus | undefined;
            try {
              body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as KubeStatus;
            } catch {
              body = undefined;
            }
            done(new KubeApiError('WATCH', url.pathname, res.statusCode ?? 0, body));
          });
          return;
        }
        let buffer = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buffer += chunk;
          let nl = buffer.indexOf('\n');
          while (nl !== -1) {
            const line = buffer.slice(0, nl).trim();
            buffer = buffer.slice(nl + 1);
            if (line) {
              try {
                onEvent(JSON.parse(line) as WatchEvent<T>);
              } catch (err) {
                req.destroy();
                done(err);
                return;
              }
            }
            nl = buffer.indexOf('\n');
          }
        });
        res.on('end', () => done());
        res.on('error', (err) => (signal.aborted ? done() : done(err)));
      });
      req.on('error', (err) =>
        signal.aborted
          ? done()
          : done(new ChaperoneError('unavailable', `WATCH ${url.pathname}: ${err.message}`, { cause: err })),
      );
      req.end();
    });
  }

  close(): void {
    this.#agent.destroy();
  }
}
