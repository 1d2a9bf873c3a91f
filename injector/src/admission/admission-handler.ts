/**
 * AdmissionRequest → AdmissionResponse: calls `mutate`, turns the result into
 * a JSON patch, records metrics. Never throws: a pod that cannot be injected
 * safely is denied with a message (failing closed), never admitted unguarded.
 */
import { type Logger, toChaperoneError } from '@chaperone/shared';
import type { InjectionConfig } from '../inject/injection-config.ts';
import { InjectionRejected } from '../inject/injection-error.ts';
import { diff, stringifyPatch } from '../inject/json-patch.ts';
import { mutate } from '../inject/mutate.ts';
import type { AdmissionResult, InjectorMetrics } from '../injector-metrics.ts';
import type { Pod } from '../k8s-types.ts';
import type { AdmissionRequest, AdmissionResponse } from './admission-review.ts';

export interface HandlerOptions {
  /** Read on every request: the settings can be swapped at run time. */
  readonly config: () => InjectionConfig;
  readonly metrics?: InjectorMetrics;
  readonly logger?: Logger;
}

export type AdmissionHandler = (req: AdmissionRequest) => AdmissionResponse;

export interface Outcome {
  readonly response: AdmissionResponse;
  readonly result: AdmissionResult;
  readonly reason: string;
}

/** Reused for every patch: encoding runs synchronously, so one buffer serves all requests. */
const scratch = Buffer.allocUnsafe(64 * 1024);

/**
 * base64 of the UTF-8 bytes of `text`, like `Buffer.from(text).toString('base64')`
 * without allocating a buffer per request (a patch is larger than Buffer's
 * pool slices, so each would be a fresh allocation for the GC to free).
 */
function base64Utf8(text: string): string {
  const written = scratch.write(text, 0, 'utf8');
  // `write` never splits a character: with 4 bytes or more to spare, all of the text fit.
  if (written > scratch.length - 4) return Buffer.from(text, 'utf8').toString('base64');
  return scratch.toString('base64', 0, written);
}

/** The decision for one request, without side effects. */
export function decide(req: AdmissionRequest, config: InjectionConfig): Outcome {
  const uid = req.uid;
  const isPod = req.kind.group === '' && req.kind.version === 'v1' && req.kind.kind === 'Pod';
  if (!isPod || req.operation !== 'CREATE' || req.subResource) {
    return { response: { uid, allowed: true }, result: 'ignored', reason: 'not_pod_create' };
  }
  try {
    const pod = req.object as Pod;
    const { pod: injected, skipReasons } = mutate(
      pod,
      config,
      req.namespace ? { namespace: req.namespace } : {},
    );
    if (skipReasons.length > 0) {
      return { response: { uid, allowed: true }, result: 'skipped', reason: skipReasons[0] ?? 'unknown' };
    }
    const patch = diff(pod, injected);
    return {
      response: {
        uid,
        allowed: true,
        patchType: 'JSONPatch',
        patch: base64Utf8(stringifyPatch(patch)),
      },
      result: 'injected',
      reason: '',
    };
  } catch (err) {
    if (err instanceof InjectionRejected) {
      return {
        response: {
          uid,
          allowed: false,
          status: { code: 400, reason: 'BadRequest', message: `chaperone: ${err.message}` },
        },
        result: 'rejected',
        // Bounded label: the annotation name, or the first segment of a spec path.
        reason: err.field.startsWith('chaperone.dev/') ? err.field : (err.field.split(/[.[]/)[0] ?? 'spec'),
      };
    }
    const e = toChaperoneError(err);
    return {
      response: {
        uid,
        allowed: false,
        status: {
          code: 500,
          reason: 'InternalError',
          message: `chaperone: the injector could not inject this pod and will not admit it unguarded: ${e.message}`,
        },
      },
      result: 'error',
      reason: e.code,
    };
  }
}

export function createAdmissionHandler(opts: HandlerOptions): AdmissionHandler {
  const count = (result: AdmissionResult, reason: string) => {
    opts.metrics?.admissions.inc({ result, reason });
  };
  return (req) => {
    const outcome = decide(req, opts.config());
    count(outcome.result, outcome.reason);
    const level = outcome.result === 'error' ? 'error' : outcome.result === 'rejected' ? 'warn' : 'debug';
    if (opts.logger && outcome.result !== 'ignored' && opts.logger.isLevelEnabled(level)) {
      const meta = (req.object as Pod | undefined)?.metadata;
      opts.logger[level](
        {
          uid: req.uid,
          namespace: req.namespace,
          pod: meta?.name ?? (meta?.generateName ? `${meta.generateName}*` : undefined),
          result: outcome.result,
          reason: outcome.reason || undefined,
          dryRun: req.dryRun || undefined,
          user: req.userInfo?.username,
          ...(outcome.response.status ? { message: outcome.response.status.message } : {}),
        },
        `pod ${outcome.result}`,
      );
    }
    return outcome.response;
  };
}
