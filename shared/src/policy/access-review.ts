/**
 * `kubectl auth can-i` through the guard: a SelfSubjectAccessReview's
 * attributes become the Action the guard would decide on, so the answer says
 * what the guard would do, not only what RBAC allows. Pure.
 */
import { isObject as isObj } from '../check.ts';
import { type CompiledPolicy, evaluate } from './evaluate.ts';
import type { Action, Decision, Policy, SelfProtection } from './types.ts';
import { KUBE_VERBS } from './types.ts';

type Obj = Record<string, unknown>;

function text(o: Obj, key: string): string | undefined {
  const v = o[key];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/**
 * The Actions a review's spec asks about (one per verb; `*` asks about every
 * verb), or an empty list when the spec names neither resource nor
 * non-resource attributes.
 */
export function accessReviewActions(spec: unknown, user: string | undefined): Action[] {
  if (!isObj(spec)) return [];
  const who = user ? { user } : {};
  const verbsOf = (verb: string | undefined) => (verb === '*' ? [...KUBE_VERBS] : [verb ?? '']);
  if (isObj(spec.resourceAttributes)) {
    const r = spec.resourceAttributes;
    const group = text(r, 'group');
    const version = text(r, 'version');
    const namespace = text(r, 'namespace');
    const resource = text(r, 'resource');
    const subresource = text(r, 'subresource');
    const name = text(r, 'name');
    return verbsOf(text(r, 'verb')).map((verb) => ({
      protocol: 'kubernetes',
      verb,
      apiGroup: group === '*' ? '*' : (group ?? ''),
      ...(version ? { apiVersion: version } : {}),
      ...(namespace ? { namespace } : {}),
      ...(resource ? { resource } : {}),
      ...(subresource ? { subresource } : {}),
      ...(name ? { name } : {}),
      ...who,
    }));
  }
  if (isObj(spec.nonResourceAttributes)) {
    const n = spec.nonResourceAttributes;
    return verbsOf(text(n, 'verb')).map((verb) => ({
      protocol: 'kubernetes',
      verb,
      nonResourceURL: text(n, 'path') ?? '/',
      ...who,
    }));
  }
  return [];
}

/**
 * The guard's refusal of what the review asks about, or undefined when the
 * guard would let it through (allow or mask) and RBAC should answer. A review
 * counts as a refusal: no approval can be obtained for a question.
 */
export function decideAccessReview(
  spec: unknown,
  user: string | undefined,
  policy: Policy | CompiledPolicy,
  protection: SelfProtection,
): Decision | undefined {
  for (const action of accessReviewActions(spec, user)) {
    const d = evaluate(action, policy, protection);
    if (d.action === 'deny' || d.action === 'review') return d;
  }
  return undefined;
}
