/**
 * The last handler: sends an allowed request to the real API server with the
 * sidecar's credentials and streams the answer back — masking it first when
 * the decision says so (whole bodies for get/list, event by event for watch
 * streams, never buffering a stream; an error answer's words are withheld, as
 * it may quote the masked object). Every failure becomes a Kubernetes
 * Status; a response that cannot be masked is never passed through.
 */
import { DEFAULT_MASK_FIELDS, type Logger } from '@chaperone/shared';
import type { SidecarMetrics } from '../metrics.ts';
import type { Handler, KubeRequestContext } from './context.ts';
import { jsonOnlyAccept, passResponseHeaders, upstreamHead } from './headers.ts';
import { BodyTooLargeError } from './http1/agent-connection.ts';
import type { ResponseHead } from './http1/response-decoder.ts';
import type { Exchange, ResponseSink, UpstreamError } from './http1/upstream-pool.ts';
import { LineSplitter } from './line-splitter.ts';
import { type MaskOptions, maskBody } from './mask.ts';
import { type MaskedBytes, maskJsonBytes } from './mask-bytes.ts';
import { withheldStatus } from './mask-status.ts';
import {
  detectorsOnLogs,
  filteredLog,
  isPodLog,
  type LogFilterChoice,
  type TextStreamFilter,
} from './pod-log-filter.ts';
import { sendStatus, statusBody } from './status.ts';
import type { Upstream } from './upstream.ts';

const NEWLINE = Buffer.from('\n');

export interface ForwardOptions {
  readonly upstream: Upstream;
  readonly maxRequestBytes: number;
  readonly maxResponseBytes: number;
  readonly maxWatchEventBytes: number;
  readonly timeoutMs: number;
  readonly metrics: SidecarMetrics;
  readonly log: Logger;
  /** Which filter a pod log streams through, if any (pod-log-filter.ts; default: the value detectors, always). */
  readonly logFilter?: LogFilterChoice;
}

function fail(ctx: KubeRequestContext, code: number, reason: string, message: string): void {
  ctx.failure = { code, reason, message };
  sendStatus(ctx.res, statusBody(code, reason, message));
}

function elapsed(from: bigint): bigint {
  return process.hrtime.bigint() - from;
}

function upstreamFailure(ctx: KubeRequestContext, err: UpstreamError, opts: ForwardOptions): void {
  if (ctx.res.destroyed) return; // the agent went away; nothing to answer
  if (err.kind === 'headers-timeout' || err.kind === 'body-timeout') {
    opts.metrics.upstreamErrors.inc({ protocol: 'kubernetes', reason: 'timeout' });
    fail(ctx, 504, 'Timeout', `chaperone: the API server did not answer within ${opts.timeoutMs} ms`);
    return;
  }
  if (err.kind === 'protocol' || err.kind === 'reset') {
    opts.metrics.upstreamErrors.inc({ protocol: 'kubernetes', reason: err.kind });
    opts.log.warn({ code: err.code, auditID: ctx.auditID, err: err.message }, 'API server connection failed');
    fail(ctx, 502, 'BadGateway', `chaperone: the connection to the API server failed (${err.message})`);
    return;
  }
  opts.metrics.upstreamErrors.inc({ protocol: 'kubernetes', reason: 'unreachable' });
  opts.log.warn({ code: err.code, auditID: ctx.auditID }, 'API server unreachable');
  fail(
    ctx,
    503,
    'ServiceUnavailable',
    `chaperone: the API server at ${opts.upstream.origin} is unreachable (${err.code}); try again shortly`,
  );
}

/**
 * A boolean query parameter as the API server's parameter codec reads it:
 * present, and its first value not "0" or "false" (any case) — `follow=1`
 * and `follow=yes` follow too.
 */
export function queryFlag(query: URLSearchParams, name: string): boolean {
  const v = query.get(name);
  if (v === null) return false;
  const lower = v.toLowerCase();
  return lower !== '0' && lower !== 'false';
}

