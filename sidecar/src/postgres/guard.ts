/**
 * The PostgreSQL guard: one loopback listener per declared database, each
 * connection a PostgresSession to the database its Secret names. Started by
 * main.ts when the pod declares databases (`--databases name=port,…`, each
 * Secret mounted at `<databases-dir>/<name>/`).
 */
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { createSecureContext } from 'node:tls';
import { ConfigError, type Logger, type SelfProtection } from '@chaperone/shared';
import type { KeyPairPem } from '@chaperone/shared/tls';
import type { Spool } from '../audit/spool.ts';
import type { Identity } from '../identity.ts';
import { listen } from '../listen.ts';
import type { SidecarMetrics } from '../metrics.ts';
import type { PolicyStore } from '../policy-store.ts';
import type { ReviewClient } from '../review/review-client.ts';
import { Catalog } from './catalog.ts';
import { CredentialStore } from './credentials.ts';
import { CancelRegistry, MAX_PARSED_SQL_BYTES, PostgresSession, STARTUP_TIMEOUT_MS } from './session.ts';
import { SqlClassifier } from './sql-classifier.ts';
import { cancelUpstream } from './upstream.ts';

/**
 * How long the catalog's answers about a database's relations and functions
 * are trusted (catalog.ts): a change made outside the guard (a column renamed
 * by a migration) is seen after this at the latest; changes made through the
 * guard are seen at once.
 */
const CATALOG_TTL_MS = 30_000;

export interface DeclaredDatabase {
  readonly name: string;
  readonly port: number;
}

const NAME = /^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$/;

/** `orders=5432` entries, as the injector writes them into CHAPERONE_DATABASES. */
export function parseDeclaredDatabases(entries: readonly string[]): DeclaredDatabase[] {
  const out: DeclaredDatabase[] = [];
  for (const entry of entries) {
    const m = /^([^=]+)=(\d+)$/.exec(entry.trim());
    if (!m) throw new ConfigError(`--databases: "${entry}" is not name=port (example: orders=5432)`);
    const [, name, portText] = m as unknown as [string, string, string];
    const port = Number(portText);
    if (!NAME.test(name))
      throw new ConfigError(`--databases: "${name}" must be a lower-case DNS label of at most 40 characters`);
    if (port < 1 || port > 65535)
      throw new ConfigError(`--databases: port ${port} of "${name}" is not 1 to 65535`);
    if (out.some((d) => d.name === name)) throw new ConfigError(`--databases: "${name}" is declared twice`);
    if (out.some((d) => d.port === port))
      throw new ConfigError(`--databases: port ${port} is given to two databases`);
    out.push({ name, port });
  }
  return out;
}

export interface PostgresGuardOptions {
  readonly databases: readonly DeclaredDatabase[];
  /** Where each database's Secret is mounted, as `<dir>/<name>/`. */
  readonly databasesDir: string;
  /** Loopback addresses to listen on. */
  readonly hosts: readonly string[];
  readonly policy: PolicyStore;
  readonly protection: SelfProtection;
  readonly identity: Identity;
  readonly spool: Spool;
  readonly failOpen: boolean;
  readonly collector?: { readonly maxLagMs: number; readonly behindSince: () => number | undefined };
  readonly metrics: SidecarMetrics;
  readonly log: Logger;
  /** The pod's local TLS identity (absent: agents get plain connections only). */
  readonly tls?: KeyPairPem;
  /** `offer`: answer SSLRequest with TLS; `direct`: only clients that open with TLS get it. */
  readonly tlsMode: 'direct' | 'offer';
  readonly maxMessageBytes: number;
  /** Query strings longer than this are refused unread (session.ts MAX_PARSED_SQL_BYTES). */
  readonly maxParsedSqlBytes?: number;
  readonly connectTimeoutMs: number;
  /** How long a client may take to finish its start-up (session.ts STARTUP_TIMEOUT_MS). */
  readonly startupTimeoutMs?: number;
  /** How long the catalog's answers are trusted (CATALOG_TTL_MS). */
  readonly catalogTtlMs?: number;
  /** Agent connections served at once per declared database (MAX_CONNECTIONS_PER_DATABASE). */
  readonly maxConnections?: number;
  readonly credentialsPollMs: number;
  /** Holds statements a review rule matches until a human decides (absent: they are denied). */
  readonly reviews?: ReviewClient;
}

export interface PostgresGuard {
  /** The port each database listens on (as bound: 0 in the declaration means any free port). */
  readonly ports: ReadonlyMap<string, number>;
  close(): Promise<void>;
}

/** Agent connections accepted per declared database and listener at once; more are closed. */
export const MAX_CONNECTIONS_PER_DATABASE = 256;

/**
 * Why statements cannot be recorded now: the spool is full or failing, or
 * the collector has been behind for longer than allowed. Statements are then
 * refused (fail closed), unless fail-open is configured for the spool.
 */
export interface AuditRefusal {
  /** The reason label of chaperone_audit_unrecordable_requests_total, as the Kubernetes path counts it. */
  readonly reason: 'spool_full' | 'spool_write_failed' | 'collector_behind';
  readonly message: string;
}

