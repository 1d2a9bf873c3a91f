/**
 * Credential custody: after injection no agent container or init container
 * can read a credential the API server accepts.
 *
 * The ServiceAccount admission plugin runs before the webhook, so the pod we
 * see already carries its token volume — a projected `kube-api-access-*`
 * volume (Kubernetes >= 1.21, or 1.20 with BoundServiceAccountTokenVolume) or
 * a `<serviceaccount>-token-xxxxx` Secret volume (older) — mounted at
 * /var/run/secrets/kubernetes.io/serviceaccount. Those mounts are removed (the
 * agent gets the sidecar's placeholder there instead) and so is the volume.
 * The plugin runs again after the webhooks and would re-add a token mount to
 * every container without one at that path, so the pod also gets
 * `automountServiceAccountToken: false`.
 *
 * Any other mount of a token volume in an agent container — a projected token
 * for the API server's audience, or a service-account token Secret mounted
 * elsewhere — is a credential the user asked for explicitly: rather than drop
 * it silently, the pod is rejected with a message saying what to change.
 */
import type { Container, Pod, Volume } from '../k8s-types.ts';
import { AGENT_SA_VOLUME, SERVICE_ACCOUNT_PATH, SIDECAR_NAME, TOKEN_VOLUME } from '../names.ts';
import type { InjectionConfig } from './injection-config.ts';
import { InjectionRejected } from './injection-error.ts';
import { isSidecarOnlyVolume } from './sidecar-volumes.ts';
import { isTokenSecretName } from './token-secret-name.ts';

/** Whether a path is the service-account directory or inside it. */
function underServiceAccountPath(path: string): boolean {
  const p = path.endsWith('/') ? path.replace(/\/+$/, '') : path;
  return p === SERVICE_ACCOUNT_PATH || p.startsWith(`${SERVICE_ACCOUNT_PATH}/`);
}

/** Why a volume holds an API credential, or undefined when it does not. */
export function tokenVolumeKind(
  volume: Volume,
  serviceAccount: string,
  config: InjectionConfig,
): 'projected' | 'secret' | undefined {
  if (volume.name === TOKEN_VOLUME) return undefined; // the sidecar's own, rebuilt by mutate
  const sources = volume.projected?.sources ?? [];
  if (
    sources.some(
      (s) =>
        s.serviceAccountToken !== undefined &&
        !(
          s.serviceAccountToken.audience &&
          config.allowedAgentTokenAudiences.includes(s.serviceAccountToken.audience)
        ),
    )
  ) {
    return 'projected';
  }
  const secretName = volume.secret?.secretName;
  if (secretName && isTokenSecretName(secretName, serviceAccount)) return 'secret';
  return undefined;
}

export interface CustodyResult {
  /** Names of the token volumes removed from the pod. */
  readonly removedVolumes: readonly string[];
}

/**
 * Removes the automounted token from `pod` (in place) and rejects pods that
 * hand an agent container a credential any other way.
 */
export function enforceCustody(pod: Pod, config: InjectionConfig): CustodyResult {
  const spec = pod.spec;
  const serviceAccount = spec.serviceAccountName ?? spec.serviceAccount ?? 'default';
  const volumes = spec.volumes ?? [];
  const tokenVolumes = new Map<string, 'projected' | 'secret'>();
  for (const v of volumes) {
    const kind = tokenVolumeKind(v, serviceAccount, config);
    if (kind) tokenVolumes.set(v.name, kind);
  }
  const check = (c: Container, where: string) => {
    if (c.name === SIDECAR_NAME || !c.volumeMounts) return;
    const kept = [];
    for (const m of c.volumeMounts) {
      const token = tokenVolumes.get(m.name);
      if (token && underServiceAccountPath(m.mountPath)) continue; // the automount: replaced by the placeholder
      if (token) {
        throw new InjectionRejected(
          `${where}[${c.name}].volumeMounts[${m.name}]`,
          `mounts ${token === 'projected' ? 'a projected service-account token' : `the service-account token Secret ${volumes.find((v) => v.name === m.name)?.secret?.secretName}`} at ${m.mountPath}; an agent container must not hold a Kubernetes credential (the sidecar holds it). Remove the mount${token === 'projected' ? ', or give the token an audience listed in the injector setting --allowed-agent-token-audiences' : ''}`,
        );
      }
      if (isSidecarOnlyVolume(m.name)) {
        throw new InjectionRejected(
          `${where}[${c.name}].volumeMounts[${m.name}]`,
          `volume ${m.name} belongs to the Chaperone sidecar and cannot be mounted into an agent container`,
        );
      }
      if (m.name !== AGENT_SA_VOLUME && underServiceAccountPath(m.mountPath)) {
        throw new InjectionRejected(
          `${where}[${c.name}].volumeMounts[${m.name}]`,
          `mounts volume ${m.name} at ${m.mountPath}, which is reserved for the sidecar's service-account placeholder; mount it elsewhere`,
        );
      }
      kept.push(m);
    }
    c.volumeMounts = kept;
  };
  for (const c of spec.initContainers ?? []) check(c, 'spec.initContainers');
  for (const c of spec.containers) check(c, 'spec.containers');
  const removedVolumes: string[] = [];
  if (spec.volumes && tokenVolumes.size > 0) {
    // A token volume nothing mounts any more is dropped.
    const stillMounted = new Set<string>();
    for (const list of [spec.initContainers ?? [], spec.containers])
      for (const c of list) for (const m of c.volumeMounts ?? []) stillMounted.add(m.name);
    spec.volumes = spec.volumes.filter((v) => {
      if (tokenVolumes.has(v.name) && !stillMounted.has(v.name)) {
        removedVolumes.push(v.name);
        return false;
      }
      return true;
    });
  }
  spec.automountServiceAccountToken = false;
  return { removedVolumes };
}
