/**
 * The injection itself: a pure function from a pod to the injected pod (or
 * the reasons it is left alone). No I/O, clock or randomness: the webhook,
 * `check-inject` and the golden tests call this same function.
 *
 * `mutate` normalises: whatever the input — a fresh pod, an injected one, one
 * with a stale or forged sidecar or status annotation — the output satisfies
 * the injection's invariants, and a pod that already does is returned
 * unchanged (`already_injected`). So injecting twice is a no-op and
 * `reinvocationPolicy: IfNeeded` is safe.
 */
import type { Pod } from '../k8s-types.ts';
import { DEFAULT_CONTAINER_ANNOTATION, INJECTED_LABEL, SIDECAR_NAME, STATUS_ANNOTATION } from '../names.ts';
import { enforceCustody } from './custody.ts';
import { custodyCheck, databaseSecretReads } from './custody-check.ts';
import type { InjectionConfig } from './injection-config.ts';
import { InjectionRejected } from './injection-error.ts';
import { jsonEqual } from './json-value.ts';
import { isOptedOut, OVERRIDE_ANNOTATIONS, resolvePodSettings } from './pod-overrides.ts';
import { redirectAgent, setByName } from './redirect.ts';
import { sidecarFor } from './sidecar-memo.ts';
import type { SkipReason } from './skip-reasons.ts';
import { previousRemovedVolumes } from './status-annotation.ts';

export interface MutateContext {
  /** The namespace of the request (a pod being created may not name it). */
  readonly namespace?: string;
}

export interface MutateResult {
  /** The injected pod, or the input itself when skipped. */
  readonly pod: Pod;
  /** Empty when the pod was injected. */
  readonly skipReasons: readonly SkipReason[];
}

function checkShape(pod: unknown): asserts pod is Pod {
  const p = pod as Pod;
  if (typeof p !== 'object' || p === null || typeof p.spec !== 'object' || p.spec === null) {
    throw new InjectionRejected('spec', 'the object is not a pod (no spec)');
  }
  if (!Array.isArray(p.spec.containers)) throw new InjectionRejected('spec.containers', 'must be a list');
  for (const list of [p.spec.containers, p.spec.initContainers ?? []]) {
    if (!Array.isArray(list)) throw new InjectionRejected('spec.initContainers', 'must be a list');
    for (const c of list) {
      if (typeof c !== 'object' || c === null || typeof c.name !== 'string') {
        throw new InjectionRejected('spec.containers', 'every container needs a name');
      }
    }
  }
}

export function mutate(input: Pod, config: InjectionConfig, ctx: MutateContext = {}): MutateResult {
  checkShape(input);
  const namespace = ctx.namespace ?? input.metadata?.namespace;
  const skip: SkipReason[] = [];
  if (namespace !== undefined && config.excludedNamespaces.includes(namespace))
    skip.push('excluded_namespace');
  if (isOptedOut(input)) skip.push('opted_out');
  if (input.spec.hostNetwork === true) skip.push('host_network');
  if (skip.length > 0) return { pod: input, skipReasons: skip };

  const settings = resolvePodSettings(input, config);
  const secretReads = databaseSecretReads(
    input,
    settings.databases.map((d) => d.secretName),
  );
  if (secretReads.length > 0) {
    throw new InjectionRejected(
      OVERRIDE_ANNOTATIONS.databases,
      `${secretReads.join('; ')}: a declared database's Secret is for the Chaperone sidecar only (agents connect through it, with no password); remove that reference`,
    );
  }
  if (input.spec.shareProcessNamespace === true) {
    throw new InjectionRejected(
      'spec.shareProcessNamespace',
      'is true: agent processes could read the sidecar’s credentials through /proc; remove it (or opt the pod out)',
    );
  }

  // Copy-on-write: the objects injection changes are copied (the pod itself,
  // its metadata and spec, each agent container; the volume list is rebuilt
  // by enforceCustody and setByName, never changed in place); everything
  // else is shared with the input, which is never modified. Unchanged subtrees
  // then compare (and diff) by reference.
  const spec: Pod['spec'] = { ...input.spec };
  const pod: Pod = { ...input, metadata: { ...(input.metadata ?? {}) }, spec };
  // Any earlier (or forged) sidecar is rebuilt from scratch.
  spec.containers = input.spec.containers.filter((c) => c.name !== SIDECAR_NAME).map((c) => ({ ...c }));
  const init = (input.spec.initContainers ?? [])
    .filter((c) => c.name !== SIDECAR_NAME)
    .map((c) => ({ ...c }));
  if (init.length > 0) spec.initContainers = init;
  else delete spec.initContainers;
  if (spec.containers.length === 0) {
    throw new InjectionRejected('spec.containers', 'the pod has no container besides the Chaperone sidecar');
  }

  const { removedVolumes } = enforceCustody(pod, config);
  const built = sidecarFor(settings, config);
  const { sidecar, volumes } = built;
  spec.volumes = setByName(spec.volumes, volumes);
  for (const c of init) redirectAgent(c, built.agentEnv, built.agentMount);
  for (const c of spec.containers) redirectAgent(c, built.agentEnv, built.agentMount);

  const agents = spec.containers;
  if (settings.mode === 'native') {
    spec.initContainers = [sidecar, ...init];
  } else {
    spec.containers = [sidecar, ...spec.containers];
  }

  const meta = pod.metadata as NonNullable<Pod['metadata']>;
  meta.labels = { ...(meta.labels ?? {}), [INJECTED_LABEL]: 'true' };
  const annotations = { ...(meta.annotations ?? {}) };
  const removed = previousRemovedVolumes(annotations[STATUS_ANNOTATION]);
  for (const r of removedVolumes) if (!removed.includes(r)) removed.push(r);
  annotations[STATUS_ANNOTATION] = built.status(removed);
  // `kubectl exec/logs` without -c must never land in the sidecar.
  const chosen = annotations[DEFAULT_CONTAINER_ANNOTATION];
  if (chosen === undefined || chosen === SIDECAR_NAME || !agents.some((c) => c.name === chosen)) {
    annotations[DEFAULT_CONTAINER_ANNOTATION] = agents[0]?.name ?? '';
  }
  meta.annotations = annotations;

  custodyCheck(pod, config.allowedAgentTokenAudiences);
  // Only a pod that already carried the marks can have come out unchanged.
  const marked =
    input.metadata?.labels?.[INJECTED_LABEL] === 'true' &&
    input.metadata.annotations?.[STATUS_ANNOTATION] !== undefined;
  if (marked && jsonEqual(pod, input)) return { pod: input, skipReasons: ['already_injected'] };
  return { pod, skipReasons: [] };
}
