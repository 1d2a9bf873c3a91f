/**
 * Completes what an exec or attach request asks for before it is decided:
 * the container it runs in, whether it has a TTY and stdin — read from the
 * query as the API server reads it (PodExecOptions: each parameter by its
 * first value; a flag is true unless it is "0" or "false", any case).
 *
 * - `container=` given more than once is refused as unreadable: the sidecar
 *   will not decide on one of several names.
 * - No container (or an empty one): the API server runs the command in the
 *   pod's only container, and refuses when the pod has several
 *   (validateContainer in pkg/registry/core/pod/strategy.go; kubectl's
 *   default-container annotation is kubectl's own choice, made before it
 *   sends the request with `container=` set). The sidecar reads the pod with
 *   its own credentials to learn that container, so the rules — the built-in
 *   one against the sidecar's container among them — decide on it, and the
 *   session then names it explicitly upstream (session-guard.ts), so what runs
 *   is what was decided even if the pod is replaced meanwhile. A lookup that
 *   fails is kept in `ctx.execProblem`: the session is refused with it once the
 *   policy has allowed it (so the answer tells nothing about a pod the agent
 *   may not use).
 *
 * Requests that are not exec or attach sessions lose the WebSocket answering
 * that newContext set up for them.
 */

import type { Guard, KubeRequestContext } from '../context.ts';
import { queryFlag } from '../forward.ts';
import { UNREADABLE_RULE } from '../guards/request-reading.ts';
import { sendStatus, statusBody } from '../status.ts';
import { derivedAuditID, type Upstream, upstreamCall } from '../upstream.ts';

export interface ExecTargetOptions {
  readonly upstream: Upstream;
  readonly timeoutMs: number;
}

/** Largest pod the lookup reads. */
const MAX_POD_BYTES = 4 << 20;

export function execTarget(o: ExecTargetOptions): Guard {
  return (next) => async (ctx) => {
    const info = ctx.info;
    const exec = info?.exec;
    if (!info || !exec || exec.kind === 'portforward') {
      if (ctx.webSocket) {
        ctx.webSocket = undefined;
        ctx.res.answerThrough(undefined);
      }
      return next(ctx);
    }
    const named = ctx.query.getAll('container');
    if (named.length > 1) {
      const message = `chaperone: the request names the container ${named.length} times (container=${named.map((n) => JSON.stringify(n)).join(', container=')}); the API server would read only the first, and the guard does not decide on one of several: send container= once`;
      ctx.decision = { action: 'deny', rule: UNREADABLE_RULE, reason: 'self_protection', message };
      ctx.answered = { code: 400, reason: 'BadRequest', message };
      sendStatus(ctx.res, statusBody(400, 'BadRequest', message));
      return;
    }
    let container: string | undefined = named[0] === '' ? undefined : named[0];
    // Only a session that can open needs it (others are refused whatever the container).
    if (container === undefined && ctx.webSocket && info.namespace !== undefined && info.name !== undefined) {
      const found = await onlyContainer(o, ctx, info.namespace, info.name);
      if (typeof found === 'string') container = found;
      else if (found !== undefined) ctx.execProblem = found;
      // Never send upstream a session without a container: the API server would pick one if the
      // pod were replaced by a one-container pod meanwhile, and nobody decided on that one.
      else
        ctx.execProblem = {
          code: 400,
          reason: 'BadRequest',
          message:
            'chaperone: no container is named, and the pod does not have exactly one; name the container (kubectl exec -c <container>), as the API server would ask too',
        };
    }
    ctx.info = {
      ...info,
      exec: {
        ...exec,
        ...(container !== undefined ? { container } : {}),
        tty: queryFlag(ctx.query, 'tty'),
        stdin: queryFlag(ctx.query, 'stdin'),
      },
    };
    return next(ctx);
  };
}

/**
 * The container the API server picks for a request that names none: the
 * pod's only one. Undefined when the pod has another number of containers
 * (the API server refuses those requests itself); the problem when the
 * pod could not be read.
 */
async function onlyContainer(
  o: ExecTargetOptions,
  ctx: KubeRequestContext,
  namespace: string,
  name: string,
): Promise<string | undefined | { code: number; reason: string; message: string }> {
  const target = `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(name)}`;
  let status: number;
  let body: Buffer;
  try {
    ({ status, body } = await upstreamCall(o.upstream, {
      method: 'GET',
      target,
      auditID: derivedAuditID(ctx.auditID, 1),
      timeoutMs: o.timeoutMs,
      maxBytes: MAX_POD_BYTES,
    }));
  } catch (err) {
    return {
      code: 503,
      reason: 'ServiceUnavailable',
      message: `chaperone: no container is named, and the pod could not be read to learn which one the API server would pick (${(err as Error).message}); name the container (kubectl exec -c <container>)`,
    };
  }
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    doc = undefined;
  }
  if (status !== 200) {
    const said = doc as { message?: unknown; reason?: unknown } | undefined;
    return {
      code: status,
      reason: typeof said?.reason === 'string' ? said.reason : 'Failure',
      message:
        typeof said?.message === 'string'
          ? said.message
          : `chaperone: no container is named, and the pod could not be read (HTTP ${status}); name the container (kubectl exec -c <container>)`,
    };
  }
  const containers = (doc as { spec?: { containers?: unknown } } | undefined)?.spec?.containers;
  if (!Array.isArray(containers) || containers.length !== 1) return undefined;
  const only = (containers[0] as { name?: unknown } | null)?.name;
  return typeof only === 'string' ? only : undefined;
}
