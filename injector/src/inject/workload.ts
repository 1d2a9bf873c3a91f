/**
 * Pods inside workload manifests: `check-inject -f` and the golden tests
 * accept a Pod or anything with a pod template (Deployment, StatefulSet,
 * DaemonSet, ReplicaSet, Job, CronJob, ReplicationController), as
 * `istioctl kube-inject` does.
 */
import { ValidationError } from '@chaperone/shared';
import type { ObjectMeta, Pod, PodSpec } from '../k8s-types.ts';

interface Manifest {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  spec?: Record<string, unknown>;
  [k: string]: unknown;
}

export interface PodInManifest {
  /** The pod (a Pod, or the template as a Pod in the workload's namespace). */
  readonly pod: Pod;
  /** The manifest with `pod` put back in place of the original. */
  wrap(pod: Pod): unknown;
  /** e.g. `Deployment/web` */
  readonly description: string;
}

function templatePath(kind: string): string[] | undefined {
  switch (kind) {
    case 'Pod':
      return [];
    case 'Deployment':
    case 'StatefulSet':
    case 'DaemonSet':
    case 'ReplicaSet':
    case 'ReplicationController':
    case 'Job':
      return ['spec', 'template'];
    case 'CronJob':
      return ['spec', 'jobTemplate', 'spec', 'template'];
    default:
      return undefined;
  }
}

export function podInManifest(manifest: unknown): PodInManifest {
  const m = manifest as Manifest;
  if (typeof m !== 'object' || m === null || typeof m.kind !== 'string') {
    throw new ValidationError(
      'kind',
      'the manifest has no kind: expected a Pod or a workload with a pod template',
    );
  }
  const path = templatePath(m.kind);
  if (!path) {
    throw new ValidationError(
      '',
      `${m.kind} has no pod template (expected Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job or CronJob)`,
    );
  }
  const description = `${m.kind}/${m.metadata?.name ?? m.metadata?.generateName ?? '(unnamed)'}`;
  if (path.length === 0) {
    if (typeof m.spec !== 'object' || m.spec === null)
      throw new ValidationError('spec', 'the Pod has no spec');
    return { pod: m as unknown as Pod, wrap: (pod) => pod, description };
  }
  let node: unknown = m;
  for (const key of path) {
    node = (node as Record<string, unknown> | undefined)?.[key];
    if (typeof node !== 'object' || node === null)
      throw new ValidationError(path.join('.'), `${m.kind} has no pod template`);
  }
  const template = node as { metadata?: ObjectMeta; spec?: PodSpec };
  if (!template.spec) throw new ValidationError(`${path.join('.')}.spec`, 'the pod template has no spec');
  const pod: Pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      ...(template.metadata ?? {}),
      ...(m.metadata?.namespace ? { namespace: m.metadata.namespace } : {}),
    },
    spec: template.spec,
  };
  return {
    pod,
    description,
    wrap(injected) {
      const out = structuredClone(m) as Record<string, unknown>;
      let t: Record<string, unknown> = out;
      for (const key of path) t = t[key] as Record<string, unknown>;
      const meta = { ...(injected.metadata ?? {}) };
      if (!template.metadata?.namespace) delete meta.namespace;
      t.metadata = meta;
      t.spec = injected.spec;
      return out;
    },
  };
}
