/**
 * Refuses, before anything is decided or forwarded, a request the sidecar
 * cannot be sure to read exactly as the API server will (request-info.ts says
 * what and why): a Kubernetes Status 400 (405 for a method the API does not
 * serve) saying what in the URL is the problem and what to send instead. It
 * sits inside the audit guard, so a refused request still has its event.
 */
import type { Guard } from '../context.ts';
import { readRequestInfo, UnreadableRequestError } from '../request-info.ts';
import { sendStatus, statusBody } from '../status.ts';

/** The built-in rule a refused reading is recorded under. */
export const UNREADABLE_RULE = 'chaperone-unreadable-request';

const ALLOW = { allow: 'GET, HEAD, POST, PUT, PATCH, DELETE' };

export function readRequest(): Guard {
  return (next) => (ctx) => {
    try {
      ctx.info = readRequestInfo(ctx.req.method, ctx.path, ctx.query, ctx.queryProblem);
    } catch (err) {
      if (!(err instanceof UnreadableRequestError)) throw err;
      // A built-in refusal like any other: its event and the blocked metrics name the rule.
      ctx.decision = {
        action: 'deny',
        rule: UNREADABLE_RULE,
        reason: 'self_protection',
        message: err.message,
      };
      ctx.answered = { code: err.status, reason: err.reason, message: err.message };
      sendStatus(ctx.res, statusBody(err.status, err.reason, err.message), err.status === 405 ? ALLOW : {});
      return;
    }
    return next(ctx);
  };
}
