/**
 * Assembles a running collector from a validated config, the process logger
 * and the process metrics registry: store, token verifier, write queue,
 * ingest WebSocket on one HTTP(S) listener and the query API on another (the
 * agents' network policy opens only the ingest port), metrics on their own
 * port, forwarders and retention in the background.
 */
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import {
  ChaperoneError,
  ConfigError,
  type Logger,
  type MetricsServer,
  type Registry,
  serveMetrics,
} from '@chaperone/shared';
import { asStatus, KubeApiError, KubeClient, resolveKubeConnection } from '@chaperone/shared/kube';
import type { JSONWebKeySet } from 'jose';
import { createApprovalMetrics } from './approvals/approval-metrics.ts';
import { ApprovalService } from './approvals/approval-service.ts';
import { ApprovalSocket } from './approvals/approval-socket.ts';
import { approvalWebhook } from './approvals/approval-webhook.ts';
import { AccessReview } from './auth/access-review.ts';
import { ApprovalAccess } from './auth/approval-access.ts';
import { type ApproverAuthenticator, approverAuth } from './auth/approver-auth.ts';
import { JwksVerifier } from './auth/jwks-verifier.ts';
import { kubePodLookup, PodAdmission } from './auth/pod-admission.ts';
import {
  oidcAuth,
  parseGroupNamespaces,
  parseQueryTokens,
  type QueryAuthenticator,
  scopedTokenAuth,
  staticTokenAuth,
} from './auth/query-auth.ts';
import { ReaderAccess } from './auth/reader-access.ts';
import { readerAuth } from './auth/reader-auth.ts';
import type { TokenVerifier } from './auth/sidecar-identity.ts';
import { TokenReviewVerifier } from './auth/token-review-verifier.ts';
import { type CollectorMetrics, createCollectorMetrics } from './collector-metrics.ts';
import {
  type CollectorConfig,
  checkCollectorConfig,
  queryListenHost,
  queryRbacEnabled,
  usesApiServer,
} from './config.ts';
import { openConsole, withConsole } from './console/index.ts';
import { falcoSink } from './forward/falco-sink.ts';
import { Forwarder } from './forward/forwarder.ts';
import { lokiSink } from './forward/loki-sink.ts';
import { attachHttpEntry } from './http-entry.ts';
import { IngestServer } from './ingest/ingest-server.ts';
import { groupCommitConcurrency, WriteQueue } from './ingest/write-queue.ts';
import { createCheckpointWriter } from './integrity/checkpoints-writer.ts';
import { createApprovalRoutes } from './query/approval-routes.ts';
import { createHttpApi, createIngestPortApi } from './query/http-api.ts';
import { PostgresStore } from './store/postgres-store.ts';
import { Retention } from './store/retention.ts';
import { SqliteStore } from './store/sqlite-store.ts';
import type { AuditStore } from './store/store.ts';

