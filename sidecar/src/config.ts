/** Everything `chaperone sidecar` can be told, from flags or CHAPERONE_* variables (set by the injector). */
import {
  boolean,
  type ConfigOf,
  duration,
  integer,
  LOG_LEVELS,
  list,
  MAX_RECORDING_BYTES,
  oneOf,
  port,
  string,
  url,
} from '@chaperone/shared';

const MiB = 1024 * 1024;

export const sidecarSchema = {
  podName: string({ description: 'name of the guarded pod (downward API)', required: true }),
  podNamespace: string({ description: 'namespace of the guarded pod (downward API)', required: true }),
  podUid: string({ description: 'UID of the guarded pod (downward API)', default: '' }),
  serviceAccount: string({ description: "the pod's service account", default: 'default' }),
  sidecarContainer: string({
    description: 'name of this container (exec into it is refused)',
    default: 'chaperone-sidecar',
  }),

  listen: list({
    description: 'loopback addresses the Kubernetes API listener binds',
    default: ['127.0.0.1', '::1'],
  }),
  kubePort: port({ description: 'port of the Kubernetes API listener agents reach', default: 6443 }),
  plainHttp: boolean({
    description: 'serve the agent side over plain HTTP instead of TLS (testing only)',
    default: false,
  }),
  metricsAddress: string({ description: 'address the metrics listener binds', default: '0.0.0.0' }),
  metricsPort: port({
    description: 'port of the Prometheus metrics listener (0 = any free port)',
    default: 9090,
    allowZero: true,
  }),

  apiServer: url({
    description: 'the real API server (default: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT)',
    protocols: ['https'],
  }),
  tokenFile: string({
    description: "the sidecar's own projected service-account token (re-read when it rotates)",
    default: '/var/run/chaperone/serviceaccount/token',
  }),
  caFile: string({
    description: 'the cluster CA bundle',
    default: '/var/run/chaperone/serviceaccount/ca.crt',
  }),
  agentSaDir: string({
    description:
      'where agents find ca.crt, token and namespace (mounted at the service-account path in agent containers)',
    default: '/var/run/chaperone/agent-sa',
  }),
  tlsDir: string({
    description: 'where the sidecar keeps its per-pod CA key (a sidecar-only volume)',
    default: '/var/run/chaperone/spool/tls',
  }),

  policyFile: string({
    description: 'the GuardrailPolicy file (a mounted ConfigMap)',
    default: '/etc/chaperone/policy/policy.yaml',
  }),
  policyConfigMap: string({
    description: 'name of the policy ConfigMap (protected from changes)',
    default: 'chaperone-policy',
  }),
  injectorNamespace: string({
    description:
      "the injector's namespace: nothing in it may be changed through the guard, and pods there are never guarded",
    default: 'chaperone-system',
  }),
  policyPollInterval: duration({
    description: 'how often the policy file is checked for changes',
    default: 2000,
  }),

  spoolDir: string({ description: 'the audit spool directory', default: '/var/run/chaperone/spool/events' }),
  spoolMaxBytes: integer({
    description: 'capacity for unacknowledged audit events, in bytes',
    default: 64 * MiB,
    min: 64 * 1024,
  }),
  failOpen: boolean({
    description: 'keep serving when the audit spool is full (events are then lost)',
    default: false,
  }),
  execRecordingMaxBytes: integer({
    description:
      "size limit of one exec or attach session's recording (asciicast v2), in bytes; past it the recording stops with a marker and the session goes on",
    default: 16 * MiB,
    // Room for the header, the truncation and exit markers (asciicast.ts), and what the collector keeps.
    min: 8 * 1024,
    max: MAX_RECORDING_BYTES,
  }),

  collectorUrl: url({
    description: 'the collector (https:// or http://); unset: events stay in the spool',
    protocols: ['http', 'https', 'ws', 'wss'],
  }),
  collectorTokenFile: string({
    description: 'projected token with audience chaperone-collector',
    default: '/var/run/chaperone/serviceaccount/collector-token',
  }),
  collectorCaFile: string({ description: 'CA bundle for the collector (default: system CAs)' }),
  collectorMaxLag: duration({
    description:
      'refuse requests (fail closed) once the collector has been out of reach, or has left spooled events unacknowledged, for longer than this; 0s turns the bound off (events then wait in the spool until it is full)',
    default: 2 * 60_000,
  }),
  shutdownDrainTimeout: duration({
    description:
      "on SIGTERM, how long to keep sending spooled events to the collector before exiting (keep it under the pod's terminationGracePeriodSeconds); what is not delivered stays in the spool",
    default: 20_000,
  }),

  databases: list({
    description:
      'databases declared on the pod, as name=port: a PostgreSQL listener on each port (on the --listen addresses) guards the database whose Secret is at <databases-dir>/<name>/',
    default: [],
  }),
  databasesDir: string({
    description:
      "where each declared database's Secret is mounted (host, port, dbname, user, password, sslmode, sslrootcert, or url; re-read when it changes)",
    default: '/var/run/chaperone/databases',
  }),
  databaseTls: oneOf(['direct', 'offer'], {
    description:
      "TLS towards agents on the database listeners, with the pod's local CA: direct = only for clients that open with TLS (libpq 17 sslnegotiation=direct), SSLRequest is answered N; offer = SSLRequest is answered S too",
    default: 'direct',
  }),
  databaseConnectTimeout: duration({
    description: 'time to connect to and authenticate with a declared database',
    default: 10_000,
  }),
  maxSqlMessageBytes: integer({
    description: 'largest PostgreSQL protocol message accepted from an agent or a database (a query, a row)',
    default: 64 * MiB,
    min: 64 * 1024,
  }),
  maxSqlParseBytes: integer({
    description:
      'longest query string (simple Query or Parse) the PostgreSQL guard reads; longer ones are refused unread (the parser runs on the event loop every connection shares)',
    default: 256 * 1024,
    min: 1024,
  }),
  databaseCatalogTtl: duration({
    description:
      "how long the sidecar trusts what a database's catalog said (a relation's columns and what it reaches, for masks and rules on tables); changes made outside the guard are seen after this at the latest",
    default: 30_000,
  }),
  databaseStartupTimeout: duration({
    description: 'time a database client has to finish its start-up (SSL negotiation and startup message)',
    default: 60_000,
  }),
  maxDatabaseConnections: integer({
    description:
      'agent connections each declared database serves at once; more are refused at their startup message',
    default: 256,
    min: 1,
  }),

  maxRequestBytes: integer({ description: 'largest request body accepted', default: 3 * MiB, min: 1024 }),
  maxResponseBytes: integer({
    description: 'largest response body the sidecar reads to mask',
    default: 64 * MiB,
    min: 1024,
  }),
  maxWatchEventBytes: integer({
    description: 'largest single watch event the sidecar reads to mask',
    default: 16 * MiB,
    min: 1024,
  }),
  upstreamTimeout: duration({
    description: 'time to wait for the API server to answer (not for watch streams)',
    default: 60_000,
  }),

  logLevel: oneOf(LOG_LEVELS, { description: 'log level', default: 'info' }),
};

export type SidecarConfig = ConfigOf<typeof sidecarSchema>;
