/**
 * The validating webhook's decision, as a pure function of the
 * AdmissionRequest and the settings: in a namespace opted in to Chaperone
 * nothing runs unguarded, whoever asks and by whatever route (kubectl with
 * another token, a controller creating pods from a template an agent wrote),
 * unless the requester is an identity the cluster admin exempted.
 *
 * - Pod CREATE: validating webhooks run after every mutation, so the object
 *   is the pod that would be stored. It must be injected and intact — carry
 *   the marks, the sidecar, credential custody — and be exactly what `mutate`
 *   makes of it (a fixed point), except for the sidecar's `resources`, which
 *   LimitRanger may fill in after injection. A forged "sidecar" (any image
 *   or command holding the token) is therefore refused too.
 * - Pod UPDATE of an injected pod (through `pods/status` too, which can
 *   change labels and annotations): the `chaperone.dev/*` labels and
 *   annotations, the sidecar container and custody must stay as they were.
 * - Ephemeral containers (the `pods/ephemeralcontainers` subresource) could
 *   share the sidecar's processes or mount its volumes: refused.
 * - Namespace UPDATE (also through `namespaces/status` and
 *   `namespaces/finalize`, which can change labels): an opted-in namespace
 *   must stay selected by this injector (`chaperone.dev/inject=enabled`, its
 *   revision label).
 *
 * Never throws: whatever cannot be read is denied with a message, never admitted.
 */
import { check, toChaperoneError } from '@chaperone/shared';
import { custodyViolations } from '../inject/custody-check.ts';
import type { InjectionConfig } from '../inject/injection-config.ts';
import { InjectionRejected } from '../inject/injection-error.ts';
import { diff } from '../inject/json-patch.ts';
import { jsonEqual } from '../inject/json-value.ts';
import { mutate } from '../inject/mutate.ts';
import { isOptedOut } from '../inject/pod-overrides.ts';
import type { ValidationResult } from '../injector-metrics.ts';
import type { Container, Pod } from '../k8s-types.ts';
import {
  ANNOTATION_PREFIX,
  INJECT_ENABLED,
  INJECT_LABEL,
  INJECTED_LABEL,
  OPT_OUT_VALUE,
  SIDECAR_NAME,
  STATUS_ANNOTATION,
} from '../names.ts';
import type { AdmissionRequest, AdmissionResponse } from './admission-review.ts';
import { type Exemptions, exemptionOf } from './exemptions.ts';
import { unmetRequirement } from './label-selector.ts';
import { namespaceSelector } from './webhook-configuration.ts';

export interface ValidationSettings {
  readonly injection: InjectionConfig;
  /** The injector's revision: an opted-in namespace must keep the matching revision label. */
  readonly revision?: string;
  readonly exemptions: Exemptions;
}

/** Why a request was refused (or admitted only by exemption): a closed set, used as metric labels. */
export const VALIDATION_PROBLEMS = [
  'opted_out_label',
  'opted_out',
  'host_network',
  'not_injected',
  'no_sidecar',
  'custody',
  'not_as_injected',
  'invalid',
  'marks_changed',
  'sidecar_changed',
  'ephemeral_containers',
  'namespace_opt_out',
] as const;
export type ValidationProblem = (typeof VALIDATION_PROBLEMS)[number];

/** Reasons of admitted and ignored requests. */
export type ValidationPass =
  | 'injected'
  | 'guard_intact'
  | 'never_injected'
  | 'stays_opted_in'
  | 'not_opted_in'
  | 'excluded_namespace'
  | 'not_validated';

export type ValidationReason = ValidationProblem | ValidationPass | 'malformed' | 'error';

export interface ValidationOutcome {
  readonly response: AdmissionResponse;
  readonly result: ValidationResult;
  readonly reason: ValidationReason;
}

interface Problem {
  readonly reason: ValidationProblem;
  /** What is wrong, as the end of a sentence. */
  readonly why: string;
  /** What would make the object acceptable, as a sentence (optional). */
  readonly fix?: string;
}

