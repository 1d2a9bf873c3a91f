/**
 * Holds a Kubernetes API request (or an exec / attach upgrade, before
 * anything reaches the API server) that a `review` rule matched: the client
 * waits while the review client asks for a human's decision (the caller has
 * read the request body first, so that it can still be forwarded). The client
 * going away withdraws the request.
 *
 * The decision the request's audit event records gets `approval` (how the
 * hold ended). Approved: the request goes on as an allowed one would, masked
 * where the decision masks.
 */
import { DEFAULT_REVIEW, type Decision } from '@chaperone/shared';
import type { KubeRequestContext } from '../kube/context.ts';
import { type KubeRequestBytes, kubeHeld } from './held-action.ts';
import type { ReviewClient } from './review-client.ts';
import type { ReviewOutcome } from './review-outcome.ts';

/** What the approver reads of the request beyond its Action, and what its digest pins (an upgrade's argv is in the Action). */
function requestBytes(ctx: KubeRequestContext): KubeRequestBytes | undefined {
  if (ctx.action?.exec) return undefined;
  const at = ctx.req.url.indexOf('?');
  const type = ctx.req.headers['content-type'];
  return {
    method: ctx.req.method,
    rawQuery: at === -1 ? '' : ctx.req.url.slice(at + 1),
    query: ctx.query,
    ...(ctx.body !== undefined && ctx.body.length > 0
      ? {
          body: {
            bytes: ctx.body,
            ...(typeof type === 'string' ? { contentType: type } : {}),
            maskFields: ctx.decision?.maskFields ?? [],
          },
        }
      : {}),
  };
}

export async function holdKubeRequest(
  ctx: KubeRequestContext,
  decision: Decision,
  reviews: ReviewClient,
): Promise<ReviewOutcome> {
  const action = ctx.action;
  if (!action) throw new Error('a request is held only once it has been decided');
  const gone = new AbortController();
  ctx.res.onClose(() => gone.abort());
  const outcome = await reviews.review(
    {
      ...kubeHeld(action, reviews.digest, requestBytes(ctx)),
      auditId: ctx.auditID,
      rule: decision.rule,
      message: decision.message,
      review: decision.review ?? DEFAULT_REVIEW,
      noun: action.exec ? 'session' : 'request',
    },
    gone.signal,
  );
  ctx.decision = {
    ...decision,
    // Approved, what the decision masks is still masked (a Secret's values always are: evaluate.ts).
    ...(outcome.state === 'approved' && decision.maskFields ? { action: 'mask' as const } : {}),
    approval: outcome.record,
  };
  return outcome;
}
