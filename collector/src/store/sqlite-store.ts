/**
 * The embedded store: Node's built-in SQLite (`node:sqlite`) in a data
 * directory, no server and no native addon. WAL journal with
 * `synchronous=FULL`, so a committed transaction is on disk (fsynced) before
 * `append` resolves and the collector acknowledges. Writes use
 * `BEGIN IMMEDIATE`, so even two processes on one directory serialise.
 */
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { ChaperoneError, DependencyError, GENESIS_HASH } from '@chaperone/shared';
import type { EventFilter } from '../events/event-filter.ts';
import { ROW_COLUMNS, ROW_KEYS } from '../events/event-row.ts';
import { microsToRfc3339, nowMicros, rfc3339ToMicros } from '../events/time.ts';
import type { StoredCheckpoint } from '../integrity/checkpoints.ts';
import type { ApprovalStore } from './approval-store.ts';
import { CHECKPOINT_INDEX_PAGE, indexCheckpoint, newestCheckpointSql } from './checkpoint-index.ts';
import { type ExistingEvent, planBatch } from './ingest-plan.ts';
import { addFilter, encodeTimeCursor, SQLITE, SqlBuilder, timeOrderedQuery } from './query-sql.ts';
import { appendRecordingVia, compareChunk, planRecordingChunk } from './recording-append.ts';
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
import { sqliteApprovals } from './sqlite-approvals.ts';
import {
  SQLITE_CHECKPOINT_INDEX_VERSION,
  SQLITE_MIGRATIONS,
  SQLITE_ROLLUP_VERSION,
} from './sqlite-schema.ts';
import type {
  AccessReport,
  AlertFilter,
  ArrivalPage,
  AuditStore,
  BatchOutcome,
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

export const SQLITE_FILE = 'audit.db';

type Row = Record<string, unknown>;

/** Bound in ROW_COLUMNS order (ROW_KEYS). */
const INSERT_EVENT = `INSERT INTO events (${ROW_COLUMNS.join(', ')}) VALUES (${ROW_COLUMNS.map(() => '?').join(', ')})`;

function encodeArrival(id: number): string {
  return Buffer.from(`a:${id}`).toString('base64url');
}

function decodeArrival(cursor: string | undefined): number {
  if (cursor === undefined) return 0;
  const m = /^a:(\d+)$/.exec(Buffer.from(cursor, 'base64url').toString());
  if (!m) throw new ChaperoneError('validation_failed', 'cursor is not an embedded-store arrival cursor');
  return Number(m[1]);
}

export interface SqliteStoreOptions {
  /** Directory that holds the database (created with mode 0700 if missing). */
  dataDir: string;
  /** Open an existing store only (for offline tools); never create one. */
  mustExist?: boolean;
}

export class SqliteStore implements AuditStore {
  readonly backend = 'embedded' as const;
  readonly path: string;
  readonly #db: DatabaseSync;
  readonly #stmts = new Map<string, StatementSync>();
  readonly approvals: ApprovalStore;

  constructor(opts: SqliteStoreOptions) {
    if (!opts.mustExist) mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
    this.path = join(opts.dataDir, SQLITE_FILE);
    if (opts.mustExist) {
      try {
        statSync(this.path);
      } catch {
        throw new DependencyError(`no embedded audit store at ${this.path}`);
      }
    }
    this.#db = new DatabaseSync(this.path);
    this.#db.exec('PRAGMA journal_mode = WAL');
    this.#db.exec('PRAGMA synchronous = FULL');
    this.#db.exec('PRAGMA busy_timeout = 10000');
    this.#migrate();
    this.approvals = sqliteApprovals(this.#db);
  }

  #migrate(): void {
    this.#db.exec('BEGIN IMMEDIATE');
    try {
      this.#db.exec(
        'CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_us INTEGER NOT NULL)',
      );
      const row = this.#db.prepare('SELECT max(version) AS v FROM schema_version').get() as Row;
      const current = Number(row.v ?? 0);
      if (current > SQLITE_MIGRATIONS.length) {
        throw new ChaperoneError(
          'config_invalid',
          `the embedded store at ${this.path} has schema version ${current}, newer than this collector's ${SQLITE_MIGRATIONS.length}: upgrade the collector`,
        );
      }
      for (let v = current + 1; v <= SQLITE_MIGRATIONS.length; v++) {
        this.#db.exec(SQLITE_MIGRATIONS[v - 1] as string);
        if (v === SQLITE_ROLLUP_VERSION) this.#backfillRollups();
        if (v === SQLITE_CHECKPOINT_INDEX_VERSION) this.#backfillCheckpointIndex();
        this.#db
          .prepare('INSERT INTO schema_version (version, applied_us) VALUES (?, ?)')
          .run(v, nowMicros());
      }
      this.#db.exec('COMMIT');
    } catch (err) {
      this.#db.exec('ROLLBACK');
      throw err;
    }
  }

  /** Fills the rollups from every stored event (once, in the migration that creates them). */
  #backfillRollups(): void {
    const page = this.#db.prepare(
      'SELECT id, received_us, event_json FROM events WHERE id > ? ORDER BY id LIMIT ?',
    );
    let after = 0;
    for (;;) {
      const rows = page.all(after, BACKFILL_PAGE) as Row[];
      const rolled: RolledEvent[] = [];
      for (const r of rows) {
        after = Number(r.id);
        const e = rolledFromStored(String(r.event_json), Number(r.received_us));
        if (e) rolled.push(e);
      }
      this.#runAll(rollupWrites(SQLITE, planRollups(rolled)));
      if (rows.length < BACKFILL_PAGE) break;
    }
  }

  /** Fills checkpoint_chains from every stored checkpoint (once, in the migration that creates it). */
  #backfillCheckpointIndex(): void {
    const page = this.#db.prepare(`SELECT id, jws FROM checkpoints WHERE id > ? ORDER BY id LIMIT ?`);
    let after = 0;
    for (;;) {
      const rows = page.all(after, CHECKPOINT_INDEX_PAGE) as Row[];
      for (const r of rows) {
        after = Number(r.id);
        this.#indexCheckpoint(after, String(r.jws));
      }
      if (rows.length < CHECKPOINT_INDEX_PAGE) break;
    }
  }

  #indexCheckpoint(id: number, jws: string): void {
    this.#runAll(indexCheckpoint(SQLITE, id, jws));
  }

  #runAll(statements: readonly SqlStatement[]): void {
    for (const s of statements) this.#stmt(s.sql).run(...(s.params as never[]));
  }

  readonly #read: RunSql = async (sql, params) => this.#db.prepare(sql).all(...(params as never[])) as Row[];

  schemaVersion(): number {
    return Number((this.#db.prepare('SELECT max(version) AS v FROM schema_version').get() as Row).v);
  }

  #stmt(sql: string): StatementSync {
    let s = this.#stmts.get(sql);
    if (!s) {
      s = this.#db.prepare(sql);
      this.#stmts.set(sql, s);
    }
    return s;
  }

  #write<T>(fn: () => T): T {
    this.#db.exec('BEGIN IMMEDIATE');
    try {
      const out = fn();
      this.#db.exec('COMMIT');
      return out;
    } catch (err) {
      if (this.#db.isTransaction) this.#db.exec('ROLLBACK');
      throw err;
    }
  }

  async chain(sidecarId: string): Promise<ChainInfo | undefined> {
    const r = this.#stmt(`SELECT ${CHAIN_COLUMNS} FROM chains WHERE sidecar_id = ?`).get(sidecarId) as
      | Row
      | undefined;
    return r ? rowToChain(r) : undefined;
  }

  async listChains(): Promise<readonly ChainInfo[]> {
    return (this.#stmt(`SELECT ${CHAIN_COLUMNS} FROM chains ORDER BY sidecar_id`).all() as Row[]).map(
      rowToChain,
    );
  }

  async append(batches: readonly IncomingBatch[]): Promise<readonly BatchOutcome[]> {
    return this.commit(batches);
  }

  async commit<W extends IncomingWrite>(writes: readonly W[]): Promise<readonly OutcomeOf<W>[]> {
    return this.#write(() => {
      const out: (BatchOutcome | RecordingOutcome)[] = [];
      // After a batch of a chain is refused, later batches of that chain in the same
      // group would leave a gap that its resend fills: refuse them too (retryable).
      const refused = new Set<string>();
      const fresh: RolledEvent[] = [];
      // Events first, so a chunk sees the events of its group; then the chunks, in arrival order.
      for (const [i, w] of writes.entries()) {
        if (isRecording(w)) continue;
        const o = this.#appendOne(refused.has(w.sidecarId) ? { ...w, rejectLeadingGap: true } : w);
        if (o.kind === 'rejected') refused.add(w.sidecarId);
        else fresh.push(...o.events);
        out[i] = o;
      }
      // Only the events newly stored are counted (never a resend's duplicates).
      if (fresh.length > 0) this.#runAll(rollupWrites(SQLITE, planRollups(fresh)));
      for (const [i, w] of writes.entries()) {
        if (isRecording(w))
          out[i] = this.#recordOne(refused.has(w.sidecarId) ? { ...w, afterLoss: true } : w);
      }
      return out as OutcomeOf<W>[];
    });
  }

  /** One recording chunk (recording-append.ts decides), inside the write transaction. */
  #recordOne(w: IncomingRecording): RecordingOutcome {
    const r = this.#stmt('SELECT sidecar_id, size FROM recordings WHERE session_id = ?').get(w.sessionId) as
      | Row
      | undefined;
    const held = r ? { sidecarId: String(r.sidecar_id), size: Number(r.size) } : undefined;
    const named =
      held !== undefined ||
      this.#stmt('SELECT 1 AS x FROM events WHERE session_id = ? AND sidecar_id = ? LIMIT 1').get(
        w.sessionId,
        w.sidecarId,
      ) !== undefined;
    const plan = planRecordingChunk(w, held, named);
    const bytes = Buffer.byteLength(w.data, 'utf8');
    switch (plan.kind) {
      case 'refused':
        return plan;
      case 'compare': {
        const stored = this.#stmt(
          'SELECT start_byte, data FROM recording_chunks WHERE session_id = ? AND start_byte < ? AND start_byte + bytes > ? ORDER BY start_byte',
        ).all(w.sessionId, w.offset + bytes, w.offset) as Row[];
        return compareChunk(
          w,
          plan.size,
          stored.map((c) => ({ start: Number(c.start_byte), data: String(c.data) })),
        );
      }
      case 'create':
        this.#stmt(
          'INSERT INTO recordings (session_id, sidecar_id, namespace, pod, size, updated_us) VALUES (?, ?, ?, ?, 0, ?)',
        ).run(w.sessionId, w.sidecarId, w.identity.namespace, w.identity.pod, w.receivedUs);
        break;
      case 'append':
        break;
    }
    const size = (plan.kind === 'append' ? plan.size : 0) + bytes;
    this.#stmt('INSERT INTO recording_chunks (session_id, start_byte, bytes, data) VALUES (?, ?, ?, ?)').run(
      w.sessionId,
      w.offset,
      bytes,
      w.data,
    );
    this.#stmt('UPDATE recordings SET size = ?, updated_us = ? WHERE session_id = ?').run(
      size,
      w.receivedUs,
      w.sessionId,
    );
    return { kind: 'recorded', size, duplicate: false };
  }

  #appendOne(batch: IncomingBatch): BatchOutcome {
    const chainRow = this.#stmt(`SELECT ${CHAIN_COLUMNS} FROM chains WHERE sidecar_id = ?`).get(
      batch.sidecarId,
    ) as Row | undefined;
    const chain = chainRow ? rowToChain(chainRow) : undefined;
    const existing = new Map<string, ExistingEvent>();
    const lookup = this.#stmt('SELECT sidecar_id, hash FROM events WHERE audit_id = ?');
    for (const { auditID } of batch.events) {
      const r = lookup.get(auditID) as Row | undefined;
      if (r) existing.set(auditID, { sidecarId: String(r.sidecar_id), hash: String(r.hash) });
    }
    const detectedAt = microsToRfc3339(batch.receivedUs);
    const plan = planBatch(
      batch,
      { head: chain?.head ?? { seq: 0, hash: GENESIS_HASH }, owner: chain?.owner },
      existing,
      detectedAt,
    );
    this.#insertAlerts(plan.alerts);
    if (plan.kind === 'rejected') return plan;
    const insert = this.#stmt(INSERT_EVENT);
    for (const { row: r } of plan.events) {
      insert.run(...ROW_KEYS.map((k) => r[k]));
    }
    if (chain) {
      this.#stmt('UPDATE chains SET head_seq = ?, head_hash = ?, last_seen_us = ? WHERE sidecar_id = ?').run(
        plan.head.seq,
        plan.head.hash,
        batch.receivedUs,
        batch.sidecarId,
      );
    } else {
      const o = batch.identity;
      this.#stmt(
        `INSERT INTO chains (sidecar_id, namespace, pod, pod_uid, service_account, head_seq, head_hash, pruned_seq, pruned_hash, first_seen_us, last_seen_us)
         VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)`,
      ).run(
        batch.sidecarId,
        o.namespace,
        o.pod,
        o.podUID ?? null,
        o.serviceAccount,
        plan.head.seq,
        plan.head.hash,
        GENESIS_HASH,
        batch.receivedUs,
        batch.receivedUs,
      );
    }
    return plan;
  }

  #insertAlerts(alerts: readonly IntegrityAlert[]): void {
    const s = this.#stmt(
      `INSERT INTO alerts (kind, sidecar_id, namespace, pod, seq, expected_seq, audit_id, detected_us, message)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    for (const a of alerts) {
      s.run(
        a.kind,
        a.sidecarId,
        a.namespace,
        a.pod,
        a.seq ?? null,
        a.expectedSeq ?? null,
        a.auditID ?? null,
        rfc3339ToMicros(a.detectedAt),
        a.message,
      );
    }
  }

  async recordAlerts(alerts: readonly IntegrityAlert[]): Promise<void> {
    if (alerts.length) this.#write(() => this.#insertAlerts(alerts));
  }

  async queryEvents(filter: EventFilter, page: QueryPage): Promise<EventPage> {
    const q = timeOrderedQuery(SQLITE, filter, page);
    const rows = this.#db.prepare(q.sql).all(...(q.params as never[])) as Row[];
    const more = rows.length > page.limit;
    const shown = more ? rows.slice(0, page.limit) : rows;
    const last = shown.at(-1);
    return {
      events: shown.map((r) => String(r.event_json)),
      ...(more && last ? { nextCursor: encodeTimeCursor(Number(last.time_us), Number(last.id)) } : {}),
    };
  }

  async getEvent(auditID: string): Promise<string | undefined> {
    const r = this.#stmt('SELECT event_json FROM events WHERE audit_id = ?').get(auditID) as Row | undefined;
    return r ? String(r.event_json) : undefined;
  }

  async readArrival(cursor: string | undefined, limit: number, filter?: EventFilter): Promise<ArrivalPage> {
    const after = decodeArrival(cursor);
    const b = new SqlBuilder(SQLITE);
    b.and(`id > ${b.p(after)}`);
    if (filter) addFilter(b, filter);
    // Scan in id order but stop early: the last id examined moves the cursor even when filtered out.
    const rows = this.#db
      .prepare(`SELECT id, event_json FROM events ${b.whereSql()} ORDER BY id LIMIT ${b.p(limit)}`)
      .all(...(b.params as never[])) as Row[];
    const lastId = rows.length ? Number(rows.at(-1)?.id) : after;
    return { events: rows.map((r) => String(r.event_json)), cursor: encodeArrival(lastId) };
  }

  async arrivalEnd(): Promise<string> {
    const r = this.#stmt('SELECT coalesce(max(id), 0) AS id FROM events').get() as Row;
    return encodeArrival(Number(r.id));
  }

  async chainRows(sidecarId: string, afterId: number, limit: number): Promise<readonly ChainRow[]> {
    return (
      this.#stmt(
        `SELECT ${CHAIN_ROW_COLUMNS} FROM events WHERE sidecar_id = ? AND id > ? ORDER BY id LIMIT ?`,
      ).all(sidecarId, afterId, limit) as Row[]
    ).map(rowToChainRow);
  }

  async sessionEvents(sessionId: string, limit: number): Promise<readonly string[]> {
    return (
      this.#stmt(
        'SELECT event_json FROM events WHERE session_id = ? ORDER BY time_us, sidecar_id, seq LIMIT ?',
      ).all(sessionId, limit) as Row[]
    ).map((r) => String(r.event_json));
  }

  readonly appendRecording: AuditStore['appendRecording'] = appendRecordingVia(this);

  async getRecording(sessionId: string): Promise<Recording | undefined> {
    const r = this.#stmt('SELECT * FROM recordings WHERE session_id = ?').get(sessionId) as Row | undefined;
    if (!r) return undefined;
    const chunks = this.#stmt(
      'SELECT data FROM recording_chunks WHERE session_id = ? ORDER BY start_byte',
    ).all(sessionId) as Row[];
    return rowToRecording(r, chunks);
  }

  async recordingInfo(sessionId: string): Promise<RecordingInfo | undefined> {
    return readRecordingInfo(this.#read, SQLITE, sessionId);
  }

  async readRecording(sessionId: string, offset: number, length: number): Promise<Buffer | undefined> {
    return readRecordingBytes(this.#read, SQLITE, sessionId, offset, length);
  }

  async listAlerts(filter: AlertFilter, limit: number): Promise<readonly StoredAlert[]> {
    const b = new SqlBuilder(SQLITE);
    if (filter.sidecarId) b.and(`sidecar_id = ${b.p(filter.sidecarId)}`);
    if (filter.namespace) b.and(`namespace = ${b.p(filter.namespace)}`);
    if (filter.kind) b.and(`kind = ${b.p(filter.kind)}`);
    if (filter.sinceUs !== undefined) b.and(`detected_us >= ${b.p(filter.sinceUs)}`);
    const rows = this.#db
      .prepare(`SELECT ${ALERT_COLUMNS} FROM alerts ${b.whereSql()} ORDER BY id DESC LIMIT ${b.p(limit)}`)
      .all(...(b.params as never[])) as Row[];
    return rows.map(rowToAlert);
  }

  async getForwardCursor(name: string): Promise<string | undefined> {
    const r = this.#stmt('SELECT cursor FROM forward_cursors WHERE name = ?').get(name) as Row | undefined;
    return r ? String(r.cursor) : undefined;
  }

  async setForwardCursor(name: string, cursor: string): Promise<void> {
    this.#write(() =>
      this.#stmt(
        `INSERT INTO forward_cursors (name, cursor, updated_us) VALUES (?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET cursor = excluded.cursor, updated_us = excluded.updated_us`,
      ).run(name, cursor, nowMicros()),
    );
  }

  async backlog(cursor: string | undefined): Promise<{ events: number; oldestReceivedUs?: number }> {
    const after = decodeArrival(cursor);
    const oldest = this.#stmt('SELECT received_us FROM events WHERE id > ? ORDER BY id LIMIT 1').get(after) as
      | Row
      | undefined;
    if (!oldest) return { events: 0 };
    const n = this.#stmt('SELECT count(*) AS n FROM events WHERE id > ?').get(after) as Row;
    return { events: Number(n.n), oldestReceivedUs: Number(oldest.received_us) };
  }

  async tryLease(): Promise<boolean> {
    return true; // one process owns an embedded store
  }

  async prune(cutoffUs: number, limit: number): Promise<number> {
    return this.#write(() => {
      const rows = this.#stmt(
        'SELECT id, sidecar_id, seq, hash, received_us FROM events ORDER BY id LIMIT ?',
      ).all(limit) as Row[];
      // Only a prefix in commit order is removed, so each chain loses a prefix and
      // `audit verify` can start from the recorded watermark.
      const expired: Row[] = [];
      for (const r of rows) {
        if (Number(r.received_us) >= cutoffUs) break;
        expired.push(r);
      }
      this.#stmt('DELETE FROM alerts WHERE detected_us < ?').run(cutoffUs);
      this.#stmt(
        'DELETE FROM recording_chunks WHERE session_id IN (SELECT session_id FROM recordings WHERE updated_us < ?)',
      ).run(cutoffUs);
      this.#stmt('DELETE FROM recordings WHERE updated_us < ?').run(cutoffUs);
      // The rollups once a pass, on its last call (the one that finds fewer expired events than it may delete).
      if (expired.length < limit) this.#runAll(rollupPrunes(SQLITE, cutoffUs));
      if (expired.length === 0) return 0;
      const lastPerChain = new Map<string, Row>();
      for (const r of expired) lastPerChain.set(String(r.sidecar_id), r);
      const mark = this.#stmt(
        'UPDATE chains SET pruned_seq = ?, pruned_hash = ?, pruned_id = ? WHERE sidecar_id = ? AND pruned_id < ?',
      );
      for (const [sidecarId, r] of lastPerChain)
        mark.run(Number(r.seq), String(r.hash), Number(r.id), sidecarId, Number(r.id));
      const lastId = Number(expired.at(-1)?.id);
      this.#stmt('DELETE FROM events WHERE id <= ?').run(lastId);
      return expired.length;
    });
  }

  async stats(): Promise<StoreStats> {
    const n = this.#stmt('SELECT count(*) AS n FROM events').get() as Row;
    let bytes = 0;
    for (const suffix of ['', '-wal']) {
      try {
        bytes += statSync(`${this.path}${suffix}`).size;
      } catch {
        // no WAL file right now
      }
    }
    return { events: Number(n.n), bytes };
  }

  async appendCheckpoint(cp: StoredCheckpoint): Promise<void> {
    this.#write(() => {
      const r = this.#stmt('INSERT INTO checkpoints (created_us, kid, jws) VALUES (?, ?, ?)').run(
        cp.createdUs,
        cp.kid,
        cp.jws,
      );
      this.#indexCheckpoint(Number(r.lastInsertRowid), cp.jws);
    });
  }

  async newestCheckpointFor(sidecarId: string): Promise<CheckpointRow | undefined> {
    const r = this.#stmt(newestCheckpointSql(SQLITE)).get(sidecarId) as Row | undefined;
    return r ? rowToCheckpoint(r) : undefined;
  }

  async listCheckpoints(afterId: number, limit: number): Promise<readonly CheckpointRow[]> {
    return (
      this.#stmt(`SELECT ${CHECKPOINT_COLUMNS} FROM checkpoints WHERE id > ? ORDER BY id LIMIT ?`).all(
        afterId,
        limit,
      ) as Row[]
    ).map(rowToCheckpoint);
  }

  async eventHashesAt(sidecarId: string, seq: number): Promise<readonly string[]> {
    return (
      this.#stmt('SELECT hash FROM events WHERE sidecar_id = ? AND seq = ? ORDER BY id').all(
        sidecarId,
        seq,
      ) as Row[]
    ).map((r) => String(r.hash));
  }

  async overview(q: RollupQuery): Promise<OverviewCounts> {
    return readOverview(this.#read, SQLITE, q);
  }

  async listSessions(
    q: RollupQuery,
    page: { limit: number; cursor?: string },
    nowUs: number,
  ): Promise<SessionPage> {
    return readSessions(this.#read, SQLITE, q, page, nowUs);
  }

  async accessReport(q: RollupQuery): Promise<AccessReport> {
    return readAccessReport(this.#read, SQLITE, q);
  }

  async chainEventsFrom(sidecarId: string, fromSeq: number, limit: number): Promise<readonly ChainRow[]> {
    return (
      this.#stmt(
        `SELECT ${CHAIN_ROW_COLUMNS} FROM events WHERE sidecar_id = ? AND seq >= ? ORDER BY seq, id LIMIT ?`,
      ).all(sidecarId, fromSeq, limit) as Row[]
    ).map(rowToChainRow);
  }

  async ping(): Promise<void> {
    this.#stmt('SELECT 1').get();
  }

  async close(): Promise<void> {
    if (this.#db.isOpen) this.#db.close();
  }
}
