/**
 * The webhooks' HTTPS server, kept thin: read the body (bounded), decode the
 * AdmissionReview, call the handler of its path (`/mutate`, `/validate`),
 * answer. Also `/healthz` and `/readyz` for the kubelet's probes.
 *
 * - Malformed, oversized or wrongly typed requests get HTTP 400 with a
 *   message saying what was wrong; nothing a client sends crashes the process.
 * - The serving certificate is swapped with `setSecureContext`: connections
 *   already open keep theirs, new handshakes get the new one; nothing drops.
 * - Idle keep-alive connections are kept longer than the API server's client
 *   keeps them (Go's IdleConnTimeout is 90 s), so the server never closes a
 *   connection the API server is about to reuse (which fails the webhook call).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Logger } from '@chaperone/shared';
import type { InjectorMetrics } from '../injector-metrics.ts';
import type { AdmissionResponse } from './admission-review.ts';
import { type AdmissionRequest, formatAdmissionReview, parseAdmissionReview } from './admission-review.ts';

export interface ServingCertificate {
  readonly cert: string;
  readonly key: string;
}

export interface AdmissionServerOptions {
  readonly host: string;
  readonly port: number;
  readonly certificate: ServingCertificate;
  /** Path AdmissionReviews are posted to, e.g. `/mutate`. */
  readonly path: string;
  readonly maxRequestBytes: number;
  readonly handle: (req: AdmissionRequest) => AdmissionResponse;
  /** More paths and their handlers, e.g. the validating webhook's `/validate`. */
  readonly routes?: Readonly<Record<string, (req: AdmissionRequest) => AdmissionResponse>>;
  /** For `/readyz`; default always ready. */
  readonly ready?: () => boolean;
  readonly logger?: Logger;
  readonly metrics?: InjectorMetrics;
}

export interface AdmissionServer {
  readonly server: Server;
  readonly port: number;
  readonly url: string;
  /** Hot-reloads the serving certificate for new connections. */
  setCertificate(cert: ServingCertificate): void;
  /** Stops accepting, lets in-flight requests finish (up to `graceMs`), then closes everything. */
  close(graceMs?: number): Promise<void>;
}

const KEEP_ALIVE_MS = 120_000;

class BadRequest extends Error {
  readonly status: number;
  readonly reason: string;
  /** Close the connection after answering (the body was not read). */
  close = false;
  constructor(status: number, reason: string, message: string) {
    super(message);
    this.status = status;
    this.reason = reason;
  }
}

/** Bodies beyond this are not even drained: the answer comes at once and the connection closes. */
const DRAIN_FACTOR = 16;

/**
 * Reads the body up to `limit`. A larger body is still read (and discarded)
 * to its end, up to DRAIN_FACTOR × limit, so the client — which usually writes
 * the whole body before reading — gets the 400 instead of a broken pipe.
 */
function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? Number.NaN);
    const tooLarge = (size: string) =>
      new BadRequest(
        400,
        'too_large',
        `the AdmissionReview is ${size}; the limit is ${limit} bytes (--max-request-bytes)`,
      );
    if (declared > limit * DRAIN_FACTOR) {
      reject(Object.assign(tooLarge(`${declared} bytes`), { close: true }));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on('data', (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > limit * DRAIN_FACTOR) {
        done = true;
        reject(Object.assign(tooLarge(`more than ${limit * DRAIN_FACTOR} bytes`), { close: true }));
        return;
      }
      if (size <= limit) chunks.push(chunk);
      else chunks.length = 0;
    });
    req.on('end', () => {
      if (done) return;
      done = true;
      if (size > limit) reject(tooLarge(`${size} bytes`));
      else resolve(Buffer.concat(chunks, size).toString('utf8'));
    });
    req.on('error', (err) => {
      if (!done) {
        done = true;
        reject(err);
      }
    });
  });
}

function sendText(res: ServerResponse, status: number, text: string, close = false): void {
  if (res.headersSent) return;
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    ...(close ? { connection: 'close' } : {}),
  });
  res.end(text);
}