export function auditRefusal(
  spool: Spool,
  failOpen: boolean,
  collector: PostgresGuardOptions['collector'],
  now = Date.now(),
): AuditRefusal | undefined {
  if (!failOpen && !spool.hasCapacity()) {
    return {
      reason: 'spool_full',
      message: `the audit spool is full (${spool.depth} events not yet delivered to the collector); statements are refused until they are, because unrecorded statements are not allowed`,
    };
  }
  if (!failOpen && spool.writeFailure !== undefined) {
    return {
      reason: 'spool_write_failed',
      message: `the last write to the audit spool failed (${spool.writeFailure}); statements are refused until an event can be written again`,
    };
  }
  if (collector && collector.maxLagMs > 0) {
    const since = collector.behindSince();
    if (since !== undefined && now - since > collector.maxLagMs) {
      return {
        reason: 'collector_behind',
        message: `the audit collector has not acknowledged this pod's events for ${Math.round((now - since) / 1000)} s (the limit is ${Math.round(collector.maxLagMs / 1000)} s); statements are refused until it does`,
      };
    }
  }
  return undefined;
}

/** The refusal's message, counted as the Kubernetes path counts requests it cannot record (the alerts read it). */
export function countedAuditRefusal(
  refusal: AuditRefusal | undefined,
  metrics: SidecarMetrics,
): string | undefined {
  if (!refusal) return undefined;
  metrics.auditGateRefused.inc({ reason: refusal.reason, outcome: 'refused' });
  if (refusal.reason === 'spool_full') metrics.spoolRefused.inc({ outcome: 'refused' });
  return refusal.message;
}

export async function startPostgresGuard(o: PostgresGuardOptions): Promise<PostgresGuard> {
  const cap = o.maxConnections ?? MAX_CONNECTIONS_PER_DATABASE;
  const classifier = await SqlClassifier.create();
  const cancels = new CancelRegistry();
  const context = o.tls
    ? createSecureContext({ cert: o.tls.cert, key: o.tls.key, minVersion: 'TLSv1.2' })
    : undefined;
  const servers: Server[] = [];
  const stores: CredentialStore[] = [];
  const catalogs: Catalog[] = [];
  const sockets = new Set<Socket>();
  const ports = new Map<string, number>();
  const close = async () => {
    for (const s of stores) s.stop();
    for (const c of catalogs) c.close();
    const closing = servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
    for (const s of sockets) s.destroy();
    await Promise.all(closing);
  };
  try {
    for (const db of o.databases) {
      const log = o.log.child({ database: db.name });
      const credentials = new CredentialStore(db.name, join(o.databasesDir, db.name), log);
      credentials.watch(o.credentialsPollMs);
      stores.push(credentials);
      const catalog = new Catalog({
        credentials: () => credentials.current,
        connectTimeoutMs: o.connectTimeoutMs,
        maxMessageBytes: o.maxMessageBytes,
        ttlMs: o.catalogTtlMs ?? CATALOG_TTL_MS,
        log,
      });
      catalogs.push(catalog);
      let open = 0;
      const onConnection = (socket: Socket) => {
        // Past the cap a client is told so in its own protocol (at its startup message, as the
        // server says it); past twice the cap, a flood, connections are closed unread.
        if (open >= 2 * cap) {
          socket.destroy();
          return;
        }
        const refuse =
          open >= cap
            ? `too many connections to database "${db.name}": the sidecar serves at most ${cap} at once (--max-database-connections); close idle connections or use a pool`
            : undefined;
        open++;
        sockets.add(socket);
        socket.once('close', () => {
          open--;
          sockets.delete(socket);
          log.debug({ open }, 'database connection closed');
        });
        new PostgresSession(socket, {
          database: db.name,
          credentials,
          classifier,
          policy: o.policy,
          protection: o.protection,
          identity: o.identity,
          spool: o.spool,
          auditRefusal: () => countedAuditRefusal(auditRefusal(o.spool, o.failOpen, o.collector), o.metrics),
          failOpen: o.failOpen,
          metrics: o.metrics,
          log,
          cancels,
          cancel: (t) => cancelUpstream(t.credentials, t.processId, t.secretKey, o.connectTimeoutMs),
          ...(context ? { tls: { context, offer: o.tlsMode === 'offer' } } : {}),
          maxMessageBytes: o.maxMessageBytes,
          maxParsedSqlBytes: o.maxParsedSqlBytes ?? MAX_PARSED_SQL_BYTES,
          connectTimeoutMs: o.connectTimeoutMs,
          startupTimeoutMs: o.startupTimeoutMs ?? STARTUP_TIMEOUT_MS,
          ...(refuse ? { refuse } : {}),
          catalog,
          ...(o.reviews ? { reviews: o.reviews } : {}),
        });
      };
      let port = db.port;
      for (const host of o.hosts) {
        // Bounded (onConnection): each connection holds an upstream connection and buffers; the
        // server's own max_connections is usually far lower, so this only stops a flood from exhausting memory.
        const server = createServer(onConnection);
        try {
          port = await listen(server, host, port);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          // No IPv6 on this host: serve IPv4 only.
          if (host.includes(':') && (code === 'EADDRNOTAVAIL' || code === 'EAFNOSUPPORT')) continue;
          throw err;
        }
        servers.push(server);
      }
      ports.set(db.name, port);
    }
  } catch (err) {
    await close();
    throw err;
  }
  return { ports, close };
}
