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
 * The pod is read for every session that can open (target-pod.ts), also
 * when the container is named: if that container is a Chaperone sidecar or
 * reaches into one (sidecar-containers.ts: found by its environment,
 * command, image, or as a debug container targeting one), `ctx.execIntoSidecar`
 * says why, and the decide guard refuses the session under the built-in
 * rule, whatever the policy says; so does a container of a pod Chaperone
 * does not guard that holds a service-account token (`ctx.execIntoToken`,
 * token-holders.ts; the types of the Secrets such a pod uses are read for it,
 * token-secrets.ts). A pod that cannot be read refuses the session (the
 * guard cannot tell what the container is).
 *
 * Requests that are not exec or attach sessions lose the WebSocket answering
 * that newContext set up for them.
 */

import type { Guard } from '../context.ts';
import { queryFlag } from '../forward.ts';
import { UNREADABLE_RULE } from '../guards/request-reading.ts';
import { sendStatus, statusBody } from '../status.ts';
import { podSidecars } from './sidecar-containers.ts';
import { readTargetPod, type TargetPod, type TargetPodOptions } from './target-pod.ts';
import { secretsUsed, tokenOutsideGuard } from './token-holders.ts';
import { readTokenSecrets } from './token-secrets.ts';

export type ExecTargetOptions = TargetPodOptions;

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
    // As request-info.ts read it: the first (here only) container=, an empty one naming none.
    let container = exec.container;
    // Only a session that can open needs the pod (others are refused whatever the container).
    if (ctx.webSocket && info.namespace !== undefined && info.name !== undefined) {
      const read = await readTargetPod(o, ctx, info.namespace, info.name);
      if (!('pod' in read)) ctx.execProblem = unreadPod(read, container === undefined);
      else {
        if (container === undefined) {
          container = onlyContainer(read.pod);
          // Never send upstream a session without a container: the API server would pick one if the
          // pod were replaced by a one-container pod meanwhile, and nobody decided on that one.
          if (container === undefined)
            ctx.execProblem = {
              code: 400,
              reason: 'BadRequest',
              message:
                'chaperone: no container is named, and the pod does not have exactly one; name the container (kubectl exec -c <container>), as the API server would ask too',
            };
        }
        const why = container === undefined ? undefined : podSidecars(read.pod).containers.get(container);
        if (why !== undefined) ctx.execIntoSidecar = why;
        if (container !== undefined) {
          // A token Secret may have any name: the types of the Secrets an unguarded pod uses are read.
          // Read only when the pod shows no token without them.
          const plain = tokenOutsideGuard(read.pod, container);
          const used = plain === undefined ? secretsUsed(read.pod) : [];
          const secrets =
            used.length === 0
              ? { tokens: new Set<string>() }
              : await readTokenSecrets(o, ctx, info.namespace, used);
          const token =
            plain ??
            ('unknown' in secrets
              ? `the pod is not guarded by Chaperone, and ${secrets.unknown}, so the guard cannot tell whether container ${JSON.stringify(container)} holds a service-account token; guard the pod, or let the agent's service account read its Secrets`
              : tokenOutsideGuard(read.pod, container, secrets.tokens));
          if (token !== undefined) ctx.execIntoToken = token;
        }
      }
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

/** The container the API server picks for a request that names none: the pod's only one (else undefined: it refuses). */
function onlyContainer(pod: unknown): string | undefined {
  const containers = (pod as { spec?: { containers?: unknown } }).spec?.containers;
  if (!Array.isArray(containers) || containers.length !== 1) return undefined;
  const only = (containers[0] as { name?: unknown } | null)?.name;
  return typeof only === 'string' ? only : undefined;
}

/** The session's refusal when the pod could not be read: the API server's own answer where it gave one. */
function unreadPod(
  read: Exclude<TargetPod, { pod: unknown }>,
  unnamed: boolean,
): { code: number; reason: string; message: string } {
  const what = unnamed
    ? 'no container is named, and the pod could not be read to learn which one the API server would pick'
    : 'the pod could not be read to learn whether the container is a Chaperone sidecar';
  const todo = unnamed ? '; name the container (kubectl exec -c <container>)' : '; try again';
  if (read.error !== undefined)
    return { code: 503, reason: 'ServiceUnavailable', message: `chaperone: ${what} (${read.error})${todo}` };
  return {
    code: read.status,
    reason: read.reason ?? 'Failure',
    message: read.message ?? `chaperone: ${what} (HTTP ${read.status})${todo}`,
  };
}
