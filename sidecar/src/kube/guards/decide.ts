/**
 * Turns the request into an Action, asks the policy, and answers denials
 * itself with a Kubernetes Status naming the rule. A review holds the request
 * (review/kube-hold.ts) until a human decides: approved, it goes on as an
 * allowed one; denied, timed out or undecidable (no collector configured, the
 * collector unreachable, …), it is answered 403 saying who denied it and why,
 * that nobody answered in time, or what kept a decision from being had.
 * Port-forward sessions are not held: a review refuses them. An approved
 * request is judged again with the policy in force once the hold ends: a
 * decision other than the same rule's review wins (afterApproval).
 */
import type { SelfProtection } from '@chaperone/shared';
import type { PolicyStore } from '../../policy-store.ts';
import type { ReviewClient } from '../../review/review-client.ts';
import type { Guard, KubeRequestContext } from '../context.ts';
import { decideAction } from '../exec/exec-decision.ts';
import { BodyTooLargeError } from '../http1/agent-connection.ts';
import { loadOnce } from '../lazy-guard.ts';
import { protobufObjectName } from '../protobuf-name.ts';
import { impersonationHeaders, toAction } from '../request-info.ts';
import { sendStatus, statusBody } from '../status.ts';
import { parseStrictJson } from './strict-json.ts';

/**
 * Creating these objects names them only in the body, and the built-in
 * self-protection rules depend on the name (the policy ConfigMap, Chaperone's
 * NetworkPolicies): for them the body is read (within the size limit) first.
 */
const NAMED_IN_BODY = new Set(['/configmaps', 'networking.k8s.io/networkpolicies']);

class BodyProblem extends Error {
  readonly code: number;
  readonly reason: string;
  constructor(code: number, reason: string, message: string) {
    super(message);
    this.code = code;
    this.reason = reason;
  }
}

/**
 * The hold and re-judging code (held actions, the secret detectors that mask
 * what approvers read), loaded at the first request a rule sends for review.
 */
const reviewCode = loadOnce(async () => {
  const [{ holdKubeRequest }, { afterApproval }] = await Promise.all([
    import('../../review/kube-hold.ts'),
    import('../../review/after-approval.ts'),
  ]);
  return { holdKubeRequest, afterApproval };
});

/** Reads the body (kept in ctx.body for forwarding) and the name of the object it creates. */
async function nameFromBody(ctx: KubeRequestContext, limit: number): Promise<string | undefined> {
  const type = ctx.req.headers['content-type'] ?? 'application/json';
  let body: Buffer;
  try {
    body = await ctx.req.body(limit);
  } catch (err) {
    if (err instanceof BodyTooLargeError) {
      throw new BodyProblem(413, 'RequestEntityTooLarge', err.message);
    }
    throw err;
  }
  ctx.body = body;
  let parsed: { name?: unknown; generateName?: unknown };
  try {
    if (type.startsWith('application/vnd.kubernetes.protobuf')) {
      parsed = protobufObjectName(body);
    } else if (type.startsWith('application/json')) {
      // Strict: one reading of the name, and errors that never quote the body.
      const doc = parseStrictJson(body);
      const meta =
        typeof doc === 'object' && doc !== null ? (doc as { metadata?: unknown }).metadata : undefined;
      parsed = typeof meta === 'object' && meta !== null ? (meta as typeof parsed) : {};
    } else {
      throw new BodyProblem(
        415,
        'UnsupportedMediaType',
        `a ${type} body cannot be checked here; send JSON or protobuf`,
      );
    }
  } catch (err) {
    if (err instanceof BodyProblem) throw err;
    throw new BodyProblem(
      400,
      'BadRequest',
      `the request body could not be read (${(err as Error).message})`,
    );
  }
  const name = parsed.name ?? parsed.generateName;
  return typeof name === 'string' ? name : undefined;
}