/** What a sink may do to its exchange with the API server. */
interface ExchangeControl {
  /** Abandon it (the connection is closed, not reused). */
  abort(): void;
  /** Read on after the sink said it was full. */
  resume(): void;
}

/** Passes the response through as it comes, with back-pressure from the agent's socket. */
function passThrough(
  ctx: KubeRequestContext,
  opts: ForwardOptions,
  x: ExchangeControl,
  done: () => void,
): ResponseSink {
  const { res } = ctx;
  const resume = () => x.resume();
  return {
    onHead(head) {
      res.writeHead(head.statusCode, passResponseHeaders(head, false));
    },
    onData(data) {
      if (res.write(data)) return true;
      if (!res.destroyed) res.onDrain(resume);
      return false;
    },
    onEnd() {
      res.end();
      done();
    },
    onError(err) {
      if (res.headersSent) {
        ctx.failure = { code: 502, reason: 'BadGateway', message: `chaperone: ${err.message}` };
        res.destroy();
      } else upstreamFailure(ctx, err, opts);
      done();
    },
  };
}

/**
 * Masks one JSON document: on its bytes (last-applied copies included), or,
 * when it has a shape the byte path is not certain of, decoded, masked and
 * encoded. Undefined when the document is not JSON.
 */
function maskDocument(
  raw: Buffer,
  maskOpts: MaskOptions,
): { body: MaskedBytes | string; masked: number } | undefined {
  const fast = maskJsonBytes(raw, maskOpts);
  if (fast) return fast;
  let doc: unknown;
  try {
    doc = JSON.parse(raw.toString('utf8'));
  } catch {
    return undefined;
  }
  const masked = maskBody(doc, maskOpts);
  return { body: JSON.stringify(doc), masked };
}

/** Collects a whole JSON body (within the limit), masks it and sends it. */
function maskWhole(
  ctx: KubeRequestContext,
  opts: ForwardOptions,
  maskOpts: MaskOptions,
  x: ExchangeControl,
  done: () => void,
): ResponseSink {
  let head: ResponseHead | undefined;
  const chunks: Buffer[] = [];
  let size = 0;
  let over = false;
  return {
    onHead(h) {
      head = h;
      const type = h.headers['content-type'] ?? '';
      if (h.bodyKind !== 'none' && !type.startsWith('application/json')) {
        over = true;
        x.abort();
        fail(
          ctx,
          502,
          'BadGateway',
          `chaperone: the API server answered with ${type || 'no content type'}, which cannot be masked; the response was withheld`,
        );
        done();
      }
    },
    onData(data) {
      if (over) return true;
      size += data.length;
      if (size > opts.maxResponseBytes) {
        over = true;
        x.abort();
        fail(
          ctx,
          500,
          'InternalError',
          `chaperone: the response is larger than ${opts.maxResponseBytes} bytes, the most this sidecar masks at once; ask for less (for example with limit= and continue=)`,
        );
        done();
        return true;
      }
      // Chunks from a socket are not reused by Node: kept without copying.
      chunks.push(data);
      return true;
    },
    onEnd() {
      if (over || !head) return;
      const t3 = process.hrtime.bigint();
      if (head.statusCode < 200 || head.statusCode > 299) {
        // An error about a masked object (a Secret that a JSON patch failed on, an invalid value).
        const status = withheldStatus(head.statusCode, Buffer.concat(chunks, size));
        ctx.failure = { code: status.code, reason: status.reason, message: status.message };
        sendStatus(ctx.res, status);
        ctx.overheadNs += process.hrtime.bigint() - t3;
        done();
        return;
      }
      let out: MaskedBytes | string = '';
      if (size > 0) {
        const masked = maskDocument(
          chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size),
          maskOpts,
        );
        if (!masked) {
          fail(
            ctx,
            502,
            'BadGateway',
            'chaperone: the API server sent JSON that could not be read, so it could not be masked; the response was withheld',
          );
          done();
          return;
        }
        ctx.maskedFields += masked.masked;
        out = masked.body;
      }
      const headers = passResponseHeaders(head, true);
      headers.push(
        'content-length',
        String(typeof out === 'string' ? Buffer.byteLength(out) : out.byteLength),
      );
      ctx.res.writeHead(head.statusCode, headers);
      // A masked document is written straight into the buffer the answer is sent from.
      ctx.res.end(out);
      // Reading the body is transfer time; parsing, masking and writing are ours.
      ctx.overheadNs += process.hrtime.bigint() - t3;
      done();
    },
    onError(err) {
      if (!over) upstreamFailure(ctx, err, opts);
      done();
    },
  };
}

