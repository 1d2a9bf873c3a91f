/**
 * Schema of the embedded store, as ordered migrations. Each runs once, in a
 * transaction, at start; `schema_version` records what ran. Never edit a
 * released migration: add the next one.
 */
import { approvalOwnersSql, approvalTablesSql } from './approval-rows.ts';
import { checkpointIndexTableSql } from './checkpoint-index.ts';
import { rollupTablesSql } from './rollup-sql.ts';

export const SQLITE_MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    audit_id TEXT NOT NULL UNIQUE,
    sidecar_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    time_us INTEGER NOT NULL,
    received_us INTEGER NOT NULL,
    namespace TEXT NOT NULL,
    pod TEXT NOT NULL,
    pod_uid TEXT,
    service_account TEXT NOT NULL,
    protocol TEXT NOT NULL,
    verb TEXT NOT NULL,
    resource TEXT,
    action TEXT NOT NULL,
    rule TEXT NOT NULL,
    session_id TEXT,
    username TEXT NOT NULL,
    search_text TEXT NOT NULL,
    event_json TEXT NOT NULL
  );
  CREATE INDEX events_time ON events (time_us, id);
  CREATE INDEX events_namespace_time ON events (namespace, time_us);
  CREATE INDEX events_session ON events (session_id) WHERE session_id IS NOT NULL;
  CREATE INDEX events_chain ON events (sidecar_id, id);

  CREATE TABLE chains (
    sidecar_id TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    pod TEXT NOT NULL,
    pod_uid TEXT,
    service_account TEXT NOT NULL,
    head_seq INTEGER NOT NULL,
    head_hash TEXT NOT NULL,
    pruned_seq INTEGER NOT NULL DEFAULT 0,
    pruned_hash TEXT NOT NULL,
    pruned_id INTEGER NOT NULL DEFAULT 0,
    first_seen_us INTEGER NOT NULL,
    last_seen_us INTEGER NOT NULL
  );

  CREATE TABLE alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    sidecar_id TEXT NOT NULL,
    namespace TEXT NOT NULL,
    pod TEXT NOT NULL,
    seq INTEGER,
    expected_seq INTEGER,
    audit_id TEXT,
    detected_us INTEGER NOT NULL,
    message TEXT NOT NULL
  );
  CREATE INDEX alerts_chain ON alerts (sidecar_id, id);
  CREATE INDEX alerts_detected ON alerts (detected_us);

  CREATE TABLE recordings (
    session_id TEXT PRIMARY KEY,
    sidecar_id TEXT NOT NULL,
    namespace TEXT NOT NULL,
    pod TEXT NOT NULL,
    content TEXT NOT NULL,
    size INTEGER NOT NULL,
    updated_us INTEGER NOT NULL
  );

  CREATE TABLE forward_cursors (
    name TEXT PRIMARY KEY,
    cursor TEXT NOT NULL,
    updated_us INTEGER NOT NULL
  );
  `,
  `
  CREATE TABLE checkpoints (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_us INTEGER NOT NULL,
    kid TEXT NOT NULL,
    jws TEXT NOT NULL
  );
  CREATE INDEX events_chain_seq ON events (sidecar_id, seq);
  `,
  // Recordings grow a chunk at a time: one row per chunk (appending never rewrites what is stored).
  `
  CREATE TABLE recording_chunks (
    session_id TEXT NOT NULL,
    start_byte INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (session_id, start_byte)
  );
  INSERT INTO recording_chunks (session_id, start_byte, bytes, data)
    SELECT session_id, 0, size, content FROM recordings WHERE size > 0;
  ALTER TABLE recordings DROP COLUMN content;
  `,
  // Just-in-time approval: requests, each approver's decision, grants.
  approvalTablesSql('INTEGER'),
  // Approval requests' owning replica, and replica heartbeats.
  approvalOwnersSql('INTEGER'),
  // The console's rollups (rollup-sql.ts), filled from the stored events after it runs (SQLITE_ROLLUP_VERSION).
  rollupTablesSql('sqlite'),
  // The newest checkpoint per chain (checkpoint-index.ts), filled from the stored checkpoints after it runs.
  checkpointIndexTableSql('INTEGER'),
];

/** The migration that creates the rollups: the store backfills them from its events right after it. */
export const SQLITE_ROLLUP_VERSION = 6;

/** The migration that creates checkpoint_chains: the store fills it from its checkpoints right after it. */
export const SQLITE_CHECKPOINT_INDEX_VERSION = 7;