export function decide(
  policy: PolicyStore,
  protection: SelfProtection,
  user: string,
  maxBodyBytes: number,
  reviews?: ReviewClient,
): Guard {
  const refuseBody = (ctx: KubeRequestContext, err: unknown): void => {
    const p = err instanceof BodyProblem ? err : new BodyProblem(400, 'BadRequest', (err as Error).message);
    const message = `chaperone: ${p.message}`;
    ctx.answered = { code: p.code, reason: p.reason, message };
    sendStatus(ctx.res, statusBody(p.code, p.reason, message));
  };
  return (next) => async (ctx) => {
    // Read once, by the request-reading guard that runs first (it refuses what it cannot read).
    let info = ctx.info;
    if (info === undefined) throw new Error('decide runs after readRequest: the request has not been read');
    if (
      info.verb === 'create' &&
      info.name === undefined &&
      NAMED_IN_BODY.has(`${info.apiGroup}/${info.resource}`)
    ) {
      try {
        const name = await nameFromBody(ctx, maxBodyBytes);
        if (name !== undefined) info = { ...info, name };
      } catch (err) {
        refuseBody(ctx, err);
        return;
      }
    }
    const action = toAction(info, { user, impersonation: impersonationHeaders(ctx.req.headers) });
    // For exec, also each argv the command runs through a wrapper (`sh -c 'rm x'`).
    const decision = decideAction(action, policy.current, protection, ctx.execIntoSidecar, ctx.execIntoToken);
    ctx.info = info;
    ctx.action = action;
    ctx.decision = decision;
    if (decision.action === 'allow' || decision.action === 'mask') return next(ctx);
    let message = `chaperone: denied by rule "${decision.rule}": ${decision.message}`;
    if (decision.action === 'review') {
      if (!reviews || action.exec?.kind === 'portforward') {
        const why = reviews
          ? 'a port-forward is not held for approval'
          : 'no approval service is configured for this sidecar';
        message = `chaperone: rule "${decision.rule}" requires a human's approval (${decision.message}), and ${why}; the request is denied`;
      } else {
        // Read before the hold, to be forwarded once approved (and refused before anyone is asked when too large).
        if (reviews.configured && ctx.body === undefined && ctx.req.hasBody && !ctx.req.upgrade) {
          try {
            ctx.body = await ctx.req.body(maxBodyBytes);
          } catch (err) {
            refuseBody(
              ctx,
              err instanceof BodyTooLargeError
                ? new BodyProblem(413, 'RequestEntityTooLarge', err.message)
                : err,
            );
            return;
          }
        }
        const { holdKubeRequest, afterApproval } = await reviewCode();
        const outcome = await holdKubeRequest(ctx, decision, reviews);
        if (outcome.state === 'approved') {
          // The policy may have changed during the hold: judged again, a decision other than this rule's review wins.
          const now = decideAction(
            action,
            policy.current,
            protection,
            ctx.execIntoSidecar,
            ctx.execIntoToken,
          );
          const after = afterApproval(decision, now);
          if (after === undefined) return next(ctx);
          ctx.decision = {
            ...after.decision,
            ...(ctx.decision?.approval ? { approval: ctx.decision.approval } : {}),
          };
          if (after.decision.action === 'allow' || after.decision.action === 'mask') return next(ctx);
          message = `chaperone: ${after.message}`;
        } else message = `chaperone: ${outcome.message}`;
      }
    }
    const refusedBy = ctx.decision ?? decision;
    const details = {
      ...(info.name !== undefined ? { name: info.name } : {}),
      ...(info.apiGroup ? { group: info.apiGroup } : {}),
      ...(info.resource !== undefined ? { kind: info.resource } : {}),
      causes: [{ reason: 'ChaperoneRule', message: refusedBy.rule, field: refusedBy.reason }],
    };
    ctx.answered = { code: 403, reason: 'Forbidden', message };
    sendStatus(ctx.res, statusBody(403, 'Forbidden', message, details));
  };
}
