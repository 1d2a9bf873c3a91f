/** Header handling between the agent, the sidecar and the API server. */
import type { IncomingHttpHeaders } from 'node:http';

/** Hop-by-hop headers (RFC 9110 §7.6.1) and others that must not cross the proxy. */
const REQUEST_DROP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  'authorization',
  'accept-encoding',
  'audit-id',
]);
const RESPONSE_DROP = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'trailer',
  'upgrade',
  'proxy-connection',
]);

/**
 * The headers sent upstream: the agent's headers minus hop-by-hop ones and its
 * (placeholder) credentials, plus the sidecar's own token and the Audit-ID.
 * Responses come back uncompressed so they can be masked and measured.
 */
export function upstreamHeaders(
  incoming: IncomingHttpHeaders,
  authorization: string,
  auditID: string,
): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const connectionListed = new Set(
    String(incoming.connection ?? '')
      .toLowerCase()
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );
  for (const [k, v] of Object.entries(incoming)) {
    if (v === undefined || REQUEST_DROP.has(k) || connectionListed.has(k)) continue;
    out[k] = v;
  }
  out.authorization = authorization;
  out['audit-id'] = auditID;
  return out;
}

export function responseHeaders(
  upstream: Record<string, string | string[] | undefined>,
  drop: readonly string[] = [],
): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(upstream)) {
    if (v === undefined || RESPONSE_DROP.has(k) || drop.includes(k)) continue;
    out[k] = v;
  }
  return out;
}

/**
 * An Accept header that only admits JSON (keeping `;as=Table` and other
 * parameters), for responses the sidecar must read to mask. Undefined when
 * the client accepts nothing the sidecar can read.
 */
export function jsonOnlyAccept(accept: string | undefined): string | undefined {
  if (!accept || accept.trim() === '') return 'application/json';
  const kept = accept
    .split(',')
    .map((s) => s.trim())
    .filter((s) => {
      const type = (s.split(';')[0] ?? '').trim().toLowerCase();
      return type === 'application/json' || type === '*/*' || type === 'application/*';
    })
    .map((s) =>
      s.startsWith('*/*') || s.startsWith('application/*')
        ? `application/json${s.slice(s.indexOf(';') === -1 ? s.length : s.indexOf(';'))}`
        : s,
    );
  return kept.length === 0 ? undefined : kept.join(',');
}