export interface CollectorDeps {
  readonly logger: Logger;
  readonly registry: Registry;
  /**
   * The process environment, read once by the command: a kubeconfig's exec
   * credential plugin runs with it (default: none, so the plugin gets only
   * the variables its kubeconfig entry names).
   */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

export interface RunningCollector {
  /** Base URL of ingest (and its probes), e.g. http://127.0.0.1:8443 */
  readonly url: string;
  /** Base URL of the query API, e.g. http://127.0.0.1:8444 */
  readonly queryUrl: string;
  readonly metricsUrl: string;
  readonly store: AuditStore;
  close(): Promise<void>;
}

export async function openStore(c: CollectorConfig): Promise<AuditStore> {
  if (c.storage === 'postgres') {
    if (!c.postgresUrl) throw new ConfigError('--storage postgres needs --postgres-url');
    return PostgresStore.open({ url: c.postgresUrl, poolSize: c.postgresPoolSize });
  }
  return new SqliteStore({ dataDir: c.dataDir });
}

function readSecretFile(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (err) {
    throw new ConfigError(`cannot read ${what} from ${path}: ${(err as Error).message}`);
  }
}

function tokenFile(path: string | undefined, what: string): (() => string | undefined) | undefined {
  if (!path) return undefined;
  readSecretFile(path, what); // fail at start, not at the first send
  return () => readSecretFile(path, what);
}

/**
 * The API server client, when the collector talks to it (TokenReview, pod
 * admission, the issuer's keys): the kubeconfig, or --kube-api-server with
 * --kube-ca-file and --kube-token-file (in a pod, the service account's).
 */
function kubeClient(c: CollectorConfig, env: CollectorDeps['env']): KubeClient | undefined {
  if (!usesApiServer(c)) return undefined;
  // The token file is re-read as it rotates, and a failed re-read keeps the last token
  // (the API server's 401 then says what is wrong); one that cannot be read at all fails here.
  if (!c.kubeconfig) readSecretFile(c.kubeTokenFile, "the collector's API server token (--kube-token-file)");
  const connection = resolveKubeConnection(
    {
      ...(c.kubeconfig ? { kubeconfig: c.kubeconfig } : {}),
      ...(c.kubeApiServer ? { server: c.kubeApiServer } : {}),
      caFile: c.kubeCaFile,
      tokenFile: c.kubeTokenFile,
    },
    env ?? {},
  );
  return new KubeClient(connection, { userAgent: 'chaperone-collector' });
}

/** `url`'s path below the API server's address (which may carry a path prefix), or undefined when elsewhere. */
function apiServerPath(server: string, url: string): string | undefined {
  const s = new URL(server);
  const u = new URL(url);
  const prefix = s.pathname.replace(/\/+$/, '');
  if (u.origin !== s.origin || !u.pathname.startsWith(`${prefix}/`)) return undefined;
  return `${u.pathname.slice(prefix.length)}${u.search}`;
}

function createVerifier(c: CollectorConfig, logger: Logger, kube: KubeClient | undefined): TokenVerifier {
  if (c.ingestAuth === 'tokenreview')
    return new TokenReviewVerifier({ kube: kube as KubeClient, audience: c.tokenAudience });
  const jwksUrl = c.jwksUrl ?? `${(kube as KubeClient).connection.server}/openid/v1/jwks`;
  const onApiServer = kube && apiServerPath(kube.connection.server, jwksUrl);
  const accept = 'application/jwk-set+json, application/json';
  const fetchJwks = async (): Promise<JSONWebKeySet> => {
    if (kube && onApiServer) {
      // The API server answers 406 unless the JWK-set media type is acceptable.
      const res = await kube.request('GET', onApiServer, { accept, timeoutMs: 10_000 });
      if (res.status !== 200) throw new KubeApiError('GET', onApiServer, res.status, asStatus(res.body));
      return res.body as JSONWebKeySet;
    }
    const res = await fetch(jwksUrl, { headers: { accept }, signal: AbortSignal.timeout(10_000) });
    if (!res.ok) throw new ChaperoneError('unavailable', `GET ${jwksUrl} answered HTTP ${res.status}`);
    return (await res.json()) as JSONWebKeySet;
  };
  return new JwksVerifier({ fetchJwks, issuer: c.tokenIssuer, audience: c.tokenAudience, logger });
}

function createQueryAuth(c: CollectorConfig): QueryAuthenticator {
  if (c.queryAuth === 'oidc') {
    return oidcAuth({
      issuer: c.oidcIssuer as string,
      audience: c.oidcAudience as string,
      allowedGroups: c.oidcAllowedGroups,
      groupsClaim: c.oidcGroupsClaim,
      ...(c.oidcGroupNamespaces
        ? {
            groupNamespaces: parseGroupNamespaces(
              readSecretFile(c.oidcGroupNamespaces, 'the OIDC group namespaces'),
              c.oidcGroupNamespaces,
            ),
          }
        : {}),
    });
  }
  if (c.queryTokensFile)
    return scopedTokenAuth(
      parseQueryTokens(readSecretFile(c.queryTokensFile, 'the query tokens'), c.queryTokensFile),
    );
  const token = c.queryToken ?? readSecretFile(c.queryTokenFile as string, 'the query token');
  return staticTokenAuth(token);
}

/**
 * How approvers authenticate: their Kubernetes token (TokenReview), or an
 * OIDC ID token of the query API's issuer. Group restrictions and namespace
 * scopes of query tokens do not apply: RBAC decides who approves where.
 */
function createApproverAuth(
  c: CollectorConfig,
  kube: KubeClient,
  allowedGroups: readonly string[] = [],
): ApproverAuthenticator {
  if (c.queryAuth !== 'oidc') return approverAuth({ kube });
  const issuer = c.oidcIssuer as string;
  return approverAuth({
    kube,
    oidc: {
      issuer,
      auth: oidcAuth({
        issuer,
        audience: c.oidcAudience as string,
        allowedGroups,
        groupsClaim: c.oidcGroupsClaim,
        usernameClaim: c.oidcUsernameClaim,
      }),
      prefixes: { usernamePrefix: c.oidcUsernamePrefix, groupsPrefix: c.oidcGroupsPrefix },
    },
  });
}

/**
 * The query API's readers with --query-rbac (reader-auth.ts has the order
 * tokens are tried in): the configured tokens, or OIDC scoped by
 * --oidc-group-namespaces, exactly as without it; Kubernetes tokens and
 * otherwise OIDC ID tokens (still held to --oidc-allowed-groups), scoped by
 * RBAC over the namespaces the store holds events of.
 */
function createReaderAuth(
  c: CollectorConfig,
  kube: KubeClient,
  configured: QueryAuthenticator,
  store: AuditStore,
): QueryAuthenticator {
  const cacheMs = c.queryRbacCache;
  const access = new ReaderAccess({
    // One answer per identity and namespace: room for a few hundred namespaces times a few hundred readers.
    review: new AccessReview({ kube, cacheMs, maxCacheEntries: 100_000 }),
    knownNamespaces: async () => (await store.listChains()).map((chain) => chain.owner.namespace),
    namespacesCacheMs: Math.min(cacheMs, 5_000),
  });
  const scopedOidc = c.queryAuth === 'oidc' && c.oidcGroupNamespaces !== undefined;
  return readerAuth({
    ...(c.queryAuth === 'static' ? { tokens: configured } : {}),
    ...(scopedOidc ? { oidc: { issuer: c.oidcIssuer as string, auth: configured } } : {}),
    identities: scopedOidc ? approverAuth({ kube }) : createApproverAuth(c, kube, c.oidcAllowedGroups),
    access,
    cacheMs,
  });
}

function listen(server: Server, host: string, port: number): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}

