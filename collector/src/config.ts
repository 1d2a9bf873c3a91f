/**
 * Configuration of `chaperone collector` (flags or CHAPERONE_* variables),
 * parsed once at start, and the cross-field checks parseConfig cannot do.
 */
import {
  boolean,
  COLLECTOR_AUDIENCE,
  ConfigError,
  type ConfigOf,
  duration,
  integer,
  LOG_LEVELS,
  list,
  oneOf,
  port,
  string,
  url,
} from '@chaperone/shared';

const DEFAULT_ISSUER = 'https://kubernetes.default.svc.cluster.local';
const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export const COLLECTOR_SCHEMA = {
  listenHost: string({ description: 'Address for ingest (sidecars connect here)', default: '0.0.0.0' }),
  listenPort: port({
    description: 'Port for ingest (WebSocket /v1/ingest) and /healthz, /readyz; never the query API',
    default: 8443,
    allowZero: true,
  }),
  queryListenHost: string({ description: 'Address for the query API (default: --listen-host)' }),
  queryListenPort: port({
    description: 'Port for the query API (/v1/events, /v1/sessions, …), apart from ingest (0: any free port)',
    default: 8444,
    allowZero: true,
  }),
  tlsCertFile: string({ description: 'PEM certificate to serve TLS with (plain HTTP without it)' }),
  tlsKeyFile: string({ description: 'PEM private key for --tls-cert-file' }),
  metricsHost: string({ description: 'Address for /metrics', default: '0.0.0.0' }),
  metricsPort: port({
    description: 'Port for /metrics and /healthz (0: any free port)',
    default: 9090,
    allowZero: true,
  }),
  storage: oneOf(['embedded', 'postgres'] as const, {
    description: 'Where events are kept: embedded (a local data directory) or postgres',
    default: 'embedded',
  }),
  dataDir: string({
    description: 'Data directory of the embedded store',
    default: '/var/lib/chaperone-collector',
  }),
  postgresUrl: string({ description: 'postgresql:// URL of the PostgreSQL store', secret: true }),
  postgresPoolSize: integer({
    description: 'PostgreSQL connections per replica',
    default: 8,
    min: 1,
    max: 100,
  }),
  ingestAuth: oneOf(['jwks', 'tokenreview'] as const, {
    description: "How sidecar tokens are verified: jwks (locally, with the issuer's keys) or tokenreview",
    default: 'jwks',
  }),
  tokenIssuer: string({ description: 'Service-account token issuer to pin', default: DEFAULT_ISSUER }),
  tokenAudience: string({ description: 'Audience sidecar tokens must carry', default: COLLECTOR_AUDIENCE }),
  jwksUrl: url({
    description: 'Issuer key set (default: <kube-api-server>/openid/v1/jwks)',
    protocols: ['https', 'http'],
  }),
  kubeconfig: string({ description: 'Kubeconfig for the API server (default: in-cluster service account)' }),
  kubeApiServer: url({
    description: 'API server URL (default: from KUBERNETES_SERVICE_HOST/PORT)',
    protocols: ['https', 'http'],
  }),
  kubeCaFile: string({ description: 'Cluster CA for the API server', default: `${SA_DIR}/ca.crt` }),
  kubeTokenFile: string({
    description: "The collector's own token for the API server",
    default: `${SA_DIR}/token`,
  }),
  queryAuth: oneOf(['static', 'oidc'] as const, {
    description: 'Query API authentication: static (bearer token) or oidc',
    default: 'static',
  }),
  queryToken: string({ description: 'Static bearer token for the query API (16+ characters)', secret: true }),
  queryTokenFile: string({ description: 'File holding the static query token (reads every namespace)' }),
  queryTokensFile: string({
    description:
      'File of query tokens, each with the namespaces it may read: lines of `<token> <name> <ns>[,<ns>…]` (`*`: every namespace)',
  }),
  queryRbac: oneOf(['auto', 'on', 'off'] as const, {
    description:
      'Kubernetes identities as query API readers, scoped by RBAC (list on events.chaperone.dev per namespace; ClusterRole chaperone-audit-reader): Kubernetes tokens checked with TokenReview, and OIDC ID tokens when there is no --oidc-group-namespaces. auto: when the collector talks to the API server; on: the same, refusing to start without it; off: only the configured tokens or OIDC',
    default: 'auto',
  }),
  queryRbacCache: duration({
    description:
      'How long a query reader’s TokenReview and RBAC answers are reused (0s: asked on every request); a removed RoleBinding stops reads within it',
    default: 10_000,
  }),
  consoleProxyTokenHeader: string({
    description:
      'Off by default. WARNING: the console (/console/) then takes each approver’s bearer token from this request header (e.g. X-Forwarded-Access-Token), set by an authenticating proxy in front of the query listener; only safe when nothing reaches the query listener except through that proxy, and the proxy drops the header from what clients send',
    pattern: /^[A-Za-z0-9-]{1,64}$/,
  }),
  oidcIssuer: url({ description: 'OIDC issuer for query API tokens', protocols: ['https', 'http'] }),
  oidcAudience: string({ description: 'Audience (client id) query API tokens must carry' }),
  oidcGroupsClaim: string({ description: 'Claim that lists the caller’s groups', default: 'groups' }),
  oidcUsernameClaim: string({
    description: 'Claim that names an OIDC approver (as the API server’s --oidc-username-claim)',
    default: 'sub',
  }),
  oidcUsernamePrefix: string({
    description:
      'Prefix of OIDC approvers’ names in SubjectAccessReviews, as the API server’s --oidc-username-prefix (- for none)',
    default: 'oidc:',
  }),
  oidcGroupsPrefix: string({
    description:
      'Prefix of OIDC approvers’ groups in SubjectAccessReviews, as the API server’s --oidc-groups-prefix (- for none)',
    default: 'oidc:',
  }),
  oidcAllowedGroups: list({
    description: 'Groups allowed to query (empty: any authenticated caller)',
    default: [],
  }),
  oidcGroupNamespaces: string({
    description:
      'File of OIDC groups, each with the namespaces it may read: lines of `<group> <ns>[,<ns>…]` (`*`: every namespace); callers in no listed group read nothing (without it: every namespace)',
  }),
  retention: duration({
    description: 'Keep events this long after receipt (0s: forever)',
    default: 90 * 86_400_000,
  }),
  retentionInterval: duration({ description: 'How often retention runs', default: 60_000 }),
  checkpointKeyFile: string({
    description:
      'Ed25519 private key (PKCS#8 PEM, e.g. a mounted Secret) that signs checkpoints of the chain heads (embedded default: generated in the data directory)',
  }),
  checkpointLog: string({
    description:
      'Append-only file outside the database for signed checkpoints (default: <data-dir>/checkpoints.log)',
  }),
  checkpointInterval: duration({ description: 'How often chain heads are checkpointed', default: 60_000 }),
  withoutCheckpoints: boolean({
    description:
      'Run PostgreSQL storage with no --checkpoint-key-file: nothing is checkpointed, and audit verify cannot tell a deleted tail, a deleted chain or a rewritten history from an intact store',
    default: false,
  }),
  falcoUrl: url({
    description: 'Forward EventList batches to this URL (Falco k8saudit)',
    protocols: ['https', 'http'],
  }),
  falcoTokenFile: string({ description: 'Bearer token file for --falco-url' }),
  lokiUrl: url({
    description: 'Forward to this Loki (base URL; /loki/api/v1/push is added)',
    protocols: ['https', 'http'],
  }),
  lokiTenant: string({ description: 'X-Scope-OrgID for a multi-tenant Loki' }),
  lokiTokenFile: string({ description: 'Bearer token file for --loki-url' }),
  approvalWebhookUrl: url({
    description:
      'Slack-compatible incoming webhook told of every new approval request (JSON POST {"text": …}); failures are logged, never hold a request',
    protocols: ['https', 'http'],
    secret: true,
  }),
  approvalPageUrl: url({
    description: 'Base URL of the approval page; notifications link to <url>/approvals/<id>',
    protocols: ['https', 'http'],
  }),
  maxPendingApprovalsPerPod: integer({
    description: 'Approval requests one pod may have waiting at once; more are refused',
    default: 32,
    min: 1,
    max: 10_000,
  }),
  maxPendingApprovalsPerNamespace: integer({
    description: 'Approval requests the pods of one namespace may have waiting at once; more are refused',
    default: 256,
    min: 1,
    max: 100_000,
  }),
  maxApprovalConnections: integer({
    description:
      'Approval connections (one per held action, open or being verified) at once; more are answered 503',
    default: 4096,
    min: 1,
  }),
  maxApprovalConnectionsPerAddress: integer({
    description: 'Approval connections from one address (one pod) at once; more are answered 429',
    default: 64,
    min: 1,
  }),
  forwardBatchSize: integer({ description: 'Events per forwarder read', default: 500, min: 1, max: 10_000 }),
  maxQueueEvents: integer({
    description: 'Events waiting for commit before sockets stop being read',
    default: 20_000,
    min: 1000,
  }),
  maxQueueBytes: integer({
    description: 'Bytes waiting for commit before sockets stop being read',
    default: 64 * 1024 * 1024,
    min: 1024 * 1024,
  }),
  maxIngestConnections: integer({
    description: 'Ingest connections (open or being verified) at once; more are answered 503',
    default: 4096,
    min: 1,
  }),
  maxIngestConnectionsPerAddress: integer({
    description: 'Ingest connections from one address (one pod) at once; more are answered 429',
    default: 4,
    min: 1,
  }),
  groupCommitEvents: integer({
    description: 'Most events committed in one transaction',
    default: 5000,
    min: 1,
  }),
  allowInsecure: boolean({
    description: 'Serve plain HTTP on a non-loopback address (tokens cross the network in clear)',
    default: false,
  }),
  logLevel: oneOf(LOG_LEVELS, { description: 'Log level', default: 'info' }),
} as const;

