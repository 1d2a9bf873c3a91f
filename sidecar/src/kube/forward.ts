/**
 * The last handler: sends an allowed request to the real API server with the
 * sidecar's credentials and streams the answer back — masking it first when
 * the decision says so (whole bodies for get/list, event by event for watch
 * streams, never buffering a stream). Every failure becomes a Kubernetes
 * Status; a response that cannot be masked is never passed through.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from '@chaperone/shared';
import type { Dispatcher } from 'undici';
import type { SidecarMetrics } from '../metrics.ts';
import type { Handler, KubeRequestContext } from './context.ts';
import { jsonOnlyAccept, responseHeaders, upstreamHeaders } from './headers.ts';
import { LineSplitter } from './line-splitter.ts';
import { type MaskOptions, maskBody } from './mask.ts';
import { sendStatus, statusBody } from './status.ts';
import type { Upstream } from './upstream.ts';

export interface ForwardOptions {
  readonly upstream: Upstream;
  readonly maxRequestBytes: number;
  readonly maxResponseBytes: number;
  readonly maxWatchEventBytes: number;
  readonly timeoutMs: number;
  readonly metrics: SidecarMetrics;
  readonly log: Logger;
}

class TooLarge extends Error {
  readonly limit: number;
  constructor(limit: number) {
    super(`larger than ${limit} bytes`);
    this.limit = limit;
  }
}

/** Passes at most `limit` bytes, then fails the stream. */
function limited(limit: number): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      seen += chunk.length;
      if (seen > limit) cb(new TooLarge(limit));
      else cb(null, chunk);
    },
  });
}

function fail(ctx: KubeRequestContext, code: number, reason: string, message: string): void {
  ctx.failure = { code, reason, message };
  sendStatus(ctx.res, statusBody(code, reason, message));
}

/** Drops an upstream body we will not use, without an unhandled error. */
function discard(body: Dispatcher.ResponseData['body']): void {
  body.on('error', () => {});
  body.destroy();
}

function elapsed(from: bigint): bigint {
  return process.hrtime.bigint() - from;
}

function upstreamFailure(ctx: KubeRequestContext, err: unknown, opts: ForwardOptions): void {
  const e = err as { code?: string; name?: string; message?: string };
  if (err instanceof TooLarge) {
    fail(
      ctx,
      413,
      'RequestEntityTooLarge',
      `chaperone: the request body is larger than the limit of ${err.limit} bytes`,
    );
    return;
  }
  if (ctx.res.destroyed || ctx.req.destroyed) return; // the agent went away; nothing to answer
  const code = e.code ?? e.name ?? 'unknown';
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
    opts.metrics.upstreamErrors.inc({ protocol: 'kubernetes', reason: 'timeout' });
    fail(ctx, 504, 'Timeout', `chaperone: the API server did not answer within ${opts.timeoutMs} ms`);
    return;
  }
  opts.metrics.upstreamErrors.inc({ protocol: 'kubernetes', reason: 'unreachable' });
  opts.log.warn({ code, auditID: ctx.auditID }, 'API server unreachable');
  fail(
    ctx,
    503,
    'ServiceUnavailable',
    `chaperone: the API server at ${opts.upstream.origin} is unreachable (${code}); try again shortly`,
  );
}