async function refreshStoreStats(
  store: AuditStore,
  metrics: CollectorMetrics,
  logger: Logger,
): Promise<void> {
  try {
    const s = await store.stats();
    metrics.storeEvents.set(s.events);
    metrics.storeBytes.set(s.bytes);
  } catch (err) {
    logger.warn({ err }, 'reading store statistics failed');
  }
}

export async function startCollector(c: CollectorConfig, deps: CollectorDeps): Promise<RunningCollector> {
  checkCollectorConfig(c);
  const { logger, registry } = deps;
  const kube = kubeClient(c, deps.env);
  const verifier = createVerifier(c, logger, kube);
  // Only pods Chaperone injected in opted-in namespaces may ship events (pod-admission.ts).
  const admission = kube ? new PodAdmission({ lookup: kubePodLookup(kube) }) : undefined;
  if (!admission)
    logger.warn(
      'no Kubernetes API access (only --jwks-url): sidecar tokens are verified, but whether their pods were injected in opted-in namespaces is not checked',
    );
  const configuredQueryAuth = createQueryAuth(c);
  const readers = kube !== undefined && queryRbacEnabled(c);
  const tls =
    c.tlsCertFile && c.tlsKeyFile
      ? {
          cert: readSecretFile(c.tlsCertFile, 'the TLS certificate'),
          key: readSecretFile(c.tlsKeyFile, 'the TLS key'),
        }
      : undefined;
  const falcoToken = tokenFile(c.falcoTokenFile, 'the Falco token');
  const lokiToken = tokenFile(c.lokiTokenFile, 'the Loki token');

  const store = await openStore(c);
  const cleanup: (() => Promise<void>)[] = [() => store.close()];
  // After ingest has closed (its admissions may still be asking), before the store.
  if (kube) cleanup.unshift(() => kube.close());
  try {
    const metrics = createCollectorMetrics(registry);
    const queue = new WriteQueue({
      store,
      logger,
      metrics,
      maxEvents: c.maxQueueEvents,
      maxBytes: c.maxQueueBytes,
      groupEvents: c.groupCommitEvents,
      concurrency: groupCommitConcurrency(store),
    });
    const ingest = new IngestServer({
      verifier,
      ...(admission ? { admission } : {}),
      store,
      queue,
      logger: logger.child({ surface: 'ingest' }),
      metrics,
    });
    // Approvals: RBAC (SubjectAccessReview) decides who approves, so they need the API server.
    let approvals: { service: ApprovalService; socket: ApprovalSocket } | undefined;
    if (kube) {
      const approvalLogger = logger.child({ surface: 'approvals' });
      const service = new ApprovalService({
        store: store.approvals,
        access: new ApprovalAccess({ kube }),
        metrics: createApprovalMetrics(registry, store.approvals),
        logger: approvalLogger,
        maxPendingPerPod: c.maxPendingApprovalsPerPod,
        maxPendingPerNamespace: c.maxPendingApprovalsPerNamespace,
        ...(c.approvalWebhookUrl
          ? {
              notify: approvalWebhook({
                url: c.approvalWebhookUrl,
                ...(c.approvalPageUrl ? { pageUrl: c.approvalPageUrl } : {}),
                logger: approvalLogger,
              }),
            }
          : {}),
      });
      await service.start();
      cleanup.unshift(async () => service.stop());
      const socket = new ApprovalSocket({
        service,
        verifier,
        ...(admission ? { admission } : {}),
        logger: approvalLogger,
      });
      approvals = { service, socket };
    } else logger.warn('no Kubernetes API access: approvals (the review action) are not served');
    // Made before the query API, whose chain route checks events against its signed checkpoints; started below.
    const checkpoints = createCheckpointWriter(c, store, logger);
    const api = createHttpApi({
      store,
      ...(checkpoints ? { checkpointKey: checkpoints.publicKey } : {}),
      auth: readers ? createReaderAuth(c, kube, configuredQueryAuth, store) : configuredQueryAuth,
      logger: logger.child({ surface: 'query' }),
      metrics,
      approvals: createApprovalRoutes({
        ...(approvals && kube ? { service: approvals.service, auth: createApproverAuth(c, kube) } : {}),
        logger: logger.child({ surface: 'approvals' }),
        onAuthFailure: (code) => metrics.authFailures.inc({ surface: 'approvals', code }),
      }),
    });

    const closeServer = (server: Server, destroyAll: () => void) => () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        destroyAll();
      });
    const baseUrl = (addr: AddressInfo) =>
      `${tls ? 'https' : 'http'}://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`;

    const queryServer: Server = tls ? createHttpsServer(tls) : createHttpServer();
    // Mount point of the web console (console/README.md): /console/… here, calling the query API in-process.
    const webConsole = openConsole({
      api,
      tls: Boolean(tls),
      proxyTokenHeader: c.consoleProxyTokenHeader,
      logger: logger.child({ surface: 'console' }),
    });
    cleanup.unshift(async () => webConsole.close());
    const queryEntry = attachHttpEntry(queryServer, { api: withConsole(api, webConsole), logger });
    const queryAddr = await listen(queryServer, queryListenHost(c), c.queryListenPort);
    cleanup.unshift(closeServer(queryServer, () => queryEntry.destroyAll()));

    const server: Server = tls ? createHttpsServer(tls) : createHttpServer();
    const entry = attachHttpEntry(server, {
      api: createIngestPortApi({ store, logger, queryPort: () => queryAddr.port }),
      ingest: {
        upgrade: (req, socket, head) => ingest.handleUpgrade(req, socket, head),
        maxIngestConnections: c.maxIngestConnections,
        maxIngestConnectionsPerAddress: c.maxIngestConnectionsPerAddress,
      },
      ...(approvals
        ? {
            approvals: {
              upgrade: (req, socket, head) => approvals.socket.handleUpgrade(req, socket, head),
              maxApprovalConnections: c.maxApprovalConnections,
              maxApprovalConnectionsPerAddress: c.maxApprovalConnectionsPerAddress,
            },
          }
        : {}),
      logger,
    });
    const addr = await listen(server, c.listenHost, c.listenPort);
    cleanup.unshift(closeServer(server, () => entry.destroyAll()));
    cleanup.unshift(async () => {
      await ingest.close();
      await queue.close();
    });
    if (approvals) {
      const socket = approvals.socket;
      cleanup.unshift(() => socket.close());
    }

    const metricsServer: MetricsServer = await serveMetrics(registry, c.metricsHost, c.metricsPort);
    cleanup.unshift(() => metricsServer.close());

    await refreshStoreStats(store, metrics, logger);
    const statsTimer = setInterval(() => void refreshStoreStats(store, metrics, logger), 30_000);
    statsTimer.unref();
    cleanup.unshift(async () => clearInterval(statsTimer));

    const forwarders: Forwarder[] = [];
    const fwd = { store, logger, metrics, batchSize: c.forwardBatchSize };
    if (c.falcoUrl)
      forwarders.push(
        new Forwarder({
          ...fwd,
          sink: falcoSink({ url: c.falcoUrl, ...(falcoToken ? { token: falcoToken } : {}) }),
        }),
      );
    if (c.lokiUrl)
      forwarders.push(
        new Forwarder({
          ...fwd,
          sink: lokiSink({
            url: c.lokiUrl,
            ...(c.lokiTenant ? { tenant: c.lokiTenant } : {}),
            ...(lokiToken ? { token: lokiToken } : {}),
          }),
        }),
      );
    for (const f of forwarders) {
      f.start();
      cleanup.unshift(() => f.stop());
    }
    if (c.retention > 0) {
      const retention = new Retention({
        store,
        logger,
        metrics,
        retentionMs: c.retention,
        intervalMs: c.retentionInterval,
      });
      retention.start();
      cleanup.unshift(() => retention.stop());
    }
    if (checkpoints) {
      checkpoints.start();
      // Last before the store closes: the final checkpoint covers every batch committed.
      cleanup.splice(cleanup.length - 1, 0, () => checkpoints.stop());
    }

    const url = baseUrl(addr);
    const queryUrl = baseUrl(queryAddr);
    logger.info(
      {
        url,
        queryUrl,
        metrics: metricsServer.url,
        storage: store.backend,
        ingestAuth: c.ingestAuth,
        queryAuth: c.queryAuth,
        queryRbac: readers,
        forwarders: forwarders.map((f) => f.name),
        retentionDays: c.retention / 86_400_000,
      },
      'collector ready',
    );
    let closing: Promise<void> | undefined;
    return {
      url,
      queryUrl,
      metricsUrl: metricsServer.url,
      store,
      close() {
        closing ??= (async () => {
          for (const step of cleanup) {
            try {
              await step();
            } catch (err) {
              logger.warn({ err }, 'shutdown step failed');
            }
          }
        })();
        return closing;
      },
    };
  } catch (err) {
    for (const step of cleanup) await step().catch(() => {});
    throw err;
  }
}
