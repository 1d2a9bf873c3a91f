/**
 * `chaperone sidecar`: wires the parts together. Config is parsed once by the
 * CLI; the logger and metrics registry are created here and passed down.
 */
import { existsSync, readFileSync } from 'node:fs';
import {
  ChaperoneError,
  ConfigError,
  createRegistry,
  type Logger,
  type Registry,
  type SelfProtection,
  serveMetrics,
} from '@chaperone/shared';
import type { KubeConnection } from '@chaperone/shared/kube';
import { writeAgentServiceAccountDir } from './agent-sa-dir.ts';
import { AuditRecorder } from './audit/recorder.ts';
import { Shipper } from './audit/shipper.ts';
import { Spool } from './audit/spool.ts';
import type { SidecarConfig } from './config.ts';
import { buildIdentity, type Identity } from './identity.ts';
import type { KubeRequestContext } from './kube/context.ts';
import type { ExecTextDeps } from './kube/exec/text-hooks.ts';
import { loadOnce } from './kube/lazy-guard.ts';
import { kubePipeline } from './kube/pipeline.ts';
import { startKubeServers } from './kube/server.ts';
import { Upstream } from './kube/upstream.ts';
import { ensureLocalTls } from './local-tls.ts';
import { startMemoryRelease } from './memory-release.ts';
import { sidecarMetrics } from './metrics.ts';
import { PolicyStore } from './policy-store.ts';
import { ReviewClient } from './review/review-client.ts';
import { reviewMetrics } from './review/review-metrics.ts';

export interface RunningSidecar {
  readonly kubePort: number;
  readonly metricsUrl: string;
  readonly registry: Registry;
  stop(): Promise<void>;
}