export type CollectorConfig = ConfigOf<typeof COLLECTOR_SCHEMA>;

/** Checks that combinations of settings make sense; throws one ConfigError listing all problems. */
export function checkCollectorConfig(c: CollectorConfig): void {
  const problems: string[] = [];
  if (c.storage === 'postgres' && !c.postgresUrl) problems.push('--storage postgres needs --postgres-url');
  if (c.storage === 'postgres' && !c.checkpointKeyFile && !c.withoutCheckpoints)
    problems.push(
      '--storage postgres needs --checkpoint-key-file (one Ed25519 key for every replica, e.g. from a Secret: openssl genpkey -algorithm ed25519), or --without-checkpoints to run with no tamper evidence against whoever can write the database',
    );
  if (c.withoutCheckpoints && c.checkpointKeyFile)
    problems.push('--without-checkpoints and --checkpoint-key-file contradict each other: give one');
  if (Boolean(c.tlsCertFile) !== Boolean(c.tlsKeyFile))
    problems.push('--tls-cert-file and --tls-key-file go together');
  const staticSources = [c.queryToken, c.queryTokenFile, c.queryTokensFile].filter((v) => v !== undefined);
  if (c.queryAuth === 'static' && staticSources.length === 0)
    problems.push('--query-auth static needs --query-token, --query-token-file or --query-tokens-file');
  if (staticSources.length > 1)
    problems.push('set only one of --query-token, --query-token-file and --query-tokens-file');
  if (c.queryToken !== undefined && c.queryToken.length < 16)
    problems.push('--query-token must be at least 16 characters');
  if (c.queryAuth === 'oidc' && (!c.oidcIssuer || !c.oidcAudience))
    problems.push('--query-auth oidc needs --oidc-issuer and --oidc-audience');
  if (c.queryAuth !== 'oidc' && c.oidcGroupNamespaces)
    problems.push(
      '--oidc-group-namespaces needs --query-auth oidc (tokens are scoped in --query-tokens-file)',
    );
  if (c.queryRbac === 'on' && !usesApiServer(c))
    problems.push(
      '--query-rbac on needs the API server (TokenReview, SubjectAccessReview): set --kubeconfig or --kube-api-server, or run in a pod without --jwks-url',
    );
  const needsKube = c.ingestAuth === 'tokenreview' || !c.jwksUrl;
  if (needsKube && !c.kubeconfig && !c.kubeApiServer)
    problems.push(
      'sidecar tokens cannot be verified: run in a pod, or set --kube-api-server or --kubeconfig (or --jwks-url for a public issuer)',
    );
  problems.push(...portClashes(c));
  const loopback = (host: string) => ['127.0.0.1', '::1', 'localhost'].includes(host);
  if (!c.tlsCertFile && !loopback(c.listenHost) && !c.allowInsecure)
    problems.push(
      `listening on ${c.listenHost} without TLS would send sidecar tokens in clear: set --tls-cert-file/--tls-key-file, listen on 127.0.0.1 behind a TLS proxy, or pass --allow-insecure`,
    );
  const queryHost = queryListenHost(c);
  if (!c.tlsCertFile && queryHost !== c.listenHost && !loopback(queryHost) && !c.allowInsecure)
    problems.push(
      `serving the query API on ${queryHost} without TLS would send query tokens and audit events in clear: set --tls-cert-file/--tls-key-file, set --query-listen-host 127.0.0.1, or pass --allow-insecure`,
    );
  if (problems.length) {
    throw new ConfigError(
      problems.length === 1
        ? `invalid configuration: ${problems[0]}`
        : `invalid configuration:\n  - ${problems.join('\n  - ')}`,
      { details: { problems } },
    );
  }
}