/** Masks a watch stream event by event; ends it rather than pass anything unmasked. */
function maskStream(
  ctx: KubeRequestContext,
  opts: ForwardOptions,
  maskOpts: MaskOptions,
  x: ExchangeControl,
  done: () => void,
): ResponseSink {
  const { res } = ctx;
  const splitter = new LineSplitter(opts.maxWatchEventBytes);
  let broken = false;
  const cut = (message: string) => {
    broken = true;
    ctx.failure = { code: 500, reason: 'InternalError', message };
    x.abort();
    res.destroy();
    done();
  };
  let whole: ResponseSink | undefined;
  return {
    onHead(h) {
      const type = h.headers['content-type'] ?? '';
      if (h.statusCode !== 200 || !type.startsWith('application/json')) {
        // Not a stream of events (an error Status, or something unreadable): handle as a whole body.
        whole = maskWhole(ctx, opts, maskOpts, x, done);
        whole.onHead(h);
        return;
      }
      res.writeHead(h.statusCode, passResponseHeaders(h, true));
    },
    onData(data) {
      if (whole) return whole.onData(data);
      if (broken) return true;
      const start = process.hrtime.bigint();
      const out: Buffer[] = [];
      try {
        for (const line of splitter.push(data)) {
          if (line.length === 0) continue;
          const masked = maskDocument(line, maskOpts);
          if (!masked) throw new Error('an event is not JSON');
          ctx.maskedFields += masked.masked;
          out.push(
            typeof masked.body === 'string' ? Buffer.from(masked.body, 'utf8') : masked.body.toBuffer(),
            NEWLINE,
          );
        }
      } catch (err) {
        cut(`chaperone: watch stream could not be masked: ${(err as Error).message}`);
        return true;
      }
      ctx.overheadNs += process.hrtime.bigint() - start;
      if (out.length > 0) res.write(out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out));
      return true;
    },
    onEnd() {
      if (whole) {
        whole.onEnd();
        return;
      }
      if (broken) return;
      if (splitter.end() !== undefined) {
        cut('chaperone: watch stream ended inside an event');
        return;
      }
      res.end();
      done();
    },
    onError(err) {
      if (whole) {
        whole.onError(err);
        return;
      }
      if (broken) return;
      ctx.failure = { code: 502, reason: 'BadGateway', message: `chaperone: ${err.message}` };
      res.destroy();
      done();
    },
  };
}

/** 'done', or a conflict handed back to the object check (whether to send ctx.body again). */
type Outcome = 'done' | { readonly again: Promise<boolean> };

/** How the answers to one request are read: the same for each time it is sent. */
interface ExchangePlan {
  readonly decision: KubeRequestContext['decision'];
  /** The answer is masked as JSON (whole, or event by event for a stream). */
  readonly mask: boolean;
  /** The answer is a pod's log, streamed through this filter. */
  readonly logFilter: TextStreamFilter | undefined;
  /** A watch or a followed log: no body deadline, the head sent at once. */
  readonly longRunning: boolean;
  /** The Accept header sent upstream instead of the agent's (a masked answer must be JSON). */
  readonly accept: string | undefined;
}

/** The exchange under way, and how to end the wait for it: for the agent going away. */
interface InFlight {
  exchange: Exchange | undefined;
  settle: ((outcome: Outcome) => void) | undefined;
}

