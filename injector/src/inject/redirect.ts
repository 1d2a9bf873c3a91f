/**
 * Redirect: every agent container and init container reaches the Kubernetes
 * API (and declared databases) through the sidecar, with no code change.
 * In-cluster clients (client-go, @kubernetes/client-node, the Python client,
 * kubectl) read KUBERNETES_SERVICE_HOST/PORT and the CA and token files at the
 * service-account path; env declared on a container wins over the service
 * env the kubelet adds.
 *
 * Declared databases: libpq's variables (psql, pgbench, psycopg, anything on
 * libpq; node `pg` reads the same names) point at the first database's
 * listener, and each database's URL goes into its `env=` variable
 * (`DATABASE_URL` for the first one when no entry names one). No password
 * anywhere: the sidecar answers the agent's startup with AuthenticationOk and
 * connects upstream with the Secret's user, password and database, whatever
 * the client sends — user and database carry the declared name only because
 * clients need some value (libpq would otherwise look up the container's OS
 * user, which an arbitrary UID does not have). The hop is loopback inside the
 * pod and the sidecar answers SSLRequest with N (CHAPERONE_DATABASE_TLS=direct),
 * so clients are told sslmode=disable: with `prefer`, node `pg` insists on TLS
 * and fails.
 */
import type { Container, EnvVar, VolumeMount } from '../k8s-types.ts';
import { AGENT_SA_VOLUME, SERVICE_ACCOUNT_PATH } from '../names.ts';
import type { DatabaseBinding, PodSettings } from './pod-overrides.ts';

export const LOOPBACK = '127.0.0.1';

/** What the sidecar's database listeners answer, and the sslmode that matches it on the agent side. */
export const AGENT_DATABASE_TLS = Object.freeze({ sidecar: 'direct', sslmode: 'disable' });

/** `orders-eu` → `ORDERS_EU`. */
function envName(db: string): string {
  return db.toUpperCase().replace(/-/g, '_');
}

/** The URL an agent uses for a declared database: the sidecar's listener, no password. */
export function databaseUrl(d: DatabaseBinding): string {
  // Names are DNS labels: nothing to escape.
  return `postgresql://${d.name}@${LOOPBACK}:${d.port}/${d.name}?sslmode=${AGENT_DATABASE_TLS.sslmode}`;
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
    env.push(
      { name: 'PGHOST', value: LOOPBACK },
      { name: 'PGPORT', value: String(first.port) },
      { name: 'PGDATABASE', value: first.name },
      { name: 'PGUSER', value: first.name },
      { name: 'PGSSLMODE', value: AGENT_DATABASE_TLS.sslmode },
    );
    for (const d of settings.databases) {
      env.push(
        { name: `CHAPERONE_DB_${envName(d.name)}_HOST`, value: LOOPBACK },
        { name: `CHAPERONE_DB_${envName(d.name)}_PORT`, value: String(d.port) },
      );
      if (d.urlEnv) env.push({ name: d.urlEnv, value: databaseUrl(d) });
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