export async function startAdmissionServer(opts: AdmissionServerOptions): Promise<AdmissionServer> {
  const log = opts.logger;
  const server = createServer({
    cert: opts.certificate.cert,
    key: opts.certificate.key,
    minVersion: 'TLSv1.2',
    keepAliveTimeout: KEEP_ALIVE_MS,
    requestTimeout: 30_000,
    headersTimeout: 20_000,
  });
  server.keepAliveTimeout = KEEP_ALIVE_MS;

  const routes = opts.routes ?? {};
  const observeDuration = (result: string, seconds: number) => {
    opts.metrics?.admissionDuration.observe({ result }, seconds);
  };

  const onRequest = async (req: IncomingMessage, res: ServerResponse) => {
    const started = performance.now();
    const path = (req.url ?? '/').split('?', 1)[0];
    if (req.method === 'GET' && path === '/healthz') return sendText(res, 200, 'ok\n');
    if (req.method === 'GET' && path === '/readyz') {
      const ready = opts.ready ? opts.ready() : true;
      return sendText(res, ready ? 200 : 503, ready ? 'ready\n' : 'not ready\n');
    }
    const handle =
      path === opts.path ? opts.handle : path && Object.hasOwn(routes, path) ? routes[path] : undefined;
    if (!handle) {
      opts.metrics?.badRequests.inc({ reason: 'not_found' });
      return sendText(
        res,
        404,
        `not found: AdmissionReviews go to POST ${[opts.path, ...Object.keys(routes)].join(' or ')}\n`,
      );
    }
    if (req.method !== 'POST') {
      opts.metrics?.badRequests.inc({ reason: 'method' });
      res.setHeader('allow', 'POST');
      return sendText(res, 405, `method ${req.method} not allowed: POST an AdmissionReview\n`);
    }
    try {
      const type = req.headers['content-type'] ?? '';
      if (!/^application\/json\b/i.test(type)) {
        throw new BadRequest(400, 'content_type', `content-type must be application/json, got "${type}"`);
      }
      const body = await readBody(req, opts.maxRequestBytes);
      let review: AdmissionRequest;
      try {
        review = parseAdmissionReview(body);
      } catch (err) {
        throw new BadRequest(400, 'malformed', `malformed AdmissionReview: ${(err as Error).message}`);
      }
      const response = handle(review);
      const out = formatAdmissionReview(response);
      const bytes = Buffer.from(out);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': bytes.length });
      res.end(bytes);
      const result = response.patch ? 'patched' : response.allowed ? 'allowed' : 'denied';
      observeDuration(result, (performance.now() - started) / 1000);
    } catch (err) {
      if (err instanceof BadRequest) {
        opts.metrics?.badRequests.inc({ reason: err.reason });
        log?.warn({ reason: err.reason, remote: req.socket.remoteAddress }, err.message);
        sendText(res, err.status, `${err.message}\n`, err.close);
        return;
      }
      opts.metrics?.badRequests.inc({ reason: 'internal' });
      log?.error({ err }, 'admission request failed');
      sendText(res, 500, `internal error: ${(err as Error).message}\n`);
    }
  };
  server.on('request', (req, res) => {
    onRequest(req, res).catch((err: unknown) => {
      log?.error({ err }, 'admission request failed');
      if (!res.headersSent) sendText(res, 500, 'internal error\n');
      else res.destroy();
    });
  });
  server.on('tlsClientError', (err) => log?.debug({ err: err.message }, 'TLS handshake failed'));
  server.on('clientError', (err, socket) => {
    log?.debug({ err: err.message }, 'bad HTTP request');
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
    else socket.destroy();
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    server,
    port: addr.port,
    url: `https://${host}:${addr.port}${opts.path}`,
    setCertificate(c) {
      server.setSecureContext({ cert: c.cert, key: c.key, minVersion: 'TLSv1.2' });
    },
    close(graceMs = 10_000) {
      return new Promise<void>((resolve) => {
        const timer = setTimeout(() => server.closeAllConnections(), graceMs);
        timer.unref();
        server.close(() => {
          clearTimeout(timer);
          resolve();
        });
        server.closeIdleConnections();
      });
    },
  };
}
