/**
 * The environment the agent's command runs with: the user's own, minus the
 * variables that carry or point at Kubernetes, cloud or database credentials,
 * plus KUBECONFIG (the agent's kubeconfig) and libpq's variables for a
 * guarded database. The removed names are listed by `chaperone local --help`
 * and printed when a session starts; an agent's own settings (its model API
 * key, PATH, HOME, …) pass unchanged.
 */

/** Removed by name: where kubectl, cloud CLIs, their credential plugins and libpq find credentials. */
export const STRIPPED_NAMES: readonly string[] = [
  // Kubernetes: another kubeconfig, the in-cluster service account.
  'KUBECONFIG',
  'KUBERNETES_SERVICE_HOST',
  'KUBERNETES_SERVICE_PORT',
  'KUBERNETES_SERVICE_PORT_HTTPS',
  'KUBERNETES_EXEC_INFO',
  // Helm: its own API server, bearer token and CA (sent as they are).
  'HELM_KUBETOKEN',
  'HELM_KUBEAPISERVER',
  'HELM_KUBECAFILE',
  'HELM_KUBECONTEXT',
  'HELM_KUBEASUSER',
  'HELM_KUBEASGROUPS',
  // AWS (aws eks get-token).
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
  'AWS_SECURITY_TOKEN',
  'AWS_WEB_IDENTITY_TOKEN_FILE',
  'AWS_CONTAINER_CREDENTIALS_FULL_URI',
  'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI',
  'AWS_CONTAINER_AUTHORIZATION_TOKEN',
  // Google Cloud (gke-gcloud-auth-plugin).
  'GOOGLE_APPLICATION_CREDENTIALS',
  'GOOGLE_OAUTH_ACCESS_TOKEN',
  'CLOUDSDK_AUTH_ACCESS_TOKEN',
  'CLOUDSDK_AUTH_ACCESS_TOKEN_FILE',
  'CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE',
  // Azure (kubelogin).
  'AZURE_CLIENT_SECRET',
  'AZURE_CLIENT_CERTIFICATE_PATH',
  'AZURE_CLIENT_CERTIFICATE_PASSWORD',
  'AZURE_FEDERATED_TOKEN_FILE',
  'AAD_SERVICE_PRINCIPAL_CLIENT_SECRET',
  'AAD_SERVICE_PRINCIPAL_CLIENT_CERTIFICATE',
  'AAD_USER_PRINCIPAL_PASSWORD',
  'ARM_CLIENT_SECRET',
  'ARM_OIDC_TOKEN',
  // DigitalOcean, Linode, OpenStack, IBM Cloud CLIs that write kubeconfigs with exec plugins.
  'DIGITALOCEAN_ACCESS_TOKEN',
  'LINODE_CLI_TOKEN',
  'OS_PASSWORD',
  'OS_APPLICATION_CREDENTIAL_SECRET',
  'OS_TOKEN',
  'IBMCLOUD_API_KEY',
  // Databases: libpq's credentials and connection settings (replaced for a guarded database).
  'PGPASSWORD',
  'PGPASSFILE',
  'PGSERVICE',
  'PGSERVICEFILE',
  'PGHOST',
  'PGHOSTADDR',
  'PGPORT',
  'PGUSER',
  'PGDATABASE',
  'PGSSLCERT',
  'PGSSLKEY',
  'DATABASE_URL',
];

export interface AgentEnvOptions {
  /** Path of the agent's kubeconfig. */
  readonly kubeconfig: string;
  /** The guarded database libpq connects to by default, if any. */
  readonly database?: {
    readonly host: string;
    readonly port: number;
    readonly sslrootcert: string;
    readonly dbname?: string;
    readonly user?: string;
  };
  /**
   * Values that must not reach the agent (the context's token, client key):
   * any variable holding one of them is removed too, whatever its name.
   */
  readonly secrets?: readonly string[];
}

export interface AgentEnv {
  readonly env: Record<string, string>;
  /** Names removed, in order. */
  readonly stripped: string[];
}

export function agentEnvironment(
  user: Readonly<Record<string, string | undefined>>,
  o: AgentEnvOptions,
): AgentEnv {
  const names = new Set(STRIPPED_NAMES);
  const secrets = (o.secrets ?? []).filter((s) => s.length >= 8);
  const env: Record<string, string> = {};
  const stripped: string[] = [];
  for (const [k, v] of Object.entries(user)) {
    if (v === undefined) continue;
    if (names.has(k) || k.startsWith('CHAPERONE_') || secrets.some((s) => v.includes(s))) {
      stripped.push(k);
      continue;
    }
    env[k] = v;
  }
  env.KUBECONFIG = o.kubeconfig;
  env.CHAPERONE_LOCAL = '1';
  if (o.database) {
    env.PGHOST = o.database.host;
    env.PGPORT = String(o.database.port);
    // The guard serves TLS with its local CA to clients that open with it (libpq 17 sslnegotiation=direct).
    env.PGSSLROOTCERT = o.database.sslrootcert;
    if (o.database.dbname) env.PGDATABASE = o.database.dbname;
    if (o.database.user) env.PGUSER = o.database.user;
  }
  return { env, stripped };
}
