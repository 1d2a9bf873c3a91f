/**
 * Redirect: every agent container and init container reaches the Kubernetes
 * API (and declared databases) through the sidecar, with no code change.
 * In-cluster clients (client-go, @kubernetes/client-node, the Python client,
 * kubectl) read KUBERNETES_SERVICE_HOST/PORT and the CA and token files at the
 * service-account path; env declared on a container wins over the service
 * env the kubelet adds.
 */
import type { Container, EnvVar, VolumeMount } from './k8s-types.ts';
import { AGENT_SA_VOLUME, SERVICE_ACCOUNT_PATH } from './names.ts';
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

/** Sets each variable: replaced where the container already declares it (keeping its position), else appended. */
function setEnv(container: Container, vars: readonly EnvVar[]): void {
  const env = container.env ? [...container.env] : [];
  for (const v of vars) {
    const i = env.findIndex((e) => e.name === v.name);
    if (i === -1) env.push(v);
    else {
      env[i] = v;
      // Later duplicates would win over ours in the kubelet: drop them.
      for (let j = env.length - 1; j > i; j--) if (env[j]?.name === v.name) env.splice(j, 1);
    }
  }
  container.env = env;
}

/** The agent's view of the service-account directory: the sidecar's CA, a placeholder token, the namespace. */
export function placeholderMount(): VolumeMount {
  return { name: AGENT_SA_VOLUME, mountPath: SERVICE_ACCOUNT_PATH, readOnly: true };
}

function setPlaceholderMount(container: Container, desired: VolumeMount): void {
  const mounts = container.volumeMounts ? [...container.volumeMounts] : [];
  const i = mounts.findIndex((m) => m.name === desired.name);
  if (i === -1) mounts.push(desired);
  else {
    mounts[i] = desired;
    for (let j = mounts.length - 1; j > i; j--) if (mounts[j]?.name === desired.name) mounts.splice(j, 1);
  }
  container.volumeMounts = mounts;
}

/**
 * Points `container` (a copy: changed in place) at the sidecar. `env` and
 * `mount` come from `agentEnv` and `placeholderMount`, built once per
 * settings and shared, frozen, between pods (sidecar-memo.ts).
 */
export function redirectAgent(container: Container, env: readonly EnvVar[], mount: VolumeMount): void {
  setEnv(container, env);
  setPlaceholderMount(container, mount);
}
