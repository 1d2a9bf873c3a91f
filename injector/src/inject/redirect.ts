/**
 * Redirect: every agent container and init container reaches the Kubernetes
 * API (and declared databases) through the sidecar, with no code change.
 * In-cluster clients (client-go, @kubernetes/client-node, the Python client,
 * kubectl) read KUBERNETES_SERVICE_HOST/PORT and the CA and token files at the
 * service-account path; env declared on a container wins over the service
 * env the kubelet adds.
 */
import type { Container, EnvVar, VolumeMount } from '../k8s-types.ts';
import { AGENT_SA_VOLUME, SERVICE_ACCOUNT_PATH } from '../names.ts';
import type { PodSettings } from './pod-overrides.ts';

export const LOOPBACK = '127.0.0.1';

/** `orders-eu` → `ORDERS_EU`. */
function envName(db: string): string {
  return db.toUpperCase().replace(/-/g, '_');
}

export function agentEnv(settings: PodSettings): EnvVar[] {
  const port = String(settings.kubePort);
  const env: EnvVar[] = [
    { name: 'KUBERNETES_SERVICE_HOST', value: LOOPBACK },
    { name: 'KUBERNETES_SERVICE_PORT', value: port },
    { name: 'KUBERNETES_SERVICE_PORT_HTTPS', value: port },
  ];
  const first = settings.databases[0];
  if (first) {
    env.push({ name: 'PGHOST', value: LOOPBACK }, { name: 'PGPORT', value: String(first.port) });
    for (const d of settings.databases) {
      env.push(
        { name: `CHAPERONE_DB_${envName(d.name)}_HOST`, value: LOOPBACK },
        { name: `CHAPERONE_DB_${envName(d.name)}_PORT`, value: String(d.port) },
      );
    }
  }
  return env;
}

/**
 * `list` with each item set by name: replacing the first of that name
 * (keeping its position; later duplicates would win over ours in the kubelet,
 * so they are dropped), else appended.
 */
export function setByName<T extends { readonly name: string }>(
  list: readonly T[] | undefined,
  items: readonly T[],
): T[] {
  const out = list ? [...list] : [];
  for (const item of items) {
    const i = out.findIndex((e) => e.name === item.name);
    if (i === -1) {
      out.push(item);
      continue;
    }
    out[i] = item;
    for (let j = out.length - 1; j > i; j--) if (out[j]?.name === item.name) out.splice(j, 1);
  }
  return out;
}

/** The agent's view of the service-account directory: the sidecar's CA, a placeholder token, the namespace. */
export function placeholderMount(): VolumeMount {
  return { name: AGENT_SA_VOLUME, mountPath: SERVICE_ACCOUNT_PATH, readOnly: true };
}

/**
 * Points `container` (a copy: changed in place) at the sidecar. `env` and
 * `mount` come from `agentEnv` and `placeholderMount`, built once per
 * settings and shared, frozen, between pods (sidecar-memo.ts).
 */
export function redirectAgent(container: Container, env: readonly EnvVar[], mount: VolumeMount): void {
  container.env = setByName(container.env, env);
  container.volumeMounts = setByName(container.volumeMounts, [mount]);
}