/**
 * Whether the collector talks to the API server: to verify sidecar tokens
 * (TokenReview, or the issuer's keys there when no --jwks-url names them),
 * or because it was told where the API server is.
 */
export function usesApiServer(c: CollectorConfig): boolean {
  return c.ingestAuth === 'tokenreview' || !c.jwksUrl || Boolean(c.kubeconfig || c.kubeApiServer);
}

/** Whether Kubernetes identities read the query API, scoped by RBAC (--query-rbac). */
export function queryRbacEnabled(c: CollectorConfig): boolean {
  return c.queryRbac === 'on' || (c.queryRbac === 'auto' && usesApiServer(c));
}

/** Where the query API listens: --query-listen-host, or the ingest address. */
export function queryListenHost(c: CollectorConfig): string {
  return c.queryListenHost ?? c.listenHost;
}

/**
 * Ingest, the query API and metrics each need a port of their own: the
 * agents' egress policy opens the ingest port, so the query API must not
 * answer there (0 picks a free port and never clashes).
 */
function portClashes(c: CollectorConfig): string[] {
  const ports = [
    ['--listen-port', c.listenPort],
    ['--query-listen-port', c.queryListenPort],
    ['--metrics-port', c.metricsPort],
  ] as const;
  const out: string[] = [];
  for (let i = 0; i < ports.length; i++)
    for (let j = i + 1; j < ports.length; j++) {
      const [a, pa] = ports[i] as (typeof ports)[number];
      const [b, pb] = ports[j] as (typeof ports)[number];
      if (pa !== 0 && pa === pb)
        out.push(
          `${a} and ${b} are both ${pa}: ingest, the query API and metrics each need their own port (the agents' network policy opens only the ingest port)`,
        );
    }
  return out;
}

/** The in-cluster API server URL from the service environment the kubelet sets. */
export function inClusterApiServer(env: Readonly<Record<string, string | undefined>>): string | undefined {
  const host = env.KUBERNETES_SERVICE_HOST;
  const p = env.KUBERNETES_SERVICE_PORT;
  if (!host || !p) return undefined;
  return `https://${host.includes(':') ? `[${host}]` : host}:${p}`;
}
