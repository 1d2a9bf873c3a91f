/**
 * An independent check of credential custody on a pod — meant for the pod
 * as the API server stores it, after built-in admission has run again. Used
 * as a last assertion in `mutate`, by `check-inject` on live pods, and by the
 * end-to-end tests.
 */
import type { Pod } from '../k8s-types.ts';
import { SIDECAR_NAME, TOKEN_VOLUME } from '../names.ts';
import { InjectionRejected } from './injection-error.ts';
import { declaredDatabaseSecrets } from './pod-overrides.ts';
import { isTokenSecretName } from './token-secret-name.ts';

/**
 * Every way an agent container of `pod` can read a Kubernetes credential or a
 * declared database's credentials; empty when custody holds.
 */
export function custodyViolations(pod: Pod, allowedAudiences: readonly string[] = []): string[] {
  const spec = pod.spec;
  const out: string[] = [];
  const sa = spec.serviceAccountName ?? spec.serviceAccount ?? 'default';
  const containers = [...(spec.initContainers ?? []), ...spec.containers];
  if (!containers.some((c) => c.name === SIDECAR_NAME))
    out.push('the pod has no chaperone-sidecar container');
  if (spec.automountServiceAccountToken !== false) {
    out.push(
      'automountServiceAccountToken is not false: built-in admission would mount the token into containers',
    );
  }
  for (const c of containers) {
    if (c.name === SIDECAR_NAME) continue;
    for (const m of c.volumeMounts ?? []) {
      const v = spec.volumes?.find((x) => x.name === m.name);
      if (!v) continue;
      if (v.name === TOKEN_VOLUME) {
        out.push(`container ${c.name} mounts the sidecar's token volume at ${m.mountPath}`);
        continue;
      }
      const token = v.projected?.sources?.find(
        (s) =>
          s.serviceAccountToken &&
          !(s.serviceAccountToken.audience && allowedAudiences.includes(s.serviceAccountToken.audience)),
      );
      if (token)
        out.push(
          `container ${c.name} mounts projected service-account token volume ${v.name} at ${m.mountPath}`,
        );
      if (v.secret?.secretName && isTokenSecretName(v.secret.secretName, sa)) {
        out.push(
          `container ${c.name} mounts service-account token Secret ${v.secret.secretName} at ${m.mountPath}`,
        );
      }
    }
  }
  out.push(...databaseSecretReads(pod, declaredDatabaseSecrets(pod)));
  return out;
}

/**
 * Every way an agent container of `pod` reads one of `secrets` (the declared
 * databases' Secrets, which belong to the sidecar): a volume (secret or
 * projected) it mounts, an env `secretKeyRef`, an `envFrom` secretRef.
 */
export function databaseSecretReads(pod: Pod, secrets: readonly string[]): string[] {
  if (secrets.length === 0) return [];
  const spec = pod.spec;
  const inVolume = new Map<string, string>();
  for (const v of spec.volumes ?? []) {
    const names = [v.secret?.secretName, ...(v.projected?.sources ?? []).map((s) => s.secret?.name)];
    const found = names.find((n): n is string => n !== undefined && secrets.includes(n));
    if (found) inVolume.set(v.name, found);
  }
  const out: string[] = [];
  for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
    if (c.name === SIDECAR_NAME) continue;
    for (const m of c.volumeMounts ?? []) {
      const secret = inVolume.get(m.name);
      if (secret)
        out.push(`container ${c.name} mounts Secret ${secret} (volume ${m.name}) at ${m.mountPath}`);
    }
    for (const e of c.env ?? []) {
      const secret = e.valueFrom?.secretKeyRef?.name;
      if (secret && secrets.includes(secret))
        out.push(`container ${c.name} reads Secret ${secret} into env ${e.name}`);
    }
    for (const f of c.envFrom ?? []) {
      const secret = f.secretRef?.name;
      if (secret && secrets.includes(secret))
        out.push(`container ${c.name} imports Secret ${secret} into its env (envFrom)`);
    }
  }
  return out;
}

/** Throws when custody does not hold: a pod is never admitted half-guarded. */
export function custodyCheck(pod: Pod, allowedAudiences: readonly string[] = []): void {
  const v = custodyViolations(pod, allowedAudiences);
  if (v.length > 0)
    throw new InjectionRejected('spec', `credential custody could not be established: ${v.join('; ')}`);
}
