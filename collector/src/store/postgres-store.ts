/**
 * The PostgreSQL store, for production and for several stateless collector
 * replicas on one database. A group of batches is one transaction:
 *
 *  1. upsert the chains' head rows in sidecar-id order — this locks every
 *     head the group touches (same order in every replica: no deadlocks) and
 *     returns the latest committed head and owner;
 *  2. look up which of the batch's event ids are stored already;
 *  3. plan each batch (ingest-plan.ts) and write the events with one COPY
 *     (their rows were built on arrival), alerts and heads with one
 *     multi-row INSERT (unnest) each;
 *  4. COMMIT (synchronous_commit: fsynced) — only then does `append` resolve.
 *
 * The unique constraint on `audit_id` is the last line of defence: if two
 * replicas race on the same id for different chains, one transaction fails
 * and the caller retries its batches one at a time.
 */
import { createHash } from 'node:crypto';
import { ChaperoneError, GENESIS_HASH } from '@chaperone/shared';
import pg from 'pg';
import type { EventFilter } from '../events/event-filter.ts';
import { type EventRow, ROW_COLUMNS, ROW_KEYS } from '../events/event-row.ts';
import { microsToRfc3339, nowMicros, rfc3339ToMicros } from '../events/time.ts';
import type { StoredCheckpoint } from '../integrity/checkpoints.ts';
import type { ApprovalStore } from './approval-store.ts';
import { CHECKPOINT_INDEX_PAGE, indexCheckpoint, newestCheckpointSql } from './checkpoint-index.ts';
import { type ExistingEvent, planBatch } from './ingest-plan.ts';
import { type PostgresApprovals, postgresApprovals } from './postgres-approvals.ts';
import { copyFrom, copyValue } from './postgres-copy.ts';
import {
  POSTGRES_CHECKPOINT_INDEX_VERSION,
  POSTGRES_MIGRATIONS,
  POSTGRES_ROLLUP_VERSION,
} from './postgres-schema.ts';
import { addFilter, encodeTimeCursor, POSTGRES, SqlBuilder, timeOrderedQuery } from './query-sql.ts';
import {
  appendRecordingVia,
  compareChunk,
  type HeldRecording,
  planRecordingChunk,
} from './recording-append.ts';
import { readRecordingBytes, readRecordingInfo } from './recording-read.ts';
import { BACKFILL_PAGE, planRollups, type RolledEvent, rolledFromStored } from './rollup-plan.ts';
import {
  type RunSql,
  readAccessReport,
  readOverview,
  readSessions,
  rollupPrunes,
  rollupWrites,
  type SqlStatement,
} from './rollup-sql.ts';
import type {
  AccessReport,
  AlertFilter,
  ArrivalPage,
  AuditStore,
  BatchOutcome,
  ChainHead,
  ChainInfo,
  ChainRow,
  CheckpointRow,
  EventPage,
  IncomingBatch,
  IncomingRecording,
  IncomingWrite,
  IntegrityAlert,
  OutcomeOf,
  OverviewCounts,
  QueryPage,
  Recording,
  RecordingInfo,
  RecordingOutcome,
  RollupQuery,
  SessionPage,
  StoredAlert,
  StoreStats,
} from './store.ts';
import { isRecording } from './store.ts';
import {
  ALERT_COLUMNS,
  CHAIN_COLUMNS,
  CHAIN_ROW_COLUMNS,
  CHECKPOINT_COLUMNS,
  rowToAlert,
  rowToChain,
  rowToChainRow,
  rowToCheckpoint,
  rowToRecording,
} from './store-rows.ts';

type Row = Record<string, unknown>;

const INT8_OID = 20;
/** BIGINT columns hold µs timestamps and ids well below 2^53: read them as numbers. */
const TYPES = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID && format !== 'binary'
      ? (v: string) => Number(v)
      : pg.types.getTypeParser(oid, format ?? 'text')) as typeof pg.types.getTypeParser,
};

const MIGRATION_LOCK = '7364012783413141569'; // arbitrary, fixed: serialises replicas migrating at once

function leaseKey(name: string): string {
  return createHash('sha256').update(`chaperone-collector:${name}`).digest().readBigInt64BE(0).toString();
}

