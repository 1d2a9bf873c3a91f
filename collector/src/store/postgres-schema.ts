/**
 * Schema of the PostgreSQL store, as ordered migrations (see sqlite-schema.ts
 * for the rules). `events.txid` is the inserting transaction's id: readers
 * that follow the store in commit order (forwarders, `audit tail`) only read
 * rows of transactions older than every transaction still running, so a
 * slow transaction from another replica can never be skipped.
 */
import { approvalOwnersSql, approvalTablesSql } from './approval-rows.ts';
import { checkpointIndexTableSql } from './checkpoint-index.ts';
import { rollupTablesSql } from './rollup-sql.ts';

export const POSTGRES_MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    audit_id TEXT NOT NULL UNIQUE,
    sidecar_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    time_us BIGINT NOT NULL,
    received_us BIGINT NOT NULL,
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
  CREATE INDEX events_arrival ON events (txid, id);

  CREATE TABLE chains (
    sidecar_id TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    pod TEXT NOT NULL,
    pod_uid TEXT,
    service_account TEXT NOT NULL,
    head_seq BIGINT NOT NULL,
    head_hash TEXT NOT NULL,
    pruned_seq BIGINT NOT NULL DEFAULT 0,
    pruned_hash TEXT NOT NULL,
    pruned_id BIGINT NOT NULL DEFAULT 0,
    first_seen_us BIGINT NOT NULL,
    last_seen_us BIGINT NOT NULL
  );

  CREATE TABLE alerts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind TEXT NOT NULL,
    sidecar_id TEXT NOT NULL,
    namespace TEXT NOT NULL,
    pod TEXT NOT NULL,
    seq BIGINT,
    expected_seq BIGINT,
    audit_id TEXT,
    detected_us BIGINT NOT NULL,
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
    size BIGINT NOT NULL,
    updated_us BIGINT NOT NULL
  );

  CREATE TABLE forward_cursors (
    name TEXT PRIMARY KEY,
    cursor TEXT NOT NULL,
    updated_us BIGINT NOT NULL
  );
  `,
  `
  CREATE TABLE checkpoints (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_us BIGINT NOT NULL,
    kid TEXT NOT NULL,
    jws TEXT NOT NULL
  );
  CREATE INDEX events_chain_seq ON events (sidecar_id, seq);
  `,
  // Recordings grow a chunk at a time: one row per chunk (appending never rewrites what is stored).
  `
  CREATE TABLE recording_chunks (
    session_id TEXT NOT NULL,
    start_byte BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (session_id, start_byte)
  );
  INSERT INTO recording_chunks (session_id, start_byte, bytes, data)
    SELECT session_id, 0, size, content FROM recordings WHERE size > 0;
  ALTER TABLE recordings DROP COLUMN content;
  `,
  // Just-in-time approval: requests, each approver's decision, grants.
  approvalTablesSql('BIGINT'),
  // Approval requests' owning replica, and replica heartbeats.
  approvalOwnersSql('BIGINT'),
  // The console's rollups (rollup-sql.ts), filled from the stored events after it runs (POSTGRES_ROLLUP_VERSION).
  rollupTablesSql('postgres'),
  // The newest checkpoint per chain (checkpoint-index.ts), filled from the stored checkpoints after it runs.
  checkpointIndexTableSql('BIGINT'),
];

/** The migration that creates the rollups: the store backfills them from its events right after it. */
export const POSTGRES_ROLLUP_VERSION = 6;

/** The migration that creates checkpoint_chains: the store fills it from its checkpoints right after it. */
export const POSTGRES_CHECKPOINT_INDEX_VERSION = 7;
