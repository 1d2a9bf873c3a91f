/**
 * Built-in rules over the object a write would store, for the writes whose
 * danger is in the body: pods and every built-in kind with a pod template,
 * Secrets (token types, masked values moved out of data), NetworkPolicies
 * (egress), PersistentVolumeClaims (binding to a chosen volume) and every
 * object of a group Kubernetes does not serve itself (pod specs anywhere in
 * it). The sidecar reads the object — the body of a create, the API server's
 * dry-run result of an update, a patch or a custom resource — and the
 * current object and the namespace where a rule needs them; this file only
 * decides. Pure.
 */
import { isObject as isObj } from '../check.ts';
import { isBuiltinGroup } from './api-groups.ts';
import { podSpecsIn } from './pod-specs.ts';
import { secretValueLeaks } from './secret-writes.ts';
import type { Action, Decision, DecisionCause, SelfProtection } from './types.ts';
import {
  CHAPERONE_PREFIX,
  type Escape,
  INJECT_ENABLED,
  INJECT_LABEL,
  INJECTED_LABEL,
  type PodTemplate,
  podEscapes,
  podTemplateOf,
  SYSTEM_NAMESPACES,
} from './workload-escapes.ts';

export type WriteCheck =
  | 'pod'
  | 'pod-template'
  | 'secret'
  | 'network-policy'
  | 'persistent-volume-claim'
  | 'rbac'
  | 'custom-resource';

/** Secret types the API server or its controllers turn into credentials it accepts. */
export const TOKEN_SECRET_TYPES: readonly string[] = [
  'kubernetes.io/service-account-token',
  'bootstrap.kubernetes.io/token',
];

const OBJECT_WRITES = new Set(['create', 'update', 'patch']);

/** Which object check a request needs, or undefined when the request alone decides. */
export function writeCheckOf(action: Action): WriteCheck | undefined {
  if (action.protocol !== 'kubernetes' || !OBJECT_WRITES.has(action.verb) || action.resource === undefined) {
    return undefined;
  }
  const group = action.apiGroup ?? '';
  const sub = action.subresource;
  // Any subresource too: a custom resource's status or scale write returns the whole object.
  if (!isBuiltinGroup(group)) return 'custom-resource';
  if (group === '' && action.resource === 'pods') {
    // A pod's status write can change its labels (the status strategy keeps only the spec).
    return sub === undefined || sub === 'status' ? 'pod' : undefined;
  }
  if (sub !== undefined) return undefined;
  if (podTemplateOf(group, action.resource, {})) return 'pod-template';
  if (group === '' && action.resource === 'secrets') return 'secret';
  if ((group === 'networking.k8s.io' || group === 'extensions') && action.resource === 'networkpolicies') {
    return 'network-policy';
  }
  if (group === '' && action.resource === 'persistentvolumeclaims') return 'persistent-volume-claim';
  if (group === 'rbac.authorization.k8s.io' && RBAC_CHECKED.has(action.resource)) return 'rbac';
  return undefined;
}

const RBAC_CHECKED = new Set(['rolebindings', 'clusterrolebindings', 'clusterroles', 'roles']);

/**
 * For a write to a Role or ClusterRole: whether the role needs the bindings
 * that grant it read (every binding that names it), to learn whether it is
 * already granted to open subjects.
 */
export function needsRoleBindings(action: Action): boolean {
  return (
    action.apiGroup === 'rbac.authorization.k8s.io' &&
    (action.resource === 'roles' || action.resource === 'clusterroles') &&
    action.verb !== 'delete' &&
    action.verb !== 'deletecollection'
  );
}

/** Whether a binding's subject is one of OPEN_SUBJECTS. */
export function isOpenSubject(subject: unknown): boolean {
  const kind = field(subject, 'kind');
  const name = field(subject, 'name');
  return OPEN_SUBJECTS.some(([k, n]) => k === kind && n === name);
}

/**
 * Subjects that stand for callers with no credential of their own, or for
 * every caller the API server knows: the agent's own container reaches the
 * API server (the pod's network policy lets the sidecar through), so a role
 * granted to one of them is a route around the guard.
 */
const OPEN_SUBJECTS: readonly (readonly [string, string])[] = [
  ['User', 'system:anonymous'],
  ['Group', 'system:unauthenticated'],
  ['Group', 'system:authenticated'],
];

const AGGREGATE_LABEL_PREFIX = 'rbac.authorization.k8s.io/aggregate-to-';

