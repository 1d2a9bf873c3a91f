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
import { kubeHeld } from './held-action.ts';
import type { ReviewClient } from './review-client.ts';
import type { ReviewOutcome } from './review-outcome.ts';

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
      ...kubeHeld(action),
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