function encodeArrival(txid: string, id: string): string {
  return Buffer.from(`x:${txid}:${id}`).toString('base64url');
}

function decodeArrival(cursor: string | undefined): { txid: string; id: string } {
  if (cursor === undefined) return { txid: '0', id: '0' };
  const m = /^x:(\d+):(\d+)$/.exec(Buffer.from(cursor, 'base64url').toString());
  if (!m) throw new ChaperoneError('validation_failed', 'cursor is not a PostgreSQL-store arrival cursor');
  return { txid: m[1] as string, id: m[2] as string };
}

export interface PostgresStoreOptions {
  /** postgresql://user:password@host:port/database */
  url: string;
  poolSize?: number;
  /** Don't run migrations (offline tools); fail if the schema is not current. */
  noMigrate?: boolean;
}

export class PostgresStore implements AuditStore {
  readonly backend = 'postgres' as const;
  readonly #pool: pg.Pool;
  readonly #url: string;
  #leaseClient: pg.Client | undefined;
  readonly #leases = new Set<string>();
  #closed = false;
  readonly #approvals: PostgresApprovals;

  private constructor(url: string, pool: pg.Pool) {
    this.#url = url;
    this.#pool = pool;
    this.#approvals = postgresApprovals(pool, url);
  }

  get approvals(): ApprovalStore {
    return this.#approvals.store;
  }

  static async open(opts: PostgresStoreOptions): Promise<PostgresStore> {
    const pool = new pg.Pool({
      connectionString: opts.url,
      max: opts.poolSize ?? 8,
      types: TYPES,
      application_name: 'chaperone-collector',
      connectionTimeoutMillis: 10_000,
    });
    // An idle client that loses its connection must not crash the process.
    pool.on('error', () => {});
    const store = new PostgresStore(opts.url, pool);
    try {
      await store.#migrate(opts.noMigrate === true);
    } catch (err) {
      await pool.end();
      throw err;
    }
    return store;
  }