/**
 * RBAC writes that would open the API server to callers around the guard:
 * a binding to an open subject; a change to a `system:` ClusterRole (which
 * Kubernetes binds to unauthenticated and authenticated callers); a
 * ClusterRole that aggregates into others (view, edit, admin: bound to whoever
 * an administrator chose).
 */
function rbacEscapes(w: WrittenObject): Escape[] {
  const out: Escape[] = [];
  if (w.action.resource === 'rolebindings' || w.action.resource === 'clusterrolebindings') {
    const subjects = field(w.object, 'subjects');
    (Array.isArray(subjects) ? subjects : []).forEach((s, i) => {
      const kind = field(s, 'kind');
      const name = field(s, 'name');
      if (!isOpenSubject(s)) return;
      out.push({
        rule: 'chaperone-no-open-grants',
        field: `subjects[${i}]`,
        message: `a binding to ${String(kind)} ${String(name)} grants the role to callers with no credential of their own or to every caller, who would reach the API server around the guard; bind a ServiceAccount or a named user instead`,
      });
    });
    return out;
  }
  const name = field(w.object, 'metadata', 'name') ?? w.action.name;
  const open = w.openBindings?.[0];
  if (open !== undefined) {
    out.push({
      rule: 'chaperone-no-open-grants',
      field: 'rules',
      message: `the role is granted to callers with no credential of their own or to every caller (${open}), who would reach the API server around the guard: changing it from inside the guard could open more to them`,
    });
  }
  if (w.action.resource === 'clusterroles' && typeof name === 'string' && name.startsWith('system:')) {
    out.push({
      rule: 'chaperone-no-open-grants',
      field: 'metadata.name',
      message: `${name} is a ClusterRole of Kubernetes' own, bound to unauthenticated or authenticated callers: changing it from inside the guard could open the API server around it`,
    });
  }
  const labels = field(w.object, 'metadata', 'labels');
  const aggregates = isObj(labels)
    ? Object.keys(labels).filter((k) => k.startsWith(AGGREGATE_LABEL_PREFIX))
    : [];
  if (aggregates.length > 0) {
    out.push({
      rule: 'chaperone-no-open-grants',
      field: `metadata.labels[${aggregates[0]}]`,
      message:
        'a ClusterRole with an aggregate-to label adds its rules to the roles that aggregate it (view, edit, admin), which may be bound to anyone: aggregation is for an administrator',
    });
  }
  return out;
}

/**
 * Whether the check needs the namespace's labels (pods there are guarded only
 * if it opted in): always for pods and templates; for a custom resource, when
 * it holds a new or changed pod spec.
 */
export function needsNamespace(check: WriteCheck, object?: unknown, previous?: unknown): boolean {
  if (check === 'custom-resource') return changedPodSpecs(object, previous).length > 0;
  return check === 'pod' || check === 'pod-template';
}

export interface WrittenObject {
  readonly action: Action;
  /** The object as it would be stored: the body of a create, the dry-run result of an update or patch. */
  readonly object: unknown;
  /** The stored object before an update or patch (undefined for a create). */
  readonly previous?: unknown;
  /** Labels of the namespace written to; null when it does not exist. Needed for pods and templates. */
  readonly namespaceLabels?: Readonly<Record<string, unknown>> | null;
  /** The request body as parsed (JSON), when it was read: values it holds are the writer's own. */
  readonly request?: unknown;
  /**
   * For a Role or ClusterRole (needsRoleBindings): the bindings that grant
   * it to open subjects, described ("RoleBinding kube-public/x to User
   * system:anonymous"); empty when none.
   */
  readonly openBindings?: readonly string[];
}

function field(o: unknown, ...path: string[]): unknown {
  let v = o;
  for (const k of path) v = isObj(v) ? v[k] : undefined;
  return v;
}

/** Order-insensitive for keys, exact for everything else. */
function same(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => same(x, b[i]));
  if (isObj(a) && isObj(b)) {
    const ka = Object.keys(a);
    if (ka.length !== Object.keys(b).length) return false;
    return ka.every((k) => Object.hasOwn(b, k) && same(a[k], b[k]));
  }
  return false;
}

/** Whether pods in this namespace get the sidecar: opted in, not a system namespace, not the injector's. */
export function namespaceGuarded(
  name: string | undefined,
  labels: Readonly<Record<string, unknown>> | null | undefined,
  protection: SelfProtection,
): boolean {
  if (name === undefined || !labels) return false;
  if (SYSTEM_NAMESPACES.includes(name) || name === protection.injectorNamespace) return false;
  return labels[INJECT_LABEL] === INJECT_ENABLED;
}