const EXEMPTION_HINT =
  'ask the cluster admin to exempt the identity making this request (injector settings --exempt-users, --exempt-groups)';

const isObj = check.isObject;

function isPodShape(v: unknown): v is Pod {
  return isObj(v) && isObj(v.spec) && Array.isArray(v.spec.containers);
}

function podName(pod: Pod | undefined, req: AdmissionRequest): string {
  const meta = pod?.metadata;
  const name = typeof meta?.name === 'string' && meta.name ? meta.name : req.name;
  if (name) return name;
  return typeof meta?.generateName === 'string' ? `${meta.generateName}*` : '(unnamed)';
}

function requester(req: AdmissionRequest): string {
  const u = req.userInfo?.username;
  return typeof u === 'string' && u ? u : 'an unidentified requester';
}

function chaperoneEntries(map: unknown): Map<string, string> {
  const out = new Map<string, string>();
  if (!isObj(map)) return out;
  for (const [k, v] of Object.entries(map)) if (k.startsWith(ANNOTATION_PREFIX)) out.set(k, String(v));
  return out;
}

function allContainers(pod: Pod): Container[] {
  const init = Array.isArray(pod.spec.initContainers) ? pod.spec.initContainers : [];
  return [...init, ...pod.spec.containers];
}

function hasSidecar(pod: Pod): boolean {
  return allContainers(pod).some((c) => isObj(c) && c.name === SIDECAR_NAME);
}

/** The pod with the sidecar's `resources` left out (LimitRanger may set them after injection). */
function withoutSidecarResources(pod: Pod): Pod {
  const strip = (list: Container[] | undefined) =>
    list?.map((c) => (isObj(c) && c.name === SIDECAR_NAME ? { ...c, resources: undefined } : c));
  const spec = { ...pod.spec, containers: strip(pod.spec.containers) as Container[] };
  if (pod.spec.initContainers) spec.initContainers = strip(pod.spec.initContainers) as Container[];
  return { ...pod, spec };
}

function deny(uid: string, code: number, message: string): AdmissionResponse {
  return {
    uid,
    allowed: false,
    status: {
      code,
      reason: code === 403 ? 'Forbidden' : code === 400 ? 'BadRequest' : 'InternalError',
      message,
    },
  };
}

/** Warnings are shown by kubectl; the API server truncates long ones. */
function warning(text: string): string {
  const clean = text.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > 250 ? `${clean.slice(0, 247)}...` : clean;
}

