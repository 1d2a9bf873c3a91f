/**
 * JSON answers of the query listener: the status for each error code, the
 * `{"error": {code, message}}` body every route answers failures with, and
 * the `limit` parameter the listing routes share.
 */
import type { ServerResponse } from 'node:http';
import { type ChaperoneError, ValidationError } from '@chaperone/shared';

const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1000;

/** `?limit=`: 1 … 1000, default 100. */
export function limitOf(params: URLSearchParams): number {
  const raw = params.get('limit');
  if (raw === null) return DEFAULT_LIMIT;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > MAX_LIMIT)
    throw new ValidationError('limit', `must be a whole number from 1 to ${MAX_LIMIT}`);
  return n;
}

export const STATUS: Record<string, number> = {
  validation_failed: 400,
  usage: 400,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  limit_exceeded: 413,
  unavailable: 503,
};

export function sendJson(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(body);
}

export function sendError(res: ServerResponse, err: ChaperoneError): void {
  const status = STATUS[err.code] ?? 500;
  if (status === 401) res.setHeader('www-authenticate', 'Bearer realm="chaperone-collector"');
  sendJson(res, status, JSON.stringify({ error: { code: err.code, message: err.message } }));
}