function unguardedNamespace(w: WrittenObject, protection: SelfProtection): Escape | undefined {
  if (namespaceGuarded(w.action.namespace, w.namespaceLabels, protection)) return undefined;
  const ns = w.action.namespace ?? '(none)';
  return {
    rule: 'chaperone-no-unguarded-namespace',
    field: 'metadata.namespace',
    message: `namespace ${ns} is not opted in to Chaperone (label ${INJECT_LABEL}=${INJECT_ENABLED}), so its pods would run with no sidecar: create pods in an opted-in namespace such as ${protection.namespace ?? 'your own'}`,
  };
}

/** `chaperone.dev/*` labels and annotations that differ between the stored pod and the result. */
function markChanges(previous: unknown, next: unknown, where: string): Escape[] {
  const out: Escape[] = [];
  for (const part of ['labels', 'annotations'] as const) {
    const before = field(previous, ...where.split('.').filter(Boolean), 'metadata', part);
    const after = field(next, ...where.split('.').filter(Boolean), 'metadata', part);
    const b = isObj(before) ? before : {};
    const a = isObj(after) ? after : {};
    const keys = new Set(
      [...Object.keys(b), ...Object.keys(a)].filter((k) => k.startsWith(CHAPERONE_PREFIX)),
    );
    for (const key of keys) {
      if (same(b[key], a[key])) continue;
      const what = a[key] === undefined ? 'removes' : b[key] === undefined ? 'adds' : 'changes';
      out.push({
        rule: 'chaperone-keep-pod-guarded',
        field: `${where ? `${where}.` : ''}metadata.${part}[${key}]`,
        message: `this ${what} the ${part === 'labels' ? 'label' : 'annotation'} ${key}, which Chaperone's webhook, NetworkPolicy and controllers select on: leave ${CHAPERONE_PREFIX}* ${part} as the injector set them`,
      });
    }
  }
  return out;
}

function podChanges(w: WrittenObject, protection: SelfProtection): Escape[] {
  const out = markChanges(w.previous, w.object, '');
  const injected = field(w.previous, 'metadata', 'labels', INJECTED_LABEL) === 'true';
  const before = field(w.previous, 'spec');
  const after = field(w.object, 'spec');
  if (!injected) {
    if (!same(before, after)) {
      out.push({
        rule: 'chaperone-keep-pod-guarded',
        field: 'spec',
        message: `pod ${w.action.name ?? ''} runs without the guard (it was not injected); its spec cannot be changed from inside the guard: create a new pod in an opted-in namespace instead`,
      });
    }
    return out;
  }
  for (const list of ['initContainers', 'containers'] as const) {
    const find = (spec: unknown) =>
      (Array.isArray(field(spec, list)) ? (field(spec, list) as unknown[]) : []).find(
        (c) => isObj(c) && c.name === protection.sidecarContainer,
      );
    if (!same(find(before), find(after))) {
      out.push({
        rule: 'chaperone-keep-pod-guarded',
        field: `spec.${list}[${protection.sidecarContainer}]`,
        message: `the ${protection.sidecarContainer} container holds the pod's credentials and cannot be changed from inside the guard: leave it as the injector set it`,
      });
    }
  }
  return out;
}

function templateEscapes(w: WrittenObject, protection: SelfProtection): Escape[] {
  const group = w.action.apiGroup ?? '';
  const resource = w.action.resource ?? '';
  const next = podTemplateOf(group, resource, w.object);
  if (!next) return [];
  if (w.previous !== undefined) {
    const prev = podTemplateOf(group, resource, w.previous);
    // Same template, same pods: scaling or relabelling the workload starts nothing new.
    if (prev && same(prev.metadata, next.metadata) && same(prev.spec, next.spec)) return [];
  }
  const out: Escape[] = [];
  const ns = unguardedNamespace(w, protection);
  if (ns) out.push(ns);
  out.push(...podEscapes(next, protection.sidecarContainer));
  return out;
}

/** The pod specs of `object` that are not in `previous` as they are, at the same place. */
function changedPodSpecs(object: unknown, previous: unknown): PodTemplate[] {
  const before = previous === undefined ? [] : podSpecsIn(previous);
  return podSpecsIn(object).filter(
    (t) =>
      !before.some((b) => b.specPath === t.specPath && same(b.spec, t.spec) && same(b.metadata, t.metadata)),
  );
}

