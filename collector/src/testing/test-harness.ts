/**
 * In-process collector pieces for unit tests: an embedded store in a temp
 * directory, a service-account-style issuer with its own keys (tokens carry
 * the same claims the Kubernetes TokenRequest API puts in them), the ingest
 * server and the query API on two loopback ports, wired as the collector
 * wires them (http-entry.ts): the query API is not served on the ingest port.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger, createRegistry, type Logger, type Registry } from '@chaperone/shared';
import { exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { JwksVerifier } from '../auth/jwks-verifier.ts';
import type { PodAdmission } from '../auth/pod-admission.ts';
import { type QueryAuthenticator, staticTokenAuth } from '../auth/query-auth.ts';
import { type CollectorMetrics, createCollectorMetrics } from '../collector-metrics.ts';
import { attachHttpEntry } from '../http-entry.ts';
import { IngestServer } from '../ingest/ingest-server.ts';
import { groupCommitConcurrency, WriteQueue } from '../ingest/write-queue.ts';
import { createHttpApi, createIngestPortApi } from '../query/http-api.ts';
import { SqliteStore } from '../store/sqlite-store.ts';
import type { AuditStore } from '../store/store.ts';

export const TEST_ISSUER = 'https://kubernetes.default.svc.cluster.local';
export const QUERY_TOKEN = 'test-query-token-0123456789';
/** Collector flags that put ingest, the query API and metrics on 127.0.0.1, each on a free port. */
export const LOOPBACK_LISTENERS = {
  listenHost: '127.0.0.1',
  listenPort: '0',
  queryListenPort: '0',
  metricsHost: '127.0.0.1',
  metricsPort: '0',
} as const;

export interface PodClaims {
  namespace: string;
  pod?: string;
  podUID?: string;
  serviceAccount: string;
}

type SigningKey = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];

export class TestIssuer {
  readonly kid: string;
  readonly #key: SigningKey;
  readonly jwk: JWK;

  private constructor(key: SigningKey, jwk: JWK, kid: string) {
    this.#key = key;
    this.jwk = jwk;
    this.kid = kid;
  }

  static async create(kid = 'test-key'): Promise<TestIssuer> {
    const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
    const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
    return new TestIssuer(privateKey, jwk, kid);
  }

  token(
    claims: PodClaims,
    opts: {
      audience?: string;
      issuer?: string;
      expiresInSec?: number;
      notBeforeSec?: number;
      /** Leave the uid out of the pod claim. */
      noPodUID?: boolean;
    } = {},
  ): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({
      'kubernetes.io': {
        namespace: claims.namespace,
        ...(claims.pod
          ? {
              pod: {
                name: claims.pod,
                ...(opts.noPodUID ? {} : { uid: claims.podUID ?? `${claims.pod}-uid` }),
              },
            }
          : {}),
        serviceaccount: { name: claims.serviceAccount, uid: 'sa-uid' },
      },
    })
      .setProtectedHeader({ alg: 'RS256', kid: this.kid })
      .setIssuer(opts.issuer ?? TEST_ISSUER)
      .setAudience(opts.audience ?? 'chaperone-collector')
      .setSubject(`system:serviceaccount:${claims.namespace}:${claims.serviceAccount}`)
      .setIssuedAt(now)
      .setNotBefore(now + (opts.notBeforeSec ?? 0))
      .setExpirationTime(now + (opts.expiresInSec ?? 3600))
      .sign(this.#key);
  }
}

export interface TestCollector {
  /** Ingest (WebSocket /v1/ingest) and the probes. */
  readonly url: string;
  /** The query API. */
  readonly queryUrl: string;
  readonly store: AuditStore;
  readonly queue: WriteQueue;
  readonly metrics: CollectorMetrics;
  readonly registry: Registry;
  readonly issuer: TestIssuer;
  readonly logs: string[];
  close(): Promise<void>;
}

export function memoryLogger(lines: string[]): Logger {
  return createLogger({
    name: 'collector-test',
    level: 'debug',
    destination: new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    }),
  });
}

export async function startTestCollector(
  opts: {
    wrapStore?: (s: AuditStore) => AuditStore;
    maxQueueEvents?: number;
    maxQueueBytes?: number;
    groupEvents?: number;
    admission?: PodAdmission;
    /** Query authentication (default: QUERY_TOKEN, every namespace). */
    auth?: QueryAuthenticator;
  } = {},
): Promise<TestCollector> {
  const dir = mkdtempSync(join(tmpdir(), 'chaperone-collector-'));
  const inner = new SqliteStore({ dataDir: dir });
  const store = opts.wrapStore ? opts.wrapStore(inner) : inner;
  const logs: string[] = [];
  const logger = memoryLogger(logs);
  const registry = createRegistry({ component: 'collector', defaultMetrics: false });
  const metrics = createCollectorMetrics(registry);
  const issuer = await TestIssuer.create();
  const verifier = new JwksVerifier({
    fetchJwks: async () => ({ keys: [issuer.jwk] }),
    issuer: TEST_ISSUER,
    audience: 'chaperone-collector',
    logger,
  });
  const queue = new WriteQueue({
    store,
    logger,
    metrics,
    maxEvents: opts.maxQueueEvents ?? 20_000,
    maxBytes: opts.maxQueueBytes ?? 64 * 1024 * 1024,
    groupEvents: opts.groupEvents ?? 5000,
    concurrency: groupCommitConcurrency(store),
  });
  const ingest = new IngestServer({
    verifier,
    ...(opts.admission ? { admission: opts.admission } : {}),
    store,
    queue,
    logger,
    metrics,
  });
  const api = createHttpApi({ store, auth: opts.auth ?? staticTokenAuth(QUERY_TOKEN), logger, metrics });
  const listen = async (server: Server) => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return (server.address() as AddressInfo).port;
  };
  const queryServer = createServer();
  const queryEntry = attachHttpEntry(queryServer, { api, logger });
  const queryPort = await listen(queryServer);
  const server = createServer();
  const entry = attachHttpEntry(server, {
    api: createIngestPortApi({ store, logger, queryPort: () => queryPort }),
    ingest: {
      upgrade: (req, socket, head) => ingest.handleUpgrade(req, socket, head),
      maxIngestConnections: 4096,
      maxIngestConnectionsPerAddress: 4096,
    },
    logger,
  });
  const port = await listen(server);
  const stop = (srv: Server, destroyAll: () => void) =>
    new Promise<void>((r) => {
      srv.close(() => r());
      srv.closeAllConnections();
      destroyAll();
    });
  return {
    url: `http://127.0.0.1:${port}`,
    queryUrl: `http://127.0.0.1:${queryPort}`,
    store,
    queue,
    metrics,
    registry,
    issuer,
    logs,
    async close() {
      await ingest.close();
      await queue.close();
      await Promise.all([
        stop(server, () => entry.destroyAll()),
        stop(queryServer, () => queryEntry.destroyAll()),
      ]);
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
