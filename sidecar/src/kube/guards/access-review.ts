/**
 * `kubectl auth can-i` through the guard answers what the guard would do.
 *
 * - SelfSubjectAccessReview: the attributes asked about become an Action,
 *   decided by the policy and the built-in rules; if the guard would refuse,
 *   the answer says so (allowed: false, denied: true, the rule as the reason),
 *   otherwise RBAC's answer stands.
 * - SelfSubjectRulesReview (`can-i --list`): RBAC's answer, marked incomplete,
 *   with an evaluation error saying Chaperone's policy applies too.
 */
import { check, decideAccessReview, type SelfProtection } from '@chaperone/shared';
import type { PolicyStore } from '../../policy-store.ts';
import type { Guard, KubeRequestContext } from '../context.ts';
import { BodyTooLargeError } from '../http1/agent-connection.ts';
import { UpstreamError } from '../http1/upstream-pool.ts';
import { sendStatus, statusBody } from '../status.ts';
import { type Upstream, type UpstreamReply, upstreamCall } from '../upstream.ts';

export interface AccessReviewOptions {
  readonly policy: PolicyStore;
  readonly protection: SelfProtection;
  readonly user: string;
  readonly upstream: Upstream;
  readonly maxRequestBytes: number;
  readonly maxResponseBytes: number;
  readonly timeoutMs: number;
}

const isObj = check.isObject;

export const RULES_REVIEW_NOTE =
  "Chaperone's guardrail policy and built-in rules also apply to every request through this sidecar; ask about one action with kubectl auth can-i <verb> <resource>";

function refuse(ctx: KubeRequestContext, code: number, reason: string, message: string): void {
  const m = `chaperone: ${message}`;
  ctx.answered = { code, reason, message: m };
  sendStatus(ctx.res, statusBody(code, reason, m));
}

/**
 * The review is sent to the API server as the agent wrote it (JSON or
 * protobuf: the API server decodes it and answers in JSON with the spec it
 * read), so the guard judges exactly the attributes RBAC was asked about; the
 * answer is then amended and returned.
 */
export function accessReview(opts: AccessReviewOptions): Guard {
  return (next) => async (ctx) => {
    const a = ctx.action;
    if (
      a?.protocol !== 'kubernetes' ||
      a.verb !== 'create' ||
      a.apiGroup !== 'authorization.k8s.io' ||
      a.subresource !== undefined ||
      (a.resource !== 'selfsubjectaccessreviews' && a.resource !== 'selfsubjectrulesreviews')
    ) {
      return next(ctx);
    }
    let reply: UpstreamReply;
    try {
      const body = ctx.body ?? (await ctx.req.body(opts.maxRequestBytes));
      ctx.body = body;
      reply = await upstreamCall(opts.upstream, {
        method: 'POST',
        target: ctx.req.url,
        contentType: ctx.req.headers['content-type'] ?? 'application/json',
        body,
        auditID: ctx.auditID,
        timeoutMs: opts.timeoutMs,
        maxBytes: opts.maxResponseBytes,
      });
    } catch (err) {
      if (err instanceof BodyTooLargeError) return refuse(ctx, 413, 'RequestEntityTooLarge', err.message);
      if (!(err instanceof UpstreamError)) throw err;
      return refuse(
        ctx,
        503,
        'ServiceUnavailable',
        `the API server at ${opts.upstream.origin} could not be asked (${err.code}); try again shortly`,
      );
    }
    let body: Buffer = reply.body;
    if (reply.status >= 200 && reply.status < 300) {
      let doc: unknown;
      try {
        doc = JSON.parse(reply.body.toString('utf8'));
      } catch {
        return refuse(ctx, 502, 'BadGateway', "the API server's answer to the review is not JSON");
      }
      if (!isObj(doc))
        return refuse(ctx, 502, 'BadGateway', "the API server's answer to the review is not an object");
      const status = isObj(doc.status) ? doc.status : {};
      if (a.resource === 'selfsubjectrulesreviews') {
        const earlier =
          typeof status.evaluationError === 'string' && status.evaluationError !== ''
            ? `${status.evaluationError}; `
            : '';
        doc.status = { ...status, incomplete: true, evaluationError: `${earlier}${RULES_REVIEW_NOTE}` };
      } else {
        const refusal = decideAccessReview(doc.spec, opts.user, opts.policy.current, opts.protection);
        if (refusal) {
          const reason = `chaperone: denied by rule "${refusal.rule}": ${refusal.message}`;
          doc.status = { allowed: false, denied: true, reason };
          ctx.answered = { code: reply.status, reason: 'AccessReviewAnswered', message: reason };
        }
      }
      body = Buffer.from(JSON.stringify(doc), 'utf8');
    } else {
      ctx.failure = { code: reply.status, reason: '', message: `the API server answered ${reply.status}` };
    }
    ctx.res.writeHead(reply.status, {
      'content-type': reply.contentType || 'application/json',
      'content-length': body.length,
      'cache-control': 'no-cache, private',
    });
    ctx.res.end(body);
  };
}