/**
 * A custom resource may be turned into pods by its operator: each new or
 * changed pod spec in it is held to the rules of a pod, in an opted-in namespace.
 */
function customResourceEscapes(w: WrittenObject, protection: SelfProtection): Escape[] {
  const specs = changedPodSpecs(w.object, w.previous);
  if (specs.length === 0) return [];
  const out: Escape[] = [];
  const ns = unguardedNamespace(w, protection);
  if (ns) out.push(ns);
  for (const t of specs) out.push(...podEscapes(t, protection.sidecarContainer));
  return out;
}

function volumeClaimEscapes(w: WrittenObject): Escape[] {
  const name = field(w.object, 'spec', 'volumeName');
  if (typeof name !== 'string' || name === '' || name === field(w.previous, 'spec', 'volumeName')) return [];
  return [
    {
      rule: 'chaperone-no-volume-binding',
      field: 'spec.volumeName',
      message: `the claim would bind PersistentVolume ${name}, which may hold another workload's data or a directory of a node: leave spec.volumeName out and let the claim's StorageClass provide a volume`,
    },
  ];
}

function secretEscapes(w: WrittenObject): Escape[] {
  const out: Escape[] = [];
  if (w.previous !== undefined) out.push(...secretValueLeaks(w.previous, w.object, w.request));
  for (const [obj, when] of [
    [w.object, 'would be'],
    [w.previous, 'is'],
  ] as const) {
    const type = field(obj, 'type');
    if (typeof type === 'string' && TOKEN_SECRET_TYPES.includes(type)) {
      out.push({
        rule: 'chaperone-no-token-secrets',
        field: 'type',
        message: `the Secret ${when} of type ${type}, which the API server accepts as a credential: token Secrets cannot be created or changed from inside the guard; use an Opaque Secret`,
      });
      break;
    }
  }
  return out;
}

function networkPolicyEscapes(w: WrittenObject): Escape[] {
  const types = field(w.object, 'spec', 'policyTypes');
  const egress = field(w.object, 'spec', 'egress');
  const hasType = Array.isArray(types) && types.includes('Egress');
  const hasRules = egress !== undefined && egress !== null;
  if (!hasType && !hasRules) return [];
  return [
    {
      rule: 'chaperone-no-egress-policies',
      field: hasRules ? 'spec.egress' : 'spec.policyTypes',
      message:
        "NetworkPolicies add up, so a policy about egress could widen where guarded pods may connect: egress is set by Chaperone's NetworkPolicy; an ingress-only policy (policyTypes: [Ingress], no egress) is allowed",
    },
  ];
}

/** Every reason the written object breaks a built-in rule. */
export function writtenObjectEscapes(w: WrittenObject, protection: SelfProtection): Escape[] {
  const check = writeCheckOf(w.action);
  switch (check) {
    case 'pod':
      if (w.previous === undefined) {
        const ns = unguardedNamespace(w, protection);
        const t = podTemplateOf('', 'pods', w.object);
        return [...(ns ? [ns] : []), ...(t ? podEscapes(t, protection.sidecarContainer) : [])];
      }
      return podChanges(w, protection);
    case 'pod-template':
      return templateEscapes(w, protection);
    case 'secret':
      return secretEscapes(w);
    case 'network-policy':
      return networkPolicyEscapes(w);
    case 'persistent-volume-claim':
      return volumeClaimEscapes(w);
    case 'rbac':
      return rbacEscapes(w);
    case 'custom-resource':
      return customResourceEscapes(w, protection);
    default:
      return [];
  }
}

/** The built-in refusal of a write for these reasons, or undefined when there are none. */
export function writeRefusal(action: Action, causes: readonly DecisionCause[]): Decision | undefined {
  const first = causes[0];
  if (!first) return undefined;
  const what = `${action.resource ?? 'object'}${action.name ? ` ${action.name}` : ''}`;
  return {
    action: 'deny',
    rule: first.rule,
    reason: 'self_protection',
    message: `${action.verb} of ${what} refused: ${causes.map((c) => `${c.field}: ${c.message} [${c.rule}]`).join('; ')}`,
    causes,
  };
}

/** The built-in refusal of a write, naming every reason, or undefined when the object is fine. */
export function checkWrittenObject(w: WrittenObject, protection: SelfProtection): Decision | undefined {
  return writeRefusal(w.action, writtenObjectEscapes(w, protection));
}