/** The sink that writes the answer to the agent, as the plan says. */
function answerSink(
  ctx: KubeRequestContext,
  opts: ForwardOptions,
  plan: ExchangePlan,
  control: ExchangeControl,
  done: () => void,
): ResponseSink {
  if (plan.logFilter) {
    return filteredLog(ctx, plan.logFilter, {
      resume: () => control.resume(),
      failed: (err) => upstreamFailure(ctx, err, opts),
      done,
    });
  }
  if (!plan.mask) return passThrough(ctx, opts, control, done);
  const maskOpts: MaskOptions = {
    fields: plan.decision?.maskFields ?? DEFAULT_MASK_FIELDS,
    secrets: ctx.info?.resource === 'secrets',
  };
  return plan.longRunning
    ? maskStream(ctx, opts, maskOpts, control, done)
    : maskWhole(ctx, opts, maskOpts, control, done);
}

/**
 * The sink of one exchange: the answer's sink, except that a 409 to the
 * guard's own precondition is held back (up to 64 KiB: a Status) and handed
 * to the object check, which checks the write again, or gives it back to be
 * passed on as it came. An exception inside a callback must not escape into
 * the socket's event handler: it ends the exchange instead.
 */
class ExchangeSink implements ResponseSink {
  readonly #ctx: KubeRequestContext;
  readonly #opts: ForwardOptions;
  readonly #sink: ResponseSink;
  readonly #control: ExchangeControl;
  readonly #longRunning: boolean;
  readonly #resolve: (outcome: Outcome) => void;
  readonly #reject: (err: unknown) => void;
  #held: { head: ResponseHead; chunks: Buffer[]; size: number } | undefined;

  constructor(
    ctx: KubeRequestContext,
    opts: ForwardOptions,
    sink: ResponseSink,
    control: ExchangeControl,
    longRunning: boolean,
    resolve: (outcome: Outcome) => void,
    reject: (err: unknown) => void,
  ) {
    this.#ctx = ctx;
    this.#opts = opts;
    this.#sink = sink;
    this.#control = control;
    this.#longRunning = longRunning;
    this.#resolve = resolve;
    this.#reject = reject;
  }