export function forward(opts: ForwardOptions): Handler {
  return async (ctx) => {
    const { req, res } = ctx;
    const method = req.method ?? 'GET';
    const decision = ctx.decision;
    const mask = decision?.action === 'mask';
    const headers = upstreamHeaders(req.headers, opts.upstream.authorization, ctx.auditID);
    if (mask) {
      const accept = jsonOnlyAccept(req.headers.accept);
      if (accept === undefined) {
        fail(
          ctx,
          406,
          'NotAcceptable',
          `chaperone: rule "${decision?.rule}" masks this response, which needs JSON; the request accepts only ${req.headers.accept}`,
        );
        return;
      }
      headers.accept = accept;
    }
    const declared = Number(req.headers['content-length'] ?? '0');
    if (declared > opts.maxRequestBytes) {
      fail(
        ctx,
        413,
        'RequestEntityTooLarge',
        `chaperone: the request body is larger than the limit of ${opts.maxRequestBytes} bytes`,
      );
      return;
    }
    const hasBody =
      method !== 'GET' &&
      method !== 'HEAD' &&
      (declared > 0 || req.headers['transfer-encoding'] !== undefined);
    const longRunning = ctx.info?.verb === 'watch' || ctx.query.get('follow') === 'true';
    const abort = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) abort.abort();
    });

    ctx.overheadNs += elapsed(ctx.startNs);
    let up: Dispatcher.ResponseData;
    try {
      up = await opts.upstream.pool.request({
        path: req.url ?? '/',
        method: method as Dispatcher.HttpMethod,
        headers,
        body: ctx.body ?? (hasBody ? req.pipe(limited(opts.maxRequestBytes)) : null),
        headersTimeout: opts.timeoutMs,
        bodyTimeout: longRunning ? 0 : opts.timeoutMs,
        signal: abort.signal,
      });
    } catch (err) {
      upstreamFailure(ctx, err, opts);
      return;
    }
    const t2 = process.hrtime.bigint();
    if (up.statusCode === 401) opts.upstream.refreshToken();

    if (!mask) {
      res.writeHead(up.statusCode, responseHeaders(up.headers));
      ctx.overheadNs += elapsed(t2);
      await pipeline(up.body, res).catch(() => {});
      return;
    }

    const maskOpts: MaskOptions = {
      fields: decision?.maskFields ?? ['data', 'stringData'],
      secrets: ctx.info?.resource === 'secrets',
    };
    const type = String(up.headers['content-type'] ?? '');
    if (!type.startsWith('application/json')) {
      discard(up.body);
      fail(
        ctx,
        502,
        'BadGateway',
        `chaperone: the API server answered with ${type || 'no content type'}, which cannot be masked; the response was withheld`,
      );
      return;
    }
    const rule = decision?.rule ?? 'unknown';
    if (longRunning && up.statusCode === 200) {
      await maskStream(ctx, up, maskOpts, t2, opts);
    } else {
      await maskWhole(ctx, up, maskOpts, opts);
    }
    if (ctx.maskedFields > 0)
      opts.metrics.maskedFields.inc({ protocol: 'kubernetes', rule }, ctx.maskedFields);
  };
}

async function maskWhole(
  ctx: KubeRequestContext,
  up: Dispatcher.ResponseData,
  maskOpts: MaskOptions,
  opts: ForwardOptions,
): Promise<void> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of up.body) {
      size += (chunk as Buffer).length;
      if (size > opts.maxResponseBytes) throw new TooLarge(opts.maxResponseBytes);
      chunks.push(chunk as Buffer);
    }
  } catch (err) {
    discard(up.body);
    if (err instanceof TooLarge) {
      fail(
        ctx,
        500,
        'InternalError',
        `chaperone: the response is larger than ${err.limit} bytes, the most this sidecar masks at once; ask for less (for example with limit= and continue=)`,
      );
    } else {
      upstreamFailure(ctx, err, opts);
    }
    return;
  }
  const t3 = process.hrtime.bigint();
  let body: unknown;
  try {
    body = JSON.parse(Buffer.concat(chunks, size).toString('utf8'));
  } catch {
    fail(
      ctx,
      502,
      'BadGateway',
      'chaperone: the API server sent JSON that could not be read, so it could not be masked; the response was withheld',
    );
    return;
  }
  ctx.maskedFields += maskBody(body, maskOpts);
  const text = JSON.stringify(body);
  const headers = responseHeaders(up.headers, ['content-length', 'content-encoding']);
  headers['content-length'] = String(Buffer.byteLength(text));
  ctx.res.writeHead(up.statusCode, headers);
  ctx.res.end(text);
  // Reading the body is transfer time; parsing, masking and writing are ours.
  ctx.overheadNs += process.hrtime.bigint() - t3;
}

async function maskStream(
  ctx: KubeRequestContext,
  up: Dispatcher.ResponseData,
  maskOpts: MaskOptions,
  t2: bigint,
  opts: ForwardOptions,
): Promise<void> {
  const { res } = ctx;
  res.writeHead(up.statusCode, responseHeaders(up.headers, ['content-length', 'content-encoding']));
  ctx.overheadNs += elapsed(t2);
  const splitter = new LineSplitter(opts.maxWatchEventBytes);
  const masker = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      const start = process.hrtime.bigint();
      try {
        const out: string[] = [];
        for (const line of splitter.push(chunk)) {
          if (line.length === 0) continue;
          const event: unknown = JSON.parse(line.toString('utf8'));
          ctx.maskedFields += maskBody(event, maskOpts);
          out.push(`${JSON.stringify(event)}\n`);
        }
        ctx.overheadNs += process.hrtime.bigint() - start;
        cb(null, out.length > 0 ? out.join('') : undefined);
      } catch (err) {
        // Fail closed: end the stream rather than pass anything unmasked.
        ctx.failure = {
          code: 500,
          reason: 'InternalError',
          message: `chaperone: watch stream could not be masked: ${(err as Error).message}`,
        };
        cb(err as Error);
      }
    },
    flush(cb) {
      if (splitter.end() !== undefined) {
        ctx.failure = {
          code: 500,
          reason: 'InternalError',
          message: 'chaperone: watch stream ended inside an event',
        };
      }
      cb();
    },
  });
  await pipeline(up.body, masker, res).catch(() => {});
}