  async #migrate(checkOnly: boolean): Promise<void> {
    await this.#tx(async (c) => {
      await c.query('SELECT pg_advisory_xact_lock($1::bigint)', [MIGRATION_LOCK]);
      await c.query(
        'CREATE TABLE IF NOT EXISTS schema_version (version INT NOT NULL, applied_us BIGINT NOT NULL)',
      );
      const r = await c.query('SELECT coalesce(max(version), 0) AS v FROM schema_version');
      const current = Number(r.rows[0].v);
      const latest = POSTGRES_MIGRATIONS.length;
      if (current > latest) {
        throw new ChaperoneError(
          'config_invalid',
          `the PostgreSQL audit store has schema version ${current}, newer than this collector's ${latest}: upgrade the collector`,
        );
      }
      if (checkOnly && current < latest) {
        throw new ChaperoneError(
          'config_invalid',
          `the PostgreSQL audit store has schema version ${current}; start a collector once to migrate it to ${latest}`,
        );
      }
      for (let v = current + 1; v <= latest; v++) {
        await c.query(POSTGRES_MIGRATIONS[v - 1] as string);
        if (v === POSTGRES_ROLLUP_VERSION) await backfillRollups(c);
        if (v === POSTGRES_CHECKPOINT_INDEX_VERSION) await backfillCheckpointIndex(c);
        await c.query('INSERT INTO schema_version (version, applied_us) VALUES ($1, $2)', [v, nowMicros()]);
      }
    });
  }

  async schemaVersion(): Promise<number> {
    const r = await this.#pool.query('SELECT max(version) AS v FROM schema_version');
    return Number(r.rows[0].v);
  }

  async #tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const c = await this.#pool.connect();
    let broken: Error | undefined;
    try {
      await c.query('BEGIN');
      const out = await fn(c);
      await c.query('COMMIT');
      return out;
    } catch (err) {
      try {
        await c.query('ROLLBACK');
      } catch (rollbackErr) {
        broken = rollbackErr as Error;
      }
      throw err;
    } finally {
      c.release(broken);
    }
  }

  async chain(sidecarId: string): Promise<ChainInfo | undefined> {
    const r = await this.#pool.query(`SELECT ${CHAIN_COLUMNS} FROM chains WHERE sidecar_id = $1`, [
      sidecarId,
    ]);
    return r.rows[0] ? rowToChain(r.rows[0]) : undefined;
  }

  async listChains(): Promise<readonly ChainInfo[]> {
    const r = await this.#pool.query(`SELECT ${CHAIN_COLUMNS} FROM chains ORDER BY sidecar_id`);
    return r.rows.map(rowToChain);
  }

  async append(batches: readonly IncomingBatch[]): Promise<readonly BatchOutcome[]> {
    return this.commit(batches);
  }

  async commit<W extends IncomingWrite>(writes: readonly W[]): Promise<readonly OutcomeOf<W>[]> {
    if (writes.length === 0) return [];
    return this.#tx(async (c) => {
      const batches: IncomingBatch[] = [];
      const chunks: IncomingRecording[] = [];
      for (const w of writes) {
        if (isRecording(w)) chunks.push(w);
        else batches.push(w);
      }
      // Events first (chain heads locked before any recording row), so a chunk sees the events of its group.
      const stored = batches.length > 0 ? await this.#appendBatches(c, batches) : [];
      const refused = new Set(
        batches.filter((_, i) => stored[i]?.kind === 'rejected').map((b) => b.sidecarId),
      );
      const recorded = await this.#recordChunks(c, chunks, refused);
      let b = 0;
      let r = 0;
      return writes.map((w) => (isRecording(w) ? recorded[r++] : stored[b++])) as OutcomeOf<W>[];
    });
  }

  /**
   * Recording chunks inside the group's transaction: each session's row locked
   * in session-id order (the same order in every replica: no deadlocks), its
   * chunks decided in arrival order (recording-append.ts).
   */
  async #recordChunks(
    c: pg.PoolClient,
    chunks: readonly IncomingRecording[],
    refused: ReadonlySet<string>,
  ): Promise<RecordingOutcome[]> {
    const out = new Map<IncomingRecording, RecordingOutcome>();
    const bySession = new Map<string, IncomingRecording[]>();
    for (const w of chunks) bySession.set(w.sessionId, [...(bySession.get(w.sessionId) ?? []), w]);
    for (const sessionId of [...bySession.keys()].sort()) {
      let held = await lockRecording(c, sessionId);
      for (const original of bySession.get(sessionId) as IncomingRecording[]) {
        const w = refused.has(original.sidecarId) ? { ...original, afterLoss: true } : original;
        const named =
          held !== undefined ||
          (
            await c.query('SELECT 1 FROM events WHERE session_id = $1 AND sidecar_id = $2 LIMIT 1', [
              sessionId,
              w.sidecarId,
            ])
          ).rows.length > 0;
        let plan = planRecordingChunk(w, held, named);
        const bytes = Buffer.byteLength(w.data, 'utf8');
        if (plan.kind === 'create') {
          const made = await c.query(
            `INSERT INTO recordings (session_id, sidecar_id, namespace, pod, size, updated_us)
             VALUES ($1, $2, $3, $4, 0, $5) ON CONFLICT (session_id) DO NOTHING RETURNING size`,
            [sessionId, w.sidecarId, w.identity.namespace, w.identity.pod, w.receivedUs],
          );
          if (made.rows.length === 0) {
            // Another replica created it meanwhile: decide again against its row.
            held = await lockRecording(c, sessionId);
            plan = planRecordingChunk(w, held, named);
          }
        }
        if (plan.kind === 'refused') {
          out.set(original, plan);
          continue;
        }
        if (plan.kind === 'compare') {
          const r = await c.query(
            'SELECT start_byte, data FROM recording_chunks WHERE session_id = $1 AND start_byte < $2 AND start_byte + bytes > $3 ORDER BY start_byte',
            [sessionId, w.offset + bytes, w.offset],
          );
          out.set(
            original,
            compareChunk(
              w,
              plan.size,
              r.rows.map((x) => ({ start: Number(x.start_byte), data: String(x.data) })),
            ),
          );
          continue;
        }
        const size = (plan.kind === 'append' ? plan.size : 0) + bytes;
        await c.query(
          'INSERT INTO recording_chunks (session_id, start_byte, bytes, data) VALUES ($1, $2, $3, $4)',
          [sessionId, w.offset, bytes, w.data],
        );
        await c.query('UPDATE recordings SET size = $2, updated_us = $3 WHERE session_id = $1', [
          sessionId,
          size,
          w.receivedUs,
        ]);
        held = { sidecarId: held?.sidecarId ?? w.sidecarId, size };
        out.set(original, { kind: 'recorded', size, duplicate: false });
      }
    }
    return chunks.map((w) => out.get(w) as RecordingOutcome);
  }

  async #appendBatches(c: pg.PoolClient, batches: readonly IncomingBatch[]): Promise<BatchOutcome[]> {
    const firstOf = new Map<string, IncomingBatch>();
    for (const b of batches) if (!firstOf.has(b.sidecarId)) firstOf.set(b.sidecarId, b);
    const ids = [...firstOf.keys()].sort();
    const owners = ids.map((id) => (firstOf.get(id) as IncomingBatch).identity);
    const seen = Math.max(...batches.map((b) => b.receivedUs));
    const locked = await c.query(
      `INSERT INTO chains (sidecar_id, namespace, pod, pod_uid, service_account, head_seq, head_hash, pruned_seq, pruned_hash, first_seen_us, last_seen_us)
       SELECT s, n, p, u, a, 0, $6, 0, $6, $7, $7
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) WITH ORDINALITY AS t(s, n, p, u, a, o)
        ORDER BY o
       ON CONFLICT (sidecar_id) DO UPDATE SET last_seen_us = GREATEST(chains.last_seen_us, EXCLUDED.last_seen_us)
       RETURNING ${CHAIN_COLUMNS}`,
      [
        ids,
        owners.map((o) => o.namespace),
        owners.map((o) => o.pod),
        owners.map((o) => o.podUID ?? null),
        owners.map((o) => o.serviceAccount),
        GENESIS_HASH,
        seen,
      ],
    );
    const chains = new Map<string, ChainInfo>();
    for (const r of locked.rows) {
      const info = rowToChain(r);
      chains.set(info.sidecarId, info);
    }
    const auditIds = batches.flatMap((b) => b.events.map((e) => e.auditID));
    const existing = new Map<string, ExistingEvent>();
    const found = await c.query(
      'SELECT audit_id, sidecar_id, hash FROM events WHERE audit_id = ANY($1::text[])',
      [auditIds],
    );
    for (const r of found.rows)
      existing.set(String(r.audit_id), { sidecarId: String(r.sidecar_id), hash: String(r.hash) });

    const rows: EventRow[] = [];
    const fresh: RolledEvent[] = [];
    const alerts: IntegrityAlert[] = [];
    const heads = new Map<string, { head: ChainHead; seen: number }>();
    const outcomes: BatchOutcome[] = [];
    const refused = new Set<string>(); // see SqliteStore.append
    for (const original of batches) {
      const b = refused.has(original.sidecarId) ? { ...original, rejectLeadingGap: true } : original;
      const chain = chains.get(b.sidecarId) as ChainInfo;
      const head = heads.get(b.sidecarId)?.head ?? chain.head;
      const plan = planBatch(b, { head, owner: chain.owner }, existing, microsToRfc3339(b.receivedUs));
      outcomes.push(plan);
      alerts.push(...plan.alerts);
      if (plan.kind === 'rejected') {
        refused.add(b.sidecarId);
        continue;
      }
      for (const e of plan.events) {
        rows.push(e.row);
        fresh.push(e);
        existing.set(e.auditID, { sidecarId: b.sidecarId, hash: e.chaperone.hash });
      }
      heads.set(b.sidecarId, { head: plan.head, seen: b.receivedUs });
    }
    if (rows.length) await insertEvents(c, rows);
    // Only the events newly stored are counted (never a resend's duplicates).
    if (fresh.length) await runAll(c, rollupWrites(POSTGRES, planRollups(fresh)));
    if (alerts.length) await insertAlerts(c, alerts);
    if (heads.size) {
      const entries = [...heads.entries()];
      await c.query(
        `UPDATE chains c SET head_seq = t.seq, head_hash = t.hash, last_seen_us = GREATEST(c.last_seen_us, t.seen)
           FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[]) AS t(id, seq, hash, seen)
          WHERE c.sidecar_id = t.id`,
        [
          entries.map(([id]) => id),
          entries.map(([, h]) => h.head.seq),
          entries.map(([, h]) => h.head.hash),
          entries.map(([, h]) => h.seen),
        ],
      );
    }
    return outcomes;
  }

  async recordAlerts(alerts: readonly IntegrityAlert[]): Promise<void> {
    if (alerts.length) await this.#tx((c) => insertAlerts(c, alerts));
  }

  async queryEvents(filter: EventFilter, page: QueryPage): Promise<EventPage> {
    const q = timeOrderedQuery(POSTGRES, filter, page);
    const r = await this.#pool.query(q.sql, q.params);
    const more = r.rows.length > page.limit;
    const shown = more ? r.rows.slice(0, page.limit) : r.rows;
    const last = shown.at(-1);
    return {
      events: shown.map((x) => String(x.event_json)),
      ...(more && last ? { nextCursor: encodeTimeCursor(Number(last.time_us), Number(last.id)) } : {}),
    };
  }

  async getEvent(auditID: string): Promise<string | undefined> {
    const r = await this.#pool.query('SELECT event_json FROM events WHERE audit_id = $1', [auditID]);
    return r.rows[0] ? String(r.rows[0].event_json) : undefined;
  }

  async readArrival(cursor: string | undefined, limit: number, filter?: EventFilter): Promise<ArrivalPage> {
    const after = decodeArrival(cursor);
    const b = new SqlBuilder(POSTGRES);
    b.and(`(txid, id) > (${b.p(after.txid)}::xid8, ${b.p(after.id)}::bigint)`);
    b.and('txid < pg_snapshot_xmin(pg_current_snapshot())');
    if (filter) addFilter(b, filter);
    const r = await this.#pool.query(
      `SELECT id::text AS id_text, txid::text AS txid_text, event_json FROM events ${b.whereSql()} ORDER BY events.txid, events.id LIMIT ${b.p(limit)}`,
      b.params,
    );
    const last = r.rows.at(-1);
    return {
      events: r.rows.map((x) => String(x.event_json)),
      cursor: last
        ? encodeArrival(String(last.txid_text), String(last.id_text))
        : encodeArrival(after.txid, after.id),
    };
  }

  async arrivalEnd(): Promise<string> {
    // Every transaction below the snapshot's xmin is finished; a later one is read after this cursor.
    const r = await this.#pool.query(
      `SELECT (pg_snapshot_xmin(pg_current_snapshot())::text::numeric - 1)::text AS txid`,
    );
    return encodeArrival(String(r.rows[0].txid), '9223372036854775807');
  }

  async chainRows(sidecarId: string, afterId: number, limit: number): Promise<readonly ChainRow[]> {
    const r = await this.#pool.query(
      `SELECT ${CHAIN_ROW_COLUMNS} FROM events WHERE sidecar_id = $1 AND id > $2 ORDER BY id LIMIT $3`,
      [sidecarId, afterId, limit],
    );
    return r.rows.map(rowToChainRow);
  }

  async sessionEvents(sessionId: string, limit: number): Promise<readonly string[]> {
    const r = await this.#pool.query(
      'SELECT event_json FROM events WHERE session_id = $1 ORDER BY time_us, sidecar_id, seq LIMIT $2',
      [sessionId, limit],
    );
    return r.rows.map((x) => String(x.event_json));
  }

  readonly appendRecording: AuditStore['appendRecording'] = appendRecordingVia(this);

  async getRecording(sessionId: string): Promise<Recording | undefined> {
    const r = await this.#pool.query('SELECT * FROM recordings WHERE session_id = $1', [sessionId]);
    if (!r.rows[0]) return undefined;
    const chunks = await this.#pool.query(
      'SELECT data FROM recording_chunks WHERE session_id = $1 ORDER BY start_byte',
      [sessionId],
    );
    return rowToRecording(r.rows[0], chunks.rows);
  }

  async recordingInfo(sessionId: string): Promise<RecordingInfo | undefined> {
    return readRecordingInfo(this.#read, POSTGRES, sessionId);
  }

  async readRecording(sessionId: string, offset: number, length: number): Promise<Buffer | undefined> {
    return readRecordingBytes(this.#read, POSTGRES, sessionId, offset, length);
  }

  async listAlerts(filter: AlertFilter, limit: number): Promise<readonly StoredAlert[]> {
    const b = new SqlBuilder(POSTGRES);
    if (filter.sidecarId) b.and(`sidecar_id = ${b.p(filter.sidecarId)}`);
    if (filter.namespace) b.and(`namespace = ${b.p(filter.namespace)}`);
    if (filter.kind) b.and(`kind = ${b.p(filter.kind)}`);
    if (filter.sinceUs !== undefined) b.and(`detected_us >= ${b.p(filter.sinceUs)}`);
    const r = await this.#pool.query(
      `SELECT ${ALERT_COLUMNS} FROM alerts ${b.whereSql()} ORDER BY id DESC LIMIT ${b.p(limit)}`,
      b.params,
    );
    return r.rows.map(rowToAlert);
  }

  async getForwardCursor(name: string): Promise<string | undefined> {
    const r = await this.#pool.query('SELECT cursor FROM forward_cursors WHERE name = $1', [name]);
    return r.rows[0] ? String(r.rows[0].cursor) : undefined;
  }

  async setForwardCursor(name: string, cursor: string): Promise<void> {
    await this.#pool.query(
      `INSERT INTO forward_cursors (name, cursor, updated_us) VALUES ($1, $2, $3)
       ON CONFLICT (name) DO UPDATE SET cursor = EXCLUDED.cursor, updated_us = EXCLUDED.updated_us`,
      [name, cursor, nowMicros()],
    );
  }

  async backlog(cursor: string | undefined): Promise<{ events: number; oldestReceivedUs?: number }> {
    const after = decodeArrival(cursor);
    const r = await this.#pool.query(
      'SELECT count(*)::bigint AS n, min(received_us) AS oldest FROM events WHERE (txid, id) > ($1::xid8, $2::bigint)',
      [after.txid, after.id],
    );
    const n = Number(r.rows[0].n);
    return n === 0 ? { events: 0 } : { events: n, oldestReceivedUs: Number(r.rows[0].oldest) };
  }

  async tryLease(name: string): Promise<boolean> {
    try {
      if (!this.#leaseClient) {
        const client = new pg.Client({
          connectionString: this.#url,
          application_name: 'chaperone-collector-lease',
        });
        client.on('error', () => {
          this.#leases.clear();
          if (this.#leaseClient === client) this.#leaseClient = undefined;
        });
        await client.connect();
        this.#leaseClient = client;
      }
      const client = this.#leaseClient;
      if (this.#leases.has(name)) {
        await client.query('SELECT 1'); // still connected, so still held
        return true;
      }
      const r = await client.query('SELECT pg_try_advisory_lock($1::bigint) AS ok', [leaseKey(name)]);
      if (r.rows[0].ok === true) this.#leases.add(name);
      return r.rows[0].ok === true;
    } catch {
      this.#leases.clear();
      const c = this.#leaseClient;
      this.#leaseClient = undefined;
      await c?.end().catch(() => {});
      return false;
    }
  }

  async prune(cutoffUs: number, limit: number): Promise<number> {
    return this.#tx(async (c) => {
      await c.query('DELETE FROM alerts WHERE detected_us < $1', [cutoffUs]);
      await c.query(
        'DELETE FROM recording_chunks WHERE session_id IN (SELECT session_id FROM recordings WHERE updated_us < $1)',
        [cutoffUs],
      );
      await c.query('DELETE FROM recordings WHERE updated_us < $1', [cutoffUs]);
      const r = await c.query(
        'SELECT id, sidecar_id, seq, hash, received_us FROM events ORDER BY id LIMIT $1',
        [limit],
      );
      const expired: Row[] = [];
      for (const row of r.rows) {
        if (Number(row.received_us) >= cutoffUs) break;
        expired.push(row);
      }
      // The rollups once a pass, on its last call (the one that finds fewer expired events than it may delete).
      if (expired.length < limit) await runAll(c, rollupPrunes(POSTGRES, cutoffUs));
      if (expired.length === 0) return 0;
      const lastPerChain = new Map<string, Row>();
      for (const row of expired) lastPerChain.set(String(row.sidecar_id), row);
      // Same lock order as ingest (sidecar id), so retention never deadlocks with it.
      for (const id of [...lastPerChain.keys()].sort()) {
        const row = lastPerChain.get(id) as Row;
        await c.query(
          'UPDATE chains SET pruned_seq = $1, pruned_hash = $2, pruned_id = $3 WHERE sidecar_id = $4 AND pruned_id < $3',
          [row.seq, row.hash, row.id, id],
        );
      }
      await c.query('DELETE FROM events WHERE id = ANY($1::bigint[])', [expired.map((x) => x.id)]);
      return expired.length;
    });
  }

  async stats(): Promise<StoreStats> {
    const r = await this.#pool.query(
      `SELECT (SELECT reltuples FROM pg_class WHERE oid = 'events'::regclass) AS estimate,
              pg_total_relation_size('events') + pg_total_relation_size('alerts')
                + pg_total_relation_size('chains') + pg_total_relation_size('recordings')
                + pg_total_relation_size('recording_chunks') + pg_total_relation_size('rollup_counts')
                + pg_total_relation_size('rollup_agents') + pg_total_relation_size('rollup_access')
                + pg_total_relation_size('rollup_sessions') AS bytes`,
    );
    const estimate = Number(r.rows[0].estimate);
    // Exact below a million rows; the planner's estimate above (count(*) would scan the table).
    const events =
      estimate > 1_000_000
        ? Math.round(estimate)
        : Number((await this.#pool.query('SELECT count(*)::bigint AS n FROM events')).rows[0].n);
    return { events, bytes: Number(r.rows[0].bytes) };
  }

  async appendCheckpoint(cp: StoredCheckpoint): Promise<void> {
    await this.#tx(async (c) => {
      const r = await c.query(
        'INSERT INTO checkpoints (created_us, kid, jws) VALUES ($1, $2, $3) RETURNING id',
        [cp.createdUs, cp.kid, cp.jws],
      );
      await runAll(c, indexCheckpoint(POSTGRES, Number(r.rows[0].id), cp.jws));
    });
  }

  async newestCheckpointFor(sidecarId: string): Promise<CheckpointRow | undefined> {
    const r = await this.#pool.query(newestCheckpointSql(POSTGRES), [sidecarId]);
    return r.rows[0] ? rowToCheckpoint(r.rows[0]) : undefined;
  }

  async listCheckpoints(afterId: number, limit: number): Promise<readonly CheckpointRow[]> {
    const r = await this.#pool.query(
      `SELECT ${CHECKPOINT_COLUMNS} FROM checkpoints WHERE id > $1 ORDER BY id LIMIT $2`,
      [afterId, limit],
    );
    return r.rows.map(rowToCheckpoint);
  }

  async eventHashesAt(sidecarId: string, seq: number): Promise<readonly string[]> {
    const r = await this.#pool.query(
      'SELECT hash FROM events WHERE sidecar_id = $1 AND seq = $2 ORDER BY id',
      [sidecarId, seq],
    );
    return r.rows.map((x) => String(x.hash));
  }

  readonly #read: RunSql = async (sql, params) => (await this.#pool.query(sql, params as unknown[])).rows;

  async overview(q: RollupQuery): Promise<OverviewCounts> {
    return readOverview(this.#read, POSTGRES, q);
  }

  async listSessions(
    q: RollupQuery,
    page: { limit: number; cursor?: string },
    nowUs: number,
  ): Promise<SessionPage> {
    return readSessions(this.#read, POSTGRES, q, page, nowUs);
  }

  async accessReport(q: RollupQuery): Promise<AccessReport> {
    return readAccessReport(this.#read, POSTGRES, q);
  }

  async chainEventsFrom(sidecarId: string, fromSeq: number, limit: number): Promise<readonly ChainRow[]> {
    const r = await this.#pool.query(
      `SELECT ${CHAIN_ROW_COLUMNS} FROM events WHERE sidecar_id = $1 AND seq >= $2 ORDER BY seq, id LIMIT $3`,
      [sidecarId, fromSeq, limit],
    );
    return r.rows.map(rowToChainRow);
  }

  async ping(): Promise<void> {
    await this.#pool.query('SELECT 1');
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#leases.clear();
    const c = this.#leaseClient;
    this.#leaseClient = undefined;
    await c?.end().catch(() => {});
    await this.#approvals.close();
    await this.#pool.end();
  }
}

const COPY_EVENTS = `COPY events (${ROW_COLUMNS.join(', ')}) FROM STDIN`;

/** One event row as a line of COPY's text format, columns in ROW_COLUMNS order. */
function copyLine(r: EventRow): string {
  let line = '';
  for (let i = 0; i < ROW_KEYS.length; i++)
    line += `${i > 0 ? '\t' : ''}${copyValue(r[ROW_KEYS[i] as keyof EventRow])}`;
  return `${line}\n`;
}

/**
 * Inserts event rows with one COPY (also the benchmark's anchor, so both
 * write the same rows the same way). In a transaction, a unique violation
 * (an `audit_id` stored by a racing replica) fails the whole COPY.
 */
export async function insertEvents(c: pg.ClientBase, rows: readonly EventRow[]): Promise<void> {
  const lines: string[] = [];
  for (const r of rows) lines.push(copyLine(r));
  await copyFrom(c, COPY_EVENTS, Buffer.from(lines.join('')));
}

async function insertAlerts(c: pg.PoolClient, alerts: readonly IntegrityAlert[]): Promise<void> {
  const col = <T>(f: (a: IntegrityAlert) => T) => alerts.map(f);
  await c.query(
    `INSERT INTO alerts (kind, sidecar_id, namespace, pod, seq, expected_seq, audit_id, detected_us, message)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::text[], $8::bigint[], $9::text[])`,
    [
      col((a) => a.kind),
      col((a) => a.sidecarId),
      col((a) => a.namespace),
      col((a) => a.pod),
      col((a) => a.seq ?? null),
      col((a) => a.expectedSeq ?? null),
      col((a) => a.auditID ?? null),
      col((a) => rfc3339ToMicros(a.detectedAt)),
      col((a) => a.message),
    ],
  );
}

async function runAll(c: pg.ClientBase, statements: readonly SqlStatement[]): Promise<void> {
  for (const s of statements) await c.query(s.sql, s.params as unknown[]);
}

/** Fills the rollups from every stored event (once, in the migration that creates them). */
async function backfillRollups(c: pg.ClientBase): Promise<void> {
  let after = 0;
  for (;;) {
    const r = await c.query(
      'SELECT id, received_us, event_json FROM events WHERE id > $1 ORDER BY id LIMIT $2',
      [after, BACKFILL_PAGE],
    );
    const rolled: RolledEvent[] = [];
    for (const row of r.rows) {
      after = Number(row.id);
      const e = rolledFromStored(String(row.event_json), Number(row.received_us));
      if (e) rolled.push(e);
    }
    await runAll(c, rollupWrites(POSTGRES, planRollups(rolled)));
    if (r.rows.length < BACKFILL_PAGE) break;
  }
}

/** Fills checkpoint_chains from every stored checkpoint (once, in the migration that creates it). */
async function backfillCheckpointIndex(c: pg.ClientBase): Promise<void> {
  let after = 0;
  for (;;) {
    const r = await c.query('SELECT id, jws FROM checkpoints WHERE id > $1 ORDER BY id LIMIT $2', [
      after,
      CHECKPOINT_INDEX_PAGE,
    ]);
    for (const row of r.rows) {
      after = Number(row.id);
      await runAll(c, indexCheckpoint(POSTGRES, after, String(row.jws)));
    }
    if (r.rows.length < CHECKPOINT_INDEX_PAGE) break;
  }
}

/** The recording's row, locked for this transaction (FOR UPDATE), or undefined when there is none yet. */
async function lockRecording(c: pg.PoolClient, sessionId: string): Promise<HeldRecording | undefined> {
  const r = await c.query('SELECT sidecar_id, size FROM recordings WHERE session_id = $1 FOR UPDATE', [
    sessionId,
  ]);
  const row = r.rows[0] as Row | undefined;
  return row ? { sidecarId: String(row.sidecar_id), size: Number(row.size) } : undefined;
}
