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
 * pipeline gives `maskedLogs`, which adds the values of every Secret a mask
 * rule names (`mask: {secrets: [...]}`, read in the pod's namespace,
 * exec/secret-values.ts): what an exec session's output hides, the same
 * program's log hides too, whichever rule's session would print it. A
 * Secret that cannot be read refuses the log (it would be shown unmasked).
 * A JSON field mask means nothing in a log and is not applied to one.
 */
import type { PolicyStore } from '../policy-store.ts';
import type { KubeRequestContext } from './context.ts';
import { maskRuleSecrets, readSecretValues, type SecretValuesDeps } from './exec/secret-values.ts';
import { passResponseHeaders } from './headers.ts';
import type { ResponseSink, UpstreamError } from './http1/upstream-pool.ts';
import { loadOnce } from './lazy-guard.ts';

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

/** The log request is refused (its filter cannot be had). */
export interface LogRefusal {
  readonly refused: { readonly code: number; readonly reason: string; readonly message: string };
}

type Chosen = TextStreamFilter | LogRefusal | undefined;

/** Chooses the filter of one log request, or none, or refuses the request. */
export type LogFilterChoice = (ctx: KubeRequestContext) => Chosen | Promise<Chosen>;

/** Whether the request reads a pod's log. */
export function isPodLog(ctx: KubeRequestContext): boolean {
  const i = ctx.info;
  return (
    i?.isResourceRequest === true && i.apiGroup === '' && i.resource === 'pods' && i.subresource === 'log'
  );
}

/** The built-in rule values the detectors find in pod logs are counted under. */
export const LOG_DETECTORS_RULE = 'chaperone-mask-pod-logs';

/** The detectors' code (../exec-text), loaded at the first pod log (or exec session) of the sidecar. */
const streamMasker = loadOnce(async () => (await import('../exec-text/index.ts')).StreamMasker);

/** The value detectors (and exact `values`), as a log filter. */
export async function valueDetectorFilter(values: readonly Buffer[] = []): Promise<TextStreamFilter> {
  const StreamMasker = await streamMasker();
  const m = new StreamMasker(values.length > 0 ? { values } : {});
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

/** Every pod log gets the value detectors. */
export const detectorsOnLogs: LogFilterChoice = () => valueDetectorFilter();

/** Every pod log gets the value detectors and the values of the Secrets the policy's mask rules name. */
export function maskedLogs(
  d: SecretValuesDeps & { readonly policy: Pick<PolicyStore, 'current'> },
): LogFilterChoice {
  return async (ctx) => {
    const names = maskRuleSecrets(d.policy.current);
    const namespace = ctx.info?.namespace;
    if (names.length === 0 || namespace === undefined) return valueDetectorFilter();
    const read = await readSecretValues(d, ctx, namespace, names, 'mask rules (pod logs)');
    if (Array.isArray(read)) return valueDetectorFilter(read);
    return {
      refused: {
        code: 503,
        reason: 'ServiceUnavailable',
        message: `chaperone: a mask rule names Secret ${read.secret}, whose values are masked in pod logs, and it could not be read (${read.why}); the log is refused rather than shown unmasked. Check that the sidecar's service account may get Secrets in namespace ${namespace}`,
      },
    };
  };
}

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
