/**
 * The project's Kubernetes API client, on undici: JSON requests over
 * keep-alive HTTPS connections, typed errors carrying the API's Status, and
 * streamed watches. Credentials are asked of the connection before every
 * request, so rotated tokens and re-run exec plugins take effect at once; a
 * new client certificate gets new connections (the old ones finish what they
 * carry). Nothing generated: callers name paths and types.
 */
import { Agent, errors, request } from 'undici';
import { ChaperoneError } from '../errors.ts';
import { asStatus, KubeApiError } from './api-error.ts';
import type { KubeConnection, KubeCredentials } from './connection.ts';
import { WatchDecoder, type WatchEvent } from './watch-decoder.ts';

export type Query = Readonly<Record<string, string | number | boolean | undefined>>;

export type PatchType = 'merge' | 'json' | 'strategic';

const PATCH_CONTENT_TYPES: Record<PatchType, string> = {
  merge: 'application/merge-patch+json',
  json: 'application/json-patch+json',
  strategic: 'application/strategic-merge-patch+json',
};

export interface KubeClientOptions {
  /** Sent as User-Agent (the API server's audit log shows it). */
  readonly userAgent?: string;
  /** Most connections open at once; each watch holds one. Default 16. */
  readonly connections?: number;
  /** How long a request may wait for the server's next bytes; default 30 s. */
  readonly timeoutMs?: number;
}

export interface RequestOptions {
  /** Sent as JSON. */
  readonly body?: unknown;
  /** Default application/json (with a body). */
  readonly contentType?: string;
  readonly query?: Query;
  /** Default application/json. */
  readonly accept?: string;
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

export interface KubeResponse {
  readonly status: number;
  /** The parsed JSON body, or its text when it is not JSON (an empty body is ''). */
  readonly body: unknown;
}

export interface WatchOptions {
  /** Largest event accepted; default DEFAULT_MAX_WATCH_EVENT_BYTES. */
  readonly maxEventBytes?: number;
}

function queryString(query: Query | undefined): string {
  if (!query) return '';
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined) params.set(k, String(v));
  const qs = params.toString();
  return qs ? `?${qs}` : '';
}

function parseBody(text: string): unknown {
  if (text.length === 0) return text;
  try {
    return JSON.parse(text);
  } catch {
    return text; // not JSON (a proxy's page, /healthz): keep the text
  }
}

const isTimeout = (err: unknown) =>
  err instanceof errors.HeadersTimeoutError ||
  err instanceof errors.BodyTimeoutError ||
  err instanceof errors.ConnectTimeoutError;

export class KubeClient {
  readonly connection: KubeConnection;
  readonly #userAgent: string;
  readonly #connections: number;
  readonly #timeoutMs: number;
  #agent: Agent | undefined;
  /** The client certificate #agent presents ('' for none). */
  #agentCert = '';

  constructor(connection: KubeConnection, opts: KubeClientOptions = {}) {
    this.connection = connection;
    this.#userAgent = opts.userAgent ?? 'chaperone';
    this.#connections = opts.connections ?? 16;
    this.#timeoutMs = opts.timeoutMs ?? 30_000;
  }