  onHead(h: ResponseHead): void {
    const ctx = this.#ctx;
    if (h.statusCode === 401) this.#opts.upstream.refreshToken();
    if (h.statusCode === 409 && ctx.retryConflict && !ctx.res.headersSent) {
      this.#held = { head: h, chunks: [], size: 0 };
      return;
    }
    try {
      this.#sink.onHead(h);
      // A stream's first bytes may be long in coming (a watch with no events yet): the
      // client hears the head now, as it would from the API server.
      if (this.#longRunning && ctx.res.headersSent) ctx.res.flushHeaders();
    } catch (err) {
      this.#control.abort();
      this.#reject(err);
    }
  }

  onData(d: Buffer): boolean {
    const held = this.#held;
    if (held) {
      held.size += d.length;
      if (held.size <= 64 * 1024) held.chunks.push(d);
      return true;
    }
    try {
      return this.#sink.onData(d);
    } catch (err) {
      this.#control.abort();
      this.#reject(err);
      return true;
    }
  }

  onEnd(): void {
    try {
      const held = this.#held;
      if (held) {
        const status = Buffer.concat(held.chunks);
        // A Status cut at 64 KiB does not read as the agent's own conflict: checked again.
        const again = this.#ctx.retryConflict?.(status);
        if (again) {
          this.#resolve({ again });
          return;
        }
        // The agent's own conflict: passed on as it came.
        this.#sink.onHead(held.head);
        if (status.length > 0) this.#sink.onData(status);
      }
      this.#sink.onEnd();
    } catch (err) {
      this.#reject(err);
    }
  }

  onError(e: UpstreamError): void {
    if (this.#held) {
      upstreamFailure(this.#ctx, e, this.#opts);
      this.#resolve('done');
      return;
    }
    try {
      this.#sink.onError(e);
    } catch (err) {
      this.#reject(err);
    }
  }
}

/** Sends the request once and answers the agent; resolves when that is over, or with a conflict to check again. */
function exchangeOnce(
  ctx: KubeRequestContext,
  opts: ForwardOptions,
  plan: ExchangePlan,
  body: Buffer | undefined,
  first: boolean,
  flight: InFlight,
): Promise<Outcome> {
  const head = upstreamHead(
    ctx.req,
    opts.upstream.host,
    opts.upstream.authorization,
    ctx.auditID,
    plan.accept,
    body?.length,
  );
  return new Promise<Outcome>((resolve, reject) => {
    flight.settle = resolve;
    if (ctx.res.destroyed) {
      resolve('done');
      return;
    }
    const control: ExchangeControl = {
      abort: () => flight.exchange?.abort(),
      resume: () => flight.exchange?.resume(),
    };
    const sink = new ExchangeSink(
      ctx,
      opts,
      answerSink(ctx, opts, plan, control, () => resolve('done')),
      control,
      plan.longRunning,
      resolve,
      reject,
    );
    if (first) ctx.overheadNs += elapsed(ctx.startNs);
    flight.exchange = opts.upstream.pool.request(
      {
        method: ctx.req.method,
        head,
        body,
        headersTimeoutMs: opts.timeoutMs,
        bodyTimeoutMs: plan.longRunning ? 0 : opts.timeoutMs,
      },
      sink,
    );
  });
}

export function forward(opts: ForwardOptions): Handler {
  return async (ctx) => {
    const { req, res } = ctx;
    const decision = ctx.decision;
    // A pod's log is text: a filter masks it (or none does), never the JSON masking.
    let logFilter: TextStreamFilter | undefined;
    if (isPodLog(ctx)) {
      const chosen = await (opts.logFilter ?? detectorsOnLogs)(ctx);
      if (chosen && 'refused' in chosen) {
        fail(ctx, chosen.refused.code, chosen.refused.reason, chosen.refused.message);
        return;
      }
      logFilter = chosen;
    }
    const mask = decision?.action === 'mask' && logFilter === undefined;
    let accept: string | undefined;
    if (mask) {
      accept = jsonOnlyAccept(req.headers.accept);
      if (accept === undefined) {
        fail(
          ctx,
          406,
          'NotAcceptable',
          `chaperone: rule "${decision?.rule}" masks this response, which needs JSON; the request accepts only ${req.headers.accept}`,
        );
        return;
      }
    }
    let body = ctx.body;
    if (body === undefined && req.hasBody) {
      try {
        body = await req.body(opts.maxRequestBytes);
      } catch (err) {
        if (err instanceof BodyTooLargeError) {
          fail(ctx, 413, 'RequestEntityTooLarge', `chaperone: ${err.message}`);
        } else {
          ctx.failure = { code: 400, reason: 'BadRequest', message: `chaperone: ${(err as Error).message}` };
          res.destroy();
        }
        return;
      }
    }
    const plan: ExchangePlan = {
      decision,
      mask,
      logFilter,
      longRunning: ctx.info?.verb === 'watch' || queryFlag(ctx.query, 'follow'),
      accept,
    };
    const flight: InFlight = { exchange: undefined, settle: undefined };
    res.onClose(() => {
      if (!res.writableFinished) flight.exchange?.abort();
      flight.settle?.('done');
    });
    for (let first = true; ; first = false) {
      const outcome = await exchangeOnce(ctx, opts, plan, body, first, flight);
      if (outcome === 'done' || !(await outcome.again)) break;
      body = ctx.body;
    }
    if ((mask || logFilter) && ctx.maskedFields > 0) {
      opts.metrics.maskedFields.inc(
        { protocol: 'kubernetes', rule: logFilter?.rule ?? decision?.rule ?? 'unknown' },
        ctx.maskedFields,
      );
    }
  };
}
