/**
 * The operator verbs' client for the query API: GET (and the approvers' POST
 * and DELETE) with a bearer token over
 * HTTP or HTTPS (with an optional private CA), errors turned into
 * ChaperoneErrors carrying the collector's own message.
 */
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { ChaperoneError, ConfigError, isErrorCode } from '@chaperone/shared';

export interface ApiClientConfig {
  readonly collectorUrl: string;
  readonly token?: string;
  readonly tokenFile?: string;
  readonly caFile?: string;
}

export interface ApiResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: string;
}

export function createApiClient(cfg: ApiClientConfig) {
  const token = cfg.token ?? (cfg.tokenFile ? readFileSync(cfg.tokenFile, 'utf8').trim() : undefined);
  if (!token) throw new ConfigError('the query API needs a token: set --token-file or CHAPERONE_TOKEN');
  const ca = cfg.caFile ? readFileSync(cfg.caFile, 'utf8') : undefined;
  const base = cfg.collectorUrl.replace(/\/+$/, '');

  function raw(
    path: string,
    params?: URLSearchParams,
    send: { method?: 'GET' | 'POST' | 'DELETE'; body?: unknown } = {},
  ): Promise<ApiResponse> {
    const payload = send.body === undefined ? undefined : JSON.stringify(send.body);
    const url = new URL(`${base}${path}${params && [...params].length ? `?${params}` : ''}`);
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = request(
        url,
        {
          method: send.method ?? 'GET',
          headers: {
            authorization: `Bearer ${token}`,
            accept: 'application/json',
            ...(payload !== undefined ? { 'content-type': 'application/json' } : {}),
          },
          timeout: 30_000,
          ...(ca && url.protocol === 'https:' ? { ca } : {}),
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              body: Buffer.concat(chunks).toString('utf8'),
            }),
          );
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error('no answer within 30 s')));
      req.on('error', (err) =>
        reject(
          new ChaperoneError('unavailable', `cannot reach the collector at ${base}: ${err.message}`, {
            cause: err,
          }),
        ),
      );
      req.end(payload);
    });
  }

  async function get<T>(path: string, params?: URLSearchParams): Promise<T> {
    const res = await raw(path, params);
    if (res.status >= 200 && res.status < 300) return JSON.parse(res.body) as T;
    throw apiError(res);
  }

  /** GET of a text answer (CSV, Markdown), as sent. */
  async function text(path: string, params?: URLSearchParams): Promise<string> {
    const res = await raw(path, params);
    if (res.status >= 200 && res.status < 300) return res.body;
    throw apiError(res);
  }

  /** POST or DELETE with an optional JSON body; the JSON answer. */
  async function send<T>(method: 'POST' | 'DELETE', path: string, body?: unknown): Promise<T> {
    const res = await raw(path, undefined, { method, ...(body !== undefined ? { body } : {}) });
    if (res.status >= 200 && res.status < 300) return JSON.parse(res.body) as T;
    throw apiError(res);
  }

  return { raw, get, text, send };
}

function apiError(res: ApiResponse): ChaperoneError {
  try {
    const e = (JSON.parse(res.body) as { error?: { code?: string; message?: string } }).error;
    if (e?.message)
      return new ChaperoneError(isErrorCode(e.code) ? e.code : 'internal', `collector: ${e.message}`);
  } catch {
    // not a JSON error body
  }
  return new ChaperoneError(
    'unavailable',
    `collector answered HTTP ${res.status}: ${res.body.slice(0, 200)}`,
  );
}

export type ApiClient = ReturnType<typeof createApiClient>;
