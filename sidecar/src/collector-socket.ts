/**
 * A WebSocket to one of the collector's endpoints, authenticated as every
 * connection of this sidecar to the collector is: the projected token
 * (audience chaperone-collector, re-read at every connect since the kubelet
 * rotates it) in `Authorization: Bearer`, the collector verified with the
 * configured CA bundle (system CAs when none). Used by the audit shipper
 * (ingest) and the review client (approvals).
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import WebSocket from 'ws';

export interface CollectorEndpoint {
  /** Collector base URL: http(s):// or ws(s)://. */
  readonly url: string;
  /** File holding the projected token (audience chaperone-collector); re-read on every connect. */
  readonly tokenFile: string;
  /** PEM CA bundle to verify the collector with (default: system CAs). */
  readonly ca?: string;
}

/** `base` with the ws(s) scheme and `path` appended to its path. */
export function collectorUrl(base: string, path: string): string {
  const u = new URL(base);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  u.pathname = `${u.pathname.replace(/\/+$/, '')}${path}`;
  return u.toString();
}

/**
 * The collector answered the upgrade with an error: `report` gets what it
 * said (the message of its JSON error, or the body's first bytes), once the
 * body has ended or after 5 s with what came.
 */
export function readRefusal(res: IncomingMessage, report: (reason: string) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let reported = false;
  const done = () => {
    if (reported) return;
    reported = true;
    clearTimeout(timer);
    let reason = Buffer.concat(chunks).toString('utf8');
    try {
      reason = (JSON.parse(reason) as { error?: { message?: string } }).error?.message ?? reason;
    } catch {
      // not the collector's JSON
    }
    report(reason.slice(0, 512));
  };
  res.on('data', (c: Buffer) => {
    if (size < 4096) chunks.push(c);
    size += c.length;
  });
  res.once('end', done);
  res.once('error', done);
  const timer = setTimeout(done, 5000);
  timer.unref();
}

/** Opens the socket; throws (before any connection) when the token file cannot be read. */
export function openCollectorSocket(
  c: CollectorEndpoint,
  path: string,
  subprotocol: string,
  o: { readonly maxPayload: number; readonly handshakeTimeoutMs: number },
): WebSocket {
  const token = readFileSync(c.tokenFile, 'utf8').trim();
  return new WebSocket(collectorUrl(c.url, path), subprotocol, {
    headers: { authorization: `Bearer ${token}` },
    handshakeTimeout: o.handshakeTimeoutMs,
    maxPayload: o.maxPayload,
    ...(c.ca ? { ca: c.ca } : {}),
  });
}
