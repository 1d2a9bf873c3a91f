/**
 * Pod logs (`kubectl logs`, `logs -f`: GET pods/log) are text, streamed: a
 * filter sees the bytes in order and gives what the agent may read now,
 * holding back at most what could still become a secret, and releases the
 * rest at the end — or, for a followed log that pauses, after a moment of
 * quiet (`idle`), so a line is not kept from the agent waiting for the next.
 *
 * By default every pod log passes through the value detectors of
 * ../exec-text (PEM private keys, JWTs, cloud and chat tokens become
 * `[masked:<kind>]`), whatever rule allowed it — as an exec session's output
 * does: a container's log is the same output, read another way. The
 * pipeline's `logFilter` replaces that choice (to add the values of Secrets a
 * rule names, say). A JSON field mask means nothing in a log and is not
 * applied to one.
 */
import { StreamMasker } from '../exec-text/index.ts';
import type { KubeRequestContext } from './context.ts';
import { passResponseHeaders } from './headers.ts';
import type { ResponseSink, UpstreamError } from './http1/upstream-pool.ts';

export interface TextStreamFilter {
  /** The next bytes of the log → what the agent gets now. */
  push(chunk: Buffer): Buffer;
  /** The log is over: whatever is still held back. */
  end(): Buffer;
  /** Nothing arrived for a while: what can be released without waiting for more. */
  idle?(): Buffer;
  /** Values replaced so far. */
  readonly masked: number;
  /** The rule the masked values are counted under in the metrics. */
  readonly rule: string;
}

/** Chooses the filter of one log request, or none. */
export type LogFilterChoice = (ctx: KubeRequestContext) => TextStreamFilter | undefined;

/** Whether the request reads a pod's log. */
export function isPodLog(ctx: KubeRequestContext): boolean {
  const i = ctx.info;
  return (
    i?.isResourceRequest === true && i.apiGroup === '' && i.resource === 'pods' && i.subresource === 'log'
  );
}

/** The built-in rule values the detectors find in pod logs are counted under. */
export const LOG_DETECTORS_RULE = 'chaperone-mask-pod-logs';

/** The value detectors, as a log filter. */
export function valueDetectorFilter(): TextStreamFilter {
  const m = new StreamMasker();
  return {
    push: (chunk) => m.push(chunk),
    end: () => m.end(),
    idle: () => m.idle(),
    get masked() {
      return Object.values(m.masked).reduce((a, b) => a + b, 0);
    },
    rule: LOG_DETECTORS_RULE,
  };
}

/** The default choice: every pod log gets the value detectors. */
export const detectorsOnLogs: LogFilterChoice = () => valueDetectorFilter();

/** How long a followed log may be quiet before held-back bytes that cannot be a secret are released. */
const IDLE_MS = 50;

export interface FilteredLogControl {
  resume(): void;
  /** The API server failed the exchange before its head: the forwarder answers. */
  failed(err: UpstreamError): void;
  done(): void;
}

/** A response sink that streams a log through `filter` (a non-200 answer passes unchanged). */
export function filteredLog(
  ctx: KubeRequestContext,
  filter: TextStreamFilter,
  x: FilteredLogControl,
): ResponseSink {
  const { res } = ctx;
  let filtering = false;
  let timer: NodeJS.Timeout | undefined;
  const send = (data: Buffer): boolean => {
    if (data.length === 0 || res.write(data)) return true;
    if (!res.destroyed) res.onDrain(() => x.resume());
    return false;
  };
  const finish = () => {
    if (timer) clearTimeout(timer);
    ctx.maskedFields += filter.masked;
    x.done();
  };
  return {
    onHead(head) {
      filtering = head.statusCode === 200;
      res.writeHead(head.statusCode, passResponseHeaders(head, filtering));
    },
    onData(data) {
      if (!filtering) return send(data);
      const start = process.hrtime.bigint();
      const out = filter.push(data);
      ctx.overheadNs += process.hrtime.bigint() - start;
      if (filter.idle) {
        if (timer) timer.refresh();
        else {
          timer = setTimeout(() => {
            timer = undefined;
            if (!res.destroyed && !res.writableFinished) send((filter.idle as () => Buffer)());
          }, IDLE_MS);
          timer.unref();
        }
      }
      return send(out);
    },
    onEnd() {
      res.end(filtering ? filter.end() : undefined);
      finish();
    },
    onError(err) {
      if (res.headersSent) {
        ctx.failure = { code: 502, reason: 'BadGateway', message: `chaperone: ${err.message}` };
        res.destroy();
        finish();
      } else {
        x.failed(err);
        finish();
      }
    },
  };
}