/** What keeps a pod about to be created from being guarded, or undefined when it is guarded. */
export function creationProblem(pod: Pod, namespace: string, config: InjectionConfig): Problem | undefined {
  const labels = isObj(pod.metadata?.labels) ? pod.metadata.labels : {};
  const annotations = isObj(pod.metadata?.annotations) ? pod.metadata.annotations : {};
  if (labels[INJECT_LABEL] === OPT_OUT_VALUE) {
    return {
      reason: 'opted_out_label',
      why: `it carries the opt-out label ${INJECT_LABEL}=${OPT_OUT_VALUE}`,
      fix: 'Remove the label and the pod is injected.',
    };
  }
  if (isOptedOut(pod)) {
    return {
      reason: 'opted_out',
      why: `it carries the opt-out annotation ${INJECT_LABEL}: "${OPT_OUT_VALUE}"`,
      fix: 'Remove the annotation and the pod is injected.',
    };
  }
  if (pod.spec.hostNetwork === true) {
    return {
      reason: 'host_network',
      why: 'it uses the node’s network (hostNetwork: true), where a loopback sidecar cannot guard it',
      fix: 'Drop hostNetwork and the pod is injected.',
    };
  }
  if (labels[INJECTED_LABEL] !== 'true' || annotations[STATUS_ANNOTATION] === undefined) {
    return {
      reason: 'not_injected',
      why: `the injector did not inject it (no ${INJECTED_LABEL}=true label and ${STATUS_ANNOTATION} annotation)`,
      fix: 'Check that the injector and its MutatingWebhookConfiguration are in place (chaperone check-inject -f <manifest> explains).',
    };
  }
  if (!hasSidecar(pod)) {
    return {
      reason: 'no_sidecar',
      why: `it has no ${SIDECAR_NAME} container although it is marked injected`,
      fix: 'Something removed the sidecar after injection: find the admission webhook that did.',
    };
  }
  const violations = custodyViolations(pod, config.allowedAgentTokenAudiences);
  if (violations.length > 0) {
    return {
      reason: 'custody',
      why: `an agent container could read a Kubernetes credential: ${violations.join('; ')}`,
    };
  }
  let result: ReturnType<typeof mutate>;
  try {
    result = mutate(pod, config, { namespace });
  } catch (err) {
    if (err instanceof InjectionRejected) return { reason: 'invalid', why: err.message };
    throw err;
  }
  if (result.skipReasons.includes('already_injected')) return undefined;
  if (result.skipReasons.length > 0) {
    return { reason: 'not_injected', why: `the injector skips it (${result.skipReasons.join(', ')})` };
  }
  const stored = withoutSidecarResources(pod);
  const wanted = withoutSidecarResources(result.pod);
  if (jsonEqual(stored, wanted)) return undefined;
  const paths = diff(stored, wanted).map((op) => op.path);
  return {
    reason: 'not_as_injected',
    why: `it is not the pod the injector produces (it differs at ${paths.slice(0, 3).join(', ')}${paths.length > 3 ? ', …' : ''}): it was changed after injection, or injected by an injector with other settings`,
    fix: 'Find the admission webhook that changes pods after injection; during an injector upgrade, retry.',
  };
}

/** What an UPDATE of an injected pod would undo, or undefined when the guard stays intact. */
export function updateProblem(oldPod: Pod, newPod: Pod, config: InjectionConfig): Problem | undefined {
  for (const [what, oldMap, newMap] of [
    ['label', chaperoneEntries(oldPod.metadata?.labels), chaperoneEntries(newPod.metadata?.labels)],
    [
      'annotation',
      chaperoneEntries(oldPod.metadata?.annotations),
      chaperoneEntries(newPod.metadata?.annotations),
    ],
  ] as const) {
    for (const [k, v] of oldMap) {
      if (!newMap.has(k)) return { reason: 'marks_changed', why: `remove its ${what} ${k}` };
      if (newMap.get(k) !== v) return { reason: 'marks_changed', why: `change its ${what} ${k}` };
    }
    for (const k of newMap.keys()) {
      if (!oldMap.has(k)) return { reason: 'marks_changed', why: `add the ${what} ${k}` };
    }
  }
  for (const list of ['containers', 'initContainers'] as const) {
    const before = (Array.isArray(oldPod.spec[list]) ? (oldPod.spec[list] as Container[]) : []).find(
      (c) => isObj(c) && c.name === SIDECAR_NAME,
    );
    const after = (Array.isArray(newPod.spec[list]) ? (newPod.spec[list] as Container[]) : []).find(
      (c) => isObj(c) && c.name === SIDECAR_NAME,
    );
    if (before === undefined && after === undefined) continue;
    if (before === undefined) return { reason: 'sidecar_changed', why: `add a ${SIDECAR_NAME} container` };
    if (after === undefined)
      return { reason: 'sidecar_changed', why: `remove its ${SIDECAR_NAME} container` };
    if (!jsonEqual(before, after)) {
      const paths = diff(before, after).map((op) => op.path);
      return {
        reason: 'sidecar_changed',
        why: `change its ${SIDECAR_NAME} container (at ${paths.slice(0, 3).join(', ')})`,
      };
    }
  }
  const known = new Set(custodyViolations(oldPod, config.allowedAgentTokenAudiences));
  const added = custodyViolations(newPod, config.allowedAgentTokenAudiences).filter((v) => !known.has(v));
  if (added.length > 0) {
    return {
      reason: 'custody',
      why: `let an agent container read a Kubernetes credential (${added.join('; ')})`,
    };
  }
  return undefined;
}

