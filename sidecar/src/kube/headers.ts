/** Header handling between the agent, the sidecar and the API server. */

import type { AgentRequest } from './http1/agent-connection.ts';
import { listItems } from './http1/framing.ts';
import type { ResponseHead } from './http1/response-decoder.ts';

/**
 * Request fields that do not cross the proxy: hop-by-hop ones (RFC 9110
 * §7.6.1), framing (the sidecar sends its own Content-Length), the agent's
 * placeholder credentials, fields the sidecar sets itself, and fields that
 * would let the agent change what the API server records about the caller or
 * who it thinks the caller is: the client address (the API server's audit
 * `sourceIPs` come from X-Forwarded-For and X-Real-Ip before the connection's
 * address — utilnet.SourceIPs), and the identity headers of request-header
 * authentication (X-Remote-User / -Group / -Extra-* by convention) and of
 * authenticating proxies. Impersonate-* headers do pass: the policy decides on
 * them. Responses come back uncompressed so they can be masked and measured.
 */
const REQUEST_DROP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'content-length',
  'upgrade',
  'host',
  'expect',
  'authorization',
  'accept-encoding',
  'audit-id',
  'forwarded',
  'x-real-ip',
  'x-client-ip',
  'true-client-ip',
  'client-ip',
  'x-cluster-client-ip',
  'x-original-forwarded-for',
]);
/** Dropped by prefix: X-Forwarded-For/-Host/-Proto/-User/…, X-Remote-User/-Group/-Extra-*. */
const REQUEST_DROP_PREFIXES = ['x-forwarded-', 'x-remote-'];

/** Whether a request field (by its lower-cased name) is kept out of the upstream request. */
export function droppedRequestField(name: string): boolean {
  if (REQUEST_DROP.has(name)) return true;
  if (name.charCodeAt(0) !== 120 /* x */) return false;
  for (const p of REQUEST_DROP_PREFIXES) if (name.startsWith(p)) return true;
  return false;
}
const RESPONSE_DROP = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'trailer',
  'upgrade',
  'proxy-connection',
]);

/** Field names listed in a Connection header (they are hop-by-hop too). */
function connectionListed(value: string | undefined): Set<string> | undefined {
  return value === undefined ? undefined : new Set(listItems(value));
}

/**
 * The agent's request fields ([name, value, …] as received) that cross to the
 * API server, as field lines: those droppedRequestField keeps out, those the
 * agent's Connection header names (hop-by-hop too, RFC 9110 §7.6.1), and those
 * `skip` names (lower-cased) stay behind.
 */
export function crossingFieldLines(raw: readonly string[], skip?: (name: string) => boolean): string {
  const listed = new Set<string>();
  for (let i = 0; i + 1 < raw.length; i += 2)
    if ((raw[i] as string).toLowerCase() === 'connection')
      for (const n of listItems(raw[i + 1] as string)) listed.add(n);
  let lines = '';
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase();
    if (droppedRequestField(name) || listed.has(name) || skip?.(name)) continue;
    lines += `${raw[i]}: ${raw[i + 1]}\r\n`;
  }
  return lines;
}

/**
 * The request head sent upstream: the agent's request line and fields minus
 * hop-by-hop ones and its credentials, plus the sidecar's token, the
 * Audit-ID, and a Content-Length for the (already read) body. `accept`
 * replaces the agent's Accept when given. Field values come from the request
 * decoder, which rejects CR, LF and NUL, so they are safe to write back.
 */
export function upstreamHead(
  req: AgentRequest,
  host: string,
  authorization: string,
  auditID: string,
  accept: string | undefined,
  bodyLength: number | undefined,
): string {
  let head = `${req.method} ${req.url} HTTP/1.1\r\nhost: ${host}\r\n`;
  head += crossingFieldLines(req.rawHeaders, accept === undefined ? undefined : (name) => name === 'accept');
  if (accept !== undefined) head += `accept: ${accept}\r\n`;
  head += `authorization: ${authorization}\r\naudit-id: ${auditID}\r\n`;
  if (bodyLength !== undefined) head += `content-length: ${bodyLength}\r\n`;
  return `${head}\r\n`;
}

/**
 * The upstream response's fields to pass to the agent, as a flat list:
 * hop-by-hop ones dropped, and with `rewritten` (a body the sidecar re-encodes)
 * its length and encoding too. Content-Length passes through only when the
 * body is passed through unchanged.
 */
export function passResponseHeaders(head: ResponseHead, rewritten: boolean): string[] {
  const listed = connectionListed(head.headers.connection);
  const out: string[] = [];
  const raw = head.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase();
    if (RESPONSE_DROP.has(name) || listed?.has(name)) continue;
    if (name === 'content-length' && (rewritten || head.bodyKind !== 'length')) continue;
    if (rewritten && name === 'content-encoding') continue;
    out.push(raw[i] as string, raw[i + 1] as string);
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