function readRequired(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ChaperoneError(
      'dependency_missing',
      `cannot read ${what} at ${path}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
}

/** The exec text filters (kube/exec/text-hooks.ts), made at the first exec or attach session. */
function lazyExecTextHooks(d: ExecTextDeps) {
  // One instance for every session, however many start at once.
  const made = loadOnce(async () => (await import('./kube/exec/text-hooks.ts')).execTextHooks(d));
  return async (ctx: KubeRequestContext) => (await made())(ctx);
}

export function defaultApiServer(env: Readonly<Record<string, string | undefined>>): string | undefined {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT_HTTPS ?? env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) return undefined;
  return `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** Smallest non-zero collector bound: below it an ordinary reconnect (back-off up to 15 s, a 15 s ping) would refuse requests. */
export const MIN_COLLECTOR_MAX_LAG_MS = 30_000;

/** Start-up checks of the audit delivery settings that the schema cannot express. */
export function validateAuditBounds(
  config: Pick<SidecarConfig, 'collectorMaxLag' | 'shutdownDrainTimeout'>,
): void {
  const lag = config.collectorMaxLag;
  if (lag !== 0 && lag < MIN_COLLECTOR_MAX_LAG_MS) {
    throw new ConfigError(
      `--collector-max-lag (CHAPERONE_COLLECTOR_MAX_LAG) is ${lag} ms: it must be 0s (no bound) or at least ${MIN_COLLECTOR_MAX_LAG_MS / 1000}s, since a collector reconnect alone can take ${MIN_COLLECTOR_MAX_LAG_MS / 2000} s`,
    );
  }
  if (config.shutdownDrainTimeout > 10 * 60_000) {
    throw new ConfigError(
      `--shutdown-drain-timeout (CHAPERONE_SHUTDOWN_DRAIN_TIMEOUT) is ${config.shutdownDrainTimeout} ms: at most 10m; it must also fit in the pod's terminationGracePeriodSeconds`,
    );
  }
}

/** Outside a pod (`chaperone local`): the API server and credentials of a kubeconfig context, and who acts. */
export interface SidecarUpstreamOverride {
  readonly connection: KubeConnection;
  readonly identity: Identity;
}

export async function runSidecar(
  config: SidecarConfig,
  log: Logger,
  env: Readonly<Record<string, string | undefined>> = process.env,
  local?: SidecarUpstreamOverride,
): Promise<RunningSidecar> {
  const apiServer = local?.connection.server ?? config.apiServer ?? defaultApiServer(env);
  if (!apiServer) {
    throw new ChaperoneError(
      'config_invalid',
      'no API server: set --api-server (CHAPERONE_API_SERVER) or run in a pod (KUBERNETES_SERVICE_HOST/PORT)',
    );
  }
  validateAuditBounds(config);
  const registry = createRegistry({ component: 'sidecar' });
  const metrics = sidecarMetrics(registry, { namespace: config.podNamespace });
  const cleanups: (() => Promise<void> | void)[] = [];
  const stop = async () => {
    for (const c of cleanups.reverse()) await c();
  };
  try {
    const policy = new PolicyStore(config.policyFile, log.child({ part: 'policy' }), {
      onReload: (result, state) => {
        metrics.policyReloads.inc({ result });
        metrics.policyLoaded.set(state === 'loaded' ? 1 : 0);
      },
    });
    metrics.policyLoaded.set(policy.state === 'loaded' ? 1 : 0);
    policy.watch(config.policyPollInterval);
    cleanups.push(() => policy.stop());

    const spool = Spool.open(config.spoolDir, {
      maxBytes: config.spoolMaxBytes,
      onRecovery: (what) => log.warn({ what }, 'audit spool recovered after an unclean stop'),
      onSyncError: (err) => {
        metrics.auditWriteFailures.inc();
        log.error({ err }, 'could not flush the audit spool to disk; retrying at the next flush');
      },
      // On disk within 200 ms of being written; a spool with nothing new sets no timer.
      flushWithinMs: 200,
    });
    cleanups.push(() => spool.close());
    metrics.watchSpool(spool);

    const upstream = local
      ? new Upstream({
          url: apiServer,
          ca: local.connection.ca,
          credentials: local.connection.credentials,
          tlsServerName: local.connection.tlsServerName,
          insecureSkipTlsVerify: local.connection.insecureSkipTlsVerify,
          log: log.child({ part: 'upstream' }),
        })
      : new Upstream({
          url: apiServer,
          ca: readRequired(config.caFile, 'the cluster CA bundle'),
          tokenFile: config.tokenFile,
          log: log.child({ part: 'upstream' }),
        });
    cleanups.push(() => upstream.close());
    await upstream.ready();
    const identity =
      local?.identity ??
      buildIdentity(
        {
          name: config.podName,
          namespace: config.podNamespace,
          uid: config.podUid,
          serviceAccount: config.serviceAccount,
        },
        upstream.token || undefined,
      );
    const recorder = new AuditRecorder(spool, identity, metrics, log.child({ part: 'audit' }), {
      maxBytes: config.execRecordingMaxBytes,
    });
    // At the end (cleanups run in reverse): what running sessions' recordings hold goes to the spool.
    cleanups.push(() => recorder.flushRecordings());

    let collector: { maxLagMs: number; behindSince: () => number | undefined } | undefined;
    const collectorCa = config.collectorCaFile
      ? readRequired(config.collectorCaFile, 'the collector CA bundle')
      : undefined;
    // Reviews ask the collector over the same authenticated connection as the audit shipper.
    const reviews = new ReviewClient({
      ...(config.collectorUrl
        ? {
            collector: {
              url: config.collectorUrl,
              tokenFile: config.collectorTokenFile,
              ...(collectorCa ? { ca: collectorCa } : {}),
            },
          }
        : {}),
      metrics: reviewMetrics(registry),
      log: log.child({ part: 'review' }),
    });
    if (config.collectorUrl) {
      const shipper = new Shipper({
        url: config.collectorUrl,
        tokenFile: config.collectorTokenFile,
        ...(collectorCa ? { ca: collectorCa } : {}),
        sidecarId: identity.source.sidecarId,
        spool,
        log: log.child({ part: 'shipper' }),
        onAck: (ack) => metrics.collectorAcks.inc(ack.stored + ack.duplicates),
        onNack: (nack) => metrics.collectorNacks.inc({ code: nack.code }),
        onConnectionChange: (up) => metrics.collectorConnected.set(up ? 1 : 0),
        onConflict: (kind) => metrics.collectorHeadConflicts.inc({ kind }),
      });
      shipper.start();
      const behindSince = () => shipper.behindSince();
      metrics.watchCollector(behindSince);
      collector = { maxLagMs: config.collectorMaxLag, behindSince };
      // Runs after the listeners are closed (cleanups run in reverse): no new events, send the rest.
      cleanups.push(async () => {
        recorder.flushRecordings();
        if (spool.pending > 0 && config.shutdownDrainTimeout > 0) {
          log.info(
            { events: spool.depth, recordingChunks: spool.pendingRecordings },
            'sending the spooled audit events and recordings to the collector before exiting',
          );
          const drained = await shipper.drain(config.shutdownDrainTimeout);
          if (drained) log.info('every audit event is acknowledged by the collector');
          else
            log.warn(
              { events: spool.depth, recordingChunks: spool.pendingRecordings, dir: config.spoolDir },
              'the collector did not acknowledge every audit event in time; the rest stay in the spool and are sent at the next start',
            );
        }
        await shipper.stop();
      });
    } else {
      log.warn('no collector configured (CHAPERONE_COLLECTOR_URL): audit events stay in the local spool');
    }

    // An EC P-256 key and two certificates made natively: a few milliseconds (shared/src/tls.ts).
    const tls = config.plainHttp ? undefined : ensureLocalTls(config.tlsDir, config.podName);
    if (tls) {
      writeAgentServiceAccountDir(config.agentSaDir, tls.ca.cert, config.podNamespace);
      metrics.certificateExpiry.set(tls.leafNotAfter.getTime() / 1000);
    } else {
      log.warn('serving agents over plain HTTP (--plain-http): for testing only');
    }

    const protection: SelfProtection = {
      namespace: config.podNamespace,
      policyConfigMaps: [config.policyConfigMap],
      sidecarContainer: config.sidecarContainer,
      injectorNamespace: config.injectorNamespace,
      pod: config.podName,
    };
    const handler = kubePipeline({
      upstream,
      maxRequestBytes: config.maxRequestBytes,
      maxResponseBytes: config.maxResponseBytes,
      maxWatchEventBytes: config.maxWatchEventBytes,
      timeoutMs: config.upstreamTimeout,
      metrics,
      log: log.child({ part: 'kube' }),
      recorder,
      spool,
      failOpen: config.failOpen,
      ...(collector ? { collector } : {}),
      policy,
      protection,
      // Exec and attach sessions: output masked, input lines judged (kube/exec/text-hooks.ts).
      exec: {
        // Loaded with the first session, as the session code itself is (kube/lazy-guard.ts).
        hooks: lazyExecTextHooks({
          policy,
          protection,
          recorder,
          spool,
          upstream,
          metrics,
          log: log.child({ part: 'exec' }),
          timeoutMs: config.upstreamTimeout,
          failOpen: config.failOpen,
        }),
      },
      username: identity.user.username,
      reviews,
    });
    let databases: ReadonlyMap<string, number> | undefined;
    if (config.databases.length > 0) {
      const { parseDeclaredDatabases, startPostgresGuard } = await import('./postgres/guard.ts');
      const guard = await startPostgresGuard({
        databases: parseDeclaredDatabases(config.databases),
        databasesDir: config.databasesDir,
        hosts: config.listen,
        policy,
        protection,
        identity,
        spool,
        failOpen: config.failOpen,
        ...(collector ? { collector } : {}),
        metrics,
        log: log.child({ part: 'postgres' }),
        ...(tls ? { tls: tls.leaf } : {}),
        tlsMode: config.databaseTls,
        maxMessageBytes: config.maxSqlMessageBytes,
        maxParsedSqlBytes: config.maxSqlParseBytes,
        connectTimeoutMs: config.databaseConnectTimeout,
        startupTimeoutMs: config.databaseStartupTimeout,
        catalogTtlMs: config.databaseCatalogTtl,
        maxConnections: config.maxDatabaseConnections,
        credentialsPollMs: config.policyPollInterval,
        reviews,
      });
      cleanups.push(() => guard.close());
      databases = guard.ports;
    }
    const servers = await startKubeServers({
      hosts: config.listen,
      port: config.kubePort,
      ...(tls ? { tls: tls.leaf } : {}),
      handler,
    });
    cleanups.push(() => servers.close());
    // First at shutdown (cleanups run in reverse): held actions end as denials, then the listeners close.
    cleanups.push(() => reviews.close());
    const metricsServer = await serveMetrics(registry, config.metricsAddress, config.metricsPort);
    cleanups.push(() => metricsServer.close());
    // What start-up took, and each burst's garbage, given back once quiet (memory-release.ts).
    const memory = startMemoryRelease({
      log,
      onRelease: (r) => {
        metrics.memoryReleases.inc();
        metrics.memoryReleasedBytes.inc(r.freedBytes);
      },
    });
    cleanups.push(() => memory.stop());

    log.info(
      {
        kube: `${tls ? 'https' : 'http'}://127.0.0.1:${servers.port}`,
        metrics: metricsServer.url,
        apiServer,
        policy: policy.state,
        ...(databases ? { databases: Object.fromEntries(databases) } : {}),
        spool: { dir: config.spoolDir, unacknowledged: spool.depth },
        memoryRelease: memory.enabled,
        agentCa: tls && existsSync(config.agentSaDir) ? `${config.agentSaDir}/ca.crt` : undefined,
      },
      'sidecar ready',
    );
    return { kubePort: servers.port, metricsUrl: metricsServer.url, registry, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
