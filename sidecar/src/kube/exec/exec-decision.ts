/**
 * The policy's decision on an exec request, also through wrappers: the
 * request's argv is judged, and so is every argv it runs (shell-line.ts
 * `execArgvs`: `sudo rm x` runs rm, `sh -c 'rm x'` runs rm, `find -exec rm`
 * runs rm), each as the same action with that argv. The most restrictive
 * decision wins, so an `argv0` rule cannot be passed by wrapping the program.
 * Pure; the decide guard and the input line guard both use it.
 */
import {
  type Action,
  type CompiledPolicy,
  type Decision,
  evaluate,
  type SelfProtection,
} from '@chaperone/shared';
import { execArgvs } from './shell-line.ts';

const SEVERITY = { allow: 0, mask: 1, review: 2, deny: 3 } as const;

/** The more restrictive of two decisions (the first on a tie). */
export function moreRestrictive(a: Decision | undefined, b: Decision): Decision {
  return a === undefined || SEVERITY[b.action] > SEVERITY[a.action] ? b : a;
}

/** The most restrictive decision on the action run with each argv (undefined when there are none). */
export function decideArgvs(
  action: Action,
  argvs: readonly (readonly string[])[],
  policy: CompiledPolicy,
  protection: SelfProtection,
): Decision | undefined {
  const exec = action.exec;
  if (!exec) return undefined;
  let worst: Decision | undefined;
  for (const argv of argvs) {
    const d = evaluate({ ...action, exec: { ...exec, argv: [...argv] } }, policy, protection);
    worst = moreRestrictive(worst, d);
    if (d.action === 'deny') return d;
  }
  return worst;
}

/** The built-in rule exec and attach into a sidecar are refused under. */
export const NO_EXEC_INTO_SIDECAR_RULE = 'chaperone-no-exec-into-sidecar';
/** The built-in rule exec and attach next to a credential outside the guard are refused under. */
export const NO_EXEC_NEXT_TO_TOKENS_RULE = 'chaperone-no-exec-next-to-tokens';

/**
 * `evaluate` for any action; for exec, also every argv the request's argv
 * runs. `intoSidecar` (why the target container is a Chaperone sidecar,
 * exec-target.ts) and `intoToken` (why it holds a service-account token
 * outside the guard, token-holders.ts) refuse an exec or attach under a
 * built-in rule: into a sidecar before the policy; next to a token after a
 * policy that refuses it anyway (whose answer then says nothing of the pod),
 * before one that allows or holds it.
 */
export function decideAction(
  action: Action,
  policy: CompiledPolicy,
  protection: SelfProtection,
  intoSidecar?: string,
  intoToken?: string,
): Decision {
  const x = action.exec;
  if (x && intoSidecar !== undefined && x.kind !== 'portforward')
    return {
      action: 'deny',
      rule: NO_EXEC_INTO_SIDECAR_RULE,
      reason: 'self_protection',
      message: `${x.kind} into the container ${JSON.stringify(x.container ?? '')} is not allowed: ${intoSidecar}, so it is (or reaches into) a Chaperone sidecar, which holds the pod's credentials and audit trail`,
    };
  const decision = evaluate(action, policy, protection);
  const inner =
    !action.exec || decision.action === 'deny' || action.exec.argv.length === 0
      ? undefined
      : decideArgvs(action, execArgvs(action.exec.argv), policy, protection);
  const judged = inner === undefined ? decision : moreRestrictive(decision, inner);
  // The policy's own refusal first: the token refusal describes the pod (its containers, Secrets,
  // mounts), which an agent the policy keeps out of the pod is not told.
  if (judged.action === 'deny' || !x || intoToken === undefined || x.kind === 'portforward') return judged;
  return {
    action: 'deny',
    rule: NO_EXEC_NEXT_TO_TOKENS_RULE,
    reason: 'self_protection',
    message: `${x.kind} into the container ${JSON.stringify(x.container ?? '')} is not allowed: ${intoToken}; exec into a pod Chaperone guards, or have an administrator take the token out of this one`,
  };
}