/** Whether a pod carries any mark of injection. */
function wasInjected(pod: Pod): boolean {
  return (
    pod.metadata?.labels?.[INJECTED_LABEL] === 'true' ||
    pod.metadata?.annotations?.[STATUS_ANNOTATION] !== undefined ||
    hasSidecar(pod)
  );
}

function ephemeralContainersOf(o: Record<string, unknown>): unknown {
  // Kubernetes < 1.22 sends an EphemeralContainers object, later versions the Pod.
  if (Array.isArray(o.ephemeralContainers)) return o.ephemeralContainers;
  return isObj(o.spec) ? (o.spec.ephemeralContainers ?? []) : [];
}

function labelsOf(o: unknown): Record<string, string> {
  const meta = isObj(o) ? o.metadata : undefined;
  const labels = isObj(meta) ? meta.labels : undefined;
  if (!isObj(labels)) return {};
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(labels)) if (typeof v === 'string') out[k] = v;
  return out;
}

function nameOf(o: unknown): string | undefined {
  const meta = isObj(o) ? o.metadata : undefined;
  return isObj(meta) && typeof meta.name === 'string' ? meta.name : undefined;
}

/** The decision for one validating AdmissionRequest, without side effects. */
export function validate(req: AdmissionRequest, settings: ValidationSettings): ValidationOutcome {
  const uid = typeof req?.uid === 'string' ? req.uid : '';
  const config = settings.injection;
  const malformed = (message: string): ValidationOutcome => ({
    response: deny(
      uid,
      400,
      `chaperone: ${message}; the request cannot be checked, so it is refused (an agent pod must never start unguarded)`,
    ),
    result: 'denied',
    reason: 'malformed',
  });
  const ignored = (reason: ValidationPass): ValidationOutcome => ({
    response: { uid, allowed: true },
    result: 'ignored',
    reason,
  });
  const admitted = (reason: ValidationPass): ValidationOutcome => ({
    response: { uid, allowed: true },
    result: 'admitted',
    reason,
  });
  /** Denied, unless the requester is exempt: then admitted with a warning. */
  const refuse = (problem: Problem, message: string, exemptNote: string): ValidationOutcome => {
    const exemption = exemptionOf(req.userInfo, settings.exemptions);
    if (exemption) {
      return {
        response: {
          uid,
          allowed: true,
          warnings: [warning(`chaperone: admitted because ${exemption} is exempt: ${exemptNote}`)],
        },
        result: 'exempt',
        reason: problem.reason,
      };
    }
    return { response: deny(uid, 403, message), result: 'denied', reason: problem.reason };
  };

  try {
    if (!isObj(req) || !isObj(req.kind)) return malformed('the AdmissionRequest has no kind');
    const resource = isObj(req.resource) ? req.resource : undefined;
    const core = resource ? resource.group === '' : req.kind.group === '';
    const isPods = core && (resource ? resource.resource === 'pods' : req.kind.kind === 'Pod');
    const isNamespaces =
      core && (resource ? resource.resource === 'namespaces' : req.kind.kind === 'Namespace');
    const sub = req.subResource ?? '';

    if (isPods) {
      const namespace = req.namespace ?? '';
      if (!namespace) return malformed('a pod request without a namespace');
      if (config.excludedNamespaces.includes(namespace)) return ignored('excluded_namespace');

      if (sub === 'ephemeralcontainers' && req.operation === 'UPDATE') {
        if (!isObj(req.object) || !isObj(req.oldObject))
          return malformed('an ephemeral-containers update without the object and the old object');
        if (jsonEqual(ephemeralContainersOf(req.oldObject), ephemeralContainersOf(req.object)))
          return admitted('guard_intact');
        const name = req.name ?? nameOf(req.oldObject) ?? '(unnamed)';
        const problem: Problem = {
          reason: 'ephemeral_containers',
          why: 'add or change ephemeral containers, which can share the sidecar’s processes or mount its volumes and so read its credentials',
        };
        return refuse(
          problem,
          `chaperone: pod ${name} in namespace ${namespace}, which is opted in to Chaperone: this request would ${problem.why}. Debug from a namespace that is not opted in, or ${EXEMPTION_HINT}; requester: ${requester(req)}.`,
          `pod ${name}: ephemeral containers changed in an opted-in namespace`,
        );
      }
      // The status subresource can change labels and annotations (the spec is kept).
      if (sub !== '' && sub !== 'status') return ignored('not_validated');

      if (req.operation === 'CREATE' && sub === '') {
        if (!isPodShape(req.object)) return malformed('the pod has no spec.containers list');
        const pod = req.object;
        const problem = creationProblem(pod, namespace, config);
        if (!problem) return admitted('injected');
        const name = podName(pod, req);
        return refuse(
          problem,
          `chaperone: pod ${name} would run without the Chaperone sidecar in namespace ${namespace}, which is opted in to Chaperone (${INJECT_LABEL}=${INJECT_ENABLED}): ${problem.why}. An agent pod must never start unguarded. ${problem.fix ? `${problem.fix} ` : ''}To run it unguarded, create it in a namespace that is not opted in, or ${EXEMPTION_HINT}; requester: ${requester(req)}.`,
          `pod ${name} runs without the Chaperone sidecar (${problem.reason})`,
        );
      }
      if (req.operation === 'UPDATE') {
        if (!isPodShape(req.object) || !isPodShape(req.oldObject))
          return malformed('a pod update without the pod and the old pod (spec.containers)');
        if (!wasInjected(req.oldObject)) return admitted('never_injected');
        const problem = updateProblem(req.oldObject, req.object, config);
        if (!problem) return admitted('guard_intact');
        const name = podName(req.oldObject, req);
        return refuse(
          problem,
          `chaperone: pod ${name} in namespace ${namespace} is guarded by Chaperone, and this update would ${problem.why}, which takes it out of the guard. Only an identity the cluster admin exempted may do that (injector settings --exempt-users, --exempt-groups); requester: ${requester(req)}. To run a pod without the sidecar, create it in a namespace that is not opted in.`,
          `pod ${name}: the update would ${problem.why}`,
        );
      }
      return ignored('not_validated');
    }

    // `status` and `finalize` can change a namespace's labels too.
    if (isNamespaces && ['', 'status', 'finalize'].includes(sub) && req.operation === 'UPDATE') {
      if (!isObj(req.object) || !isObj(req.oldObject))
        return malformed('a namespace update without the namespace and the old namespace');
      const selector = namespaceSelector(settings.revision, config.excludedNamespaces);
      const name = nameOf(req.oldObject) ?? req.name ?? '(unnamed)';
      const oldLabels = labelsOf(req.oldObject);
      if (config.excludedNamespaces.includes(name)) return ignored('excluded_namespace');
      if (unmetRequirement(selector, oldLabels) !== undefined) return ignored('not_opted_in');
      const unmet = unmetRequirement(selector, labelsOf(req.object));
      if (unmet === undefined) return admitted('stays_opted_in');
      const problem: Problem = {
        reason: 'namespace_opt_out',
        why: `take it out of Chaperone (${unmet})`,
      };
      return refuse(
        problem,
        `chaperone: namespace ${name} is opted in to Chaperone, and this update would ${problem.why}: new pods there would start without the sidecar. Only an identity the cluster admin exempted may do that (injector settings --exempt-users, --exempt-groups); requester: ${requester(req)}.`,
        `namespace ${name} leaves Chaperone (${unmet})`,
      );
    }
    return ignored('not_validated');
  } catch (err) {
    const e = toChaperoneError(err);
    return {
      response: deny(
        uid,
        500,
        `chaperone: the injector could not check this request and will not admit it unchecked: ${e.message}`,
      ),
      result: 'denied',
      reason: 'error',
    };
  }
}