  /** Connections that present `creds`' client certificate (TLS client auth is per connection). */
  #dispatcher(creds: KubeCredentials): Agent {
    const cert = creds.clientCert ? `${creds.clientCert}\n${creds.clientKey ?? ''}` : '';
    if (this.#agent && this.#agentCert === cert) return this.#agent;
    const c = this.connection;
    const previous = this.#agent;
    this.#agent = new Agent({
      connections: this.#connections,
      connect: {
        ...(c.ca ? { ca: c.ca } : {}),
        ...(creds.clientCert ? { cert: creds.clientCert, key: creds.clientKey } : {}),
        rejectUnauthorized: c.insecureSkipTlsVerify !== true,
        ...(c.tlsServerName ? { servername: c.tlsServerName } : {}),
      },
    });
    this.#agentCert = cert;
    // Requests under way (watches) finish on the old connections, then they close.
    void previous?.close().catch(() => {});
    return this.#agent;
  }

  #headers(creds: KubeCredentials, accept: string, contentType?: string): Record<string, string> {
    return {
      accept,
      'user-agent': this.#userAgent,
      ...(creds.token ? { authorization: `Bearer ${creds.token}` } : {}),
      ...(contentType ? { 'content-type': contentType } : {}),
    };
  }

  #transportError(method: string, path: string, err: unknown, timeoutMs: number): ChaperoneError {
    if (err instanceof ChaperoneError) return err;
    const where = `${method} ${path}`;
    if (isTimeout(err))
      return new ChaperoneError(
        'timeout',
        `${where}: no answer from the API server within ${timeoutMs} ms (${this.connection.server})`,
        { cause: err },
      );
    const e = err as Error & { code?: string };
    const code = e.code && !e.message.includes(e.code) ? ` [${e.code}]` : '';
    return new ChaperoneError('unavailable', `${where}: ${e.message}${code} (${this.connection.server})`, {
      cause: err,
    });
  }

  /** One request; resolves with the status and body whatever the status, rejects when no answer came. */
  async request(method: string, path: string, opts: RequestOptions = {}): Promise<KubeResponse> {
    const timeoutMs = opts.timeoutMs ?? this.#timeoutMs;
    const creds = await this.connection.credentials.current();
    const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    let status: number;
    let text: string;
    try {
      const res = await request(`${this.connection.server}${path}${queryString(opts.query)}`, {
        dispatcher: this.#dispatcher(creds),
        method: method as 'GET',
        headers: this.#headers(
          creds,
          opts.accept ?? 'application/json',
          payload === undefined ? undefined : (opts.contentType ?? 'application/json'),
        ),
        ...(payload === undefined ? {} : { body: payload }),
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      status = res.statusCode;
      text = await res.body.text();
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      throw this.#transportError(method, path, err, timeoutMs);
    }
    if (status === 401) this.connection.credentials.refused?.();
    return { status, body: parseBody(text) };
  }

  async #expect<T>(method: string, path: string, opts: RequestOptions, ok: readonly number[]): Promise<T> {
    const r = await this.request(method, path, opts);
    if (!ok.includes(r.status)) throw new KubeApiError(method, path, r.status, asStatus(r.body));
    return r.body as T;
  }

  /** GET; undefined on 404. */
  async get<T>(path: string, query?: Query): Promise<T | undefined> {
    const r = await this.request('GET', path, query ? { query } : {});
    if (r.status === 404) return undefined;
    if (r.status !== 200) throw new KubeApiError('GET', path, r.status, asStatus(r.body));
    return r.body as T;
  }

  create<T>(path: string, body: unknown, query?: Query): Promise<T> {
    return this.#expect('POST', path, { body, ...(query ? { query } : {}) }, [200, 201, 202]);
  }

  replace<T>(path: string, body: unknown): Promise<T> {
    return this.#expect('PUT', path, { body }, [200, 201]);
  }

  patch<T>(path: string, body: unknown, type: PatchType = 'merge'): Promise<T> {
    return this.#expect('PATCH', path, { body, contentType: PATCH_CONTENT_TYPES[type] }, [200]);
  }

  /** DELETE; false when it was already gone. */
  async delete(path: string, body?: unknown): Promise<boolean> {
    const r = await this.request('DELETE', path, body === undefined ? {} : { body });
    if (r.status === 404) return false;
    if (r.status !== 200 && r.status !== 202)
      throw new KubeApiError('DELETE', path, r.status, asStatus(r.body));
    return true;
  }

  /**
   * Streams a watch of the collection at `path`: calls `onEvent` for each
   * event until the server ends the stream (resolves), `signal` aborts
   * (resolves) or the connection fails (rejects). A non-200 answer rejects
   * with a KubeApiError; an error thrown by `onEvent` ends the watch and
   * rejects with that error. ERROR events (e.g. 410 Gone) are passed on.
   */
  async watch<T>(
    path: string,
    query: Query,
    onEvent: (e: WatchEvent<T>) => void,
    signal: AbortSignal,
    opts: WatchOptions = {},
  ): Promise<void> {
    if (signal.aborted) return;
    const creds = await this.connection.credentials.current();
    // The server ends a watch after timeoutSeconds; silence well beyond that is a dead connection.
    const idleMs = typeof query.timeoutSeconds === 'number' ? query.timeoutSeconds * 1000 + 30_000 : 0;
    let res: Awaited<ReturnType<typeof request>>;
    try {
      res = await request(`${this.connection.server}${path}${queryString({ ...query, watch: 'true' })}`, {
        dispatcher: this.#dispatcher(creds),
        method: 'GET',
        headers: this.#headers(creds, 'application/json'),
        headersTimeout: this.#timeoutMs,
        bodyTimeout: idleMs,
        signal,
      });
    } catch (err) {
      if (signal.aborted) return;
      throw this.#transportError('WATCH', path, err, this.#timeoutMs);
    }
    if (res.statusCode !== 200) {
      const text = await res.body.text().catch(() => '');
      if (res.statusCode === 401) this.connection.credentials.refused?.();
      throw new KubeApiError('WATCH', path, res.statusCode, asStatus(parseBody(text)));
    }
    const decoder = new WatchDecoder<T>(opts.maxEventBytes);
    let ours: unknown;
    try {
      for await (const chunk of res.body) {
        try {
          for (const e of decoder.push(chunk as Buffer)) onEvent(e);
        } catch (err) {
          ours = err;
          throw err;
        }
      }
      // A clean end inside an event loses nothing: the next watch resumes from the last event seen.
    } catch (err) {
      if (err === ours) throw err;
      if (signal.aborted) return;
      throw this.#transportError('WATCH', path, err, idleMs);
    }
  }

  /** Closes every connection at once, watches included. */
  async close(): Promise<void> {
    const agent = this.#agent;
    this.#agent = undefined;
    await agent?.destroy(null).catch(() => {});
  }
}
