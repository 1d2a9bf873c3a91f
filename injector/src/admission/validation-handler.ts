/**
 * The validating webhook's AdmissionRequest → AdmissionResponse: calls the
 * pure `validate`, counts the outcome, logs refusals and exemptions (who asked,
 * for what, why). Never throws.
 */
import type { Logger } from '@chaperone/shared';
import type { InjectorMetrics } from '../injector-metrics.ts';
import type { AdmissionHandler } from './admission-handler.ts';
import { type ValidationSettings, validate } from './validation.ts';

export interface ValidationHandlerOptions {
  /** Read on every request: the settings can be swapped at run time. */
  readonly settings: () => ValidationSettings;
  readonly metrics?: InjectorMetrics;
  readonly logger?: Logger;
}

export function createValidationHandler(opts: ValidationHandlerOptions): AdmissionHandler {
  return (req) => {
    const outcome = validate(req, opts.settings());
    opts.metrics?.validations.inc({ result: outcome.result, reason: outcome.reason });
    const level =
      outcome.result === 'denied' || outcome.result === 'exempt'
        ? outcome.reason === 'error'
          ? 'error'
          : 'warn'
        : 'debug';
    if (opts.logger && outcome.result !== 'ignored' && opts.logger.isLevelEnabled(level)) {
      const meta = (req.object as { metadata?: { name?: string; generateName?: string } } | undefined)
        ?.metadata;
      opts.logger[level](
        {
          uid: req.uid,
          kind: req.kind?.kind,
          operation: req.operation,
          namespace: req.namespace,
          name: req.name ?? meta?.name ?? (meta?.generateName ? `${meta.generateName}*` : undefined),
          result: outcome.result,
          reason: outcome.reason,
          dryRun: req.dryRun || undefined,
          user: req.userInfo?.username,
          ...(outcome.response.status ? { message: outcome.response.status.message } : {}),
        },
        `validation ${outcome.result}`,
      );
    }
    return outcome.response;
  };
}
