/**
 * The collector's storage interface. Two implementations — the embedded
 * default (node:sqlite in a data directory) and PostgreSQL — pass one
 * conformance suite (store-conformance.ts): same inputs, same results.
 *
 * Writes go through `commit`, which takes a group of event batches and
 * recording chunks and commits them durably (one transaction, fsynced) before
 * resolving: an ack is only ever sent for what `commit` resolved as stored.
 * Each sidecar's chain is serialised inside the store (a row lock on its head
 * in PostgreSQL, the single writer in SQLite), so several collector replicas
 * on one database never store an event twice or fork a chain; a recording is
 * serialised by its row (locked in session-id order).
 */
import type { ChainHead, ChainProblem } from '@chaperone/shared';
import type { AccessReport, OverviewCounts, SessionPage } from '../events/console-answers.ts';
import type { EventFilter } from '../events/event-filter.ts';
import type { IncomingEvent } from '../events/incoming-event.ts';
import type { StoredCheckpoint } from '../integrity/checkpoints.ts';
import type { ApprovalStore } from './approval-store.ts';

/** The pod a sidecar's verified token names. This, not the event, is the truth. */
export interface Identity {
  readonly namespace: string;
  readonly pod: string;
  readonly podUID?: string;
  readonly serviceAccount: string;
}

export const ALERT_KINDS = [
  'hash_mismatch',
  'gap',
  'reorder',
  'broken_link',
  'id_conflict',
  'identity_mismatch',
  'chain_owner_mismatch',
] as const;
export type AlertKind = (typeof ALERT_KINDS)[number];

/** A tamper-evidence finding, stored and queryable, never just a log line. */
export interface IntegrityAlert {
  readonly kind: AlertKind;
  readonly sidecarId: string;
  readonly namespace: string;
  readonly pod: string;
  /** The sequence number the finding is about (the event's own, or the one received for gap/reorder). */
  readonly seq?: number;
  readonly expectedSeq?: number;
  readonly auditID?: string;
  /** RFC 3339 (µs) time the collector detected it. */
  readonly detectedAt: string;
  readonly message: string;
}

export interface StoredAlert extends IntegrityAlert {
  readonly id: number;
}

export interface IncomingBatch {
  readonly sidecarId: string;
  readonly identity: Identity;
  /** Validated on arrival, serialised and hashed once (incoming-event.ts). */
  readonly events: readonly IncomingEvent[];
  /** Microseconds since the epoch when the batch arrived (its events' `row.receivedUs`). */
  readonly receivedUs: number;
  /**
   * When true, a batch whose first new event leaves a gap after the stored
   * head is refused (`out_of_order`) instead of stored with a gap alert: set
   * by the connection after one of its earlier batches was not stored, so a
   * resend is expected to fill the hole.
   */
  readonly rejectLeadingGap: boolean;
}

export type BatchOutcome =
  | {
      readonly kind: 'stored';
      /** The events newly stored (not the duplicates), for metrics. */
      readonly events: readonly IncomingEvent[];
      readonly duplicates: number;
      readonly head: ChainHead;
      readonly alerts: readonly IntegrityAlert[];
    }
  | {
      readonly kind: 'rejected';
      readonly code: 'out_of_order' | 'identity_mismatch';
      readonly message: string;
      readonly retryable: boolean;
      readonly alerts: readonly IntegrityAlert[];
    };

/** A chunk of a session's recording, as ingest hands it to the store. */
export interface IncomingRecording {
  readonly kind: 'recording';
  /** The connection's chain: only a session its events name can be recorded. */
  readonly sidecarId: string;
  readonly identity: Identity;
  readonly sessionId: string;
  /** UTF-8 bytes of the recording before `data`. */
  readonly offset: number;
  /** asciicast v2 lines, validated on arrival (checkAsciicastChunk). */
  readonly data: string;
  readonly receivedUs: number;
  /**
   * Set by the connection after one of its earlier messages was not stored:
   * a hole before this chunk, or a session no stored event names yet, is then
   * refused as retryable (the resend fills it) instead of for good.
   */
  readonly afterLoss: boolean;
}

export type RecordingOutcome =
  | {
      readonly kind: 'recorded';
      /** The recording's size now (bytes). */
      readonly size: number;
      /** The chunk was there already. */
      readonly duplicate: boolean;
    }
  | {
      readonly kind: 'refused';
      readonly code: 'out_of_order' | 'identity_mismatch' | 'recording_conflict' | 'too_large';
      readonly message: string;
      readonly retryable: boolean;
    };

/** One write of a group: a batch of events, or a recording chunk. */
export type IncomingWrite = IncomingBatch | IncomingRecording;
export type OutcomeOf<W extends IncomingWrite> = W extends IncomingRecording
  ? RecordingOutcome
  : BatchOutcome;

export function isRecording(w: IncomingWrite): w is IncomingRecording {
  return (w as IncomingRecording).kind === 'recording';
}

export interface ChainInfo {
  readonly sidecarId: string;
  readonly owner: Identity;
  readonly head: ChainHead;
  /** Events before and including this one were removed by retention. */
  readonly pruned: ChainHead;
  readonly firstSeen: string;
  readonly lastSeen: string;
}

export interface EventPage {
  readonly events: readonly string[];
  /** Opaque; pass back to get the next page. Absent on the last page. */
  readonly nextCursor?: string;
}

export interface ArrivalPage {
  /** Canonical JSON of each event, in the order the collector committed them. */
  readonly events: readonly string[];
  /** Where the next read starts (unchanged when nothing new was committed). */
  readonly cursor: string;
}

/** A stored row as `audit verify` re-checks it. */
export interface ChainRow {
  readonly id: number;
  readonly seq: number;
  readonly hash: string;
  /** The extracted query columns, to compare with what the JSON says. */
  readonly columns: Readonly<Record<string, string | number | null>>;
  readonly json: string;
}

export interface Recording {
  readonly sessionId: string;
  readonly sidecarId: string;
  readonly namespace: string;
  readonly pod: string;
  /** asciicast v2, exactly as received. */
  readonly content: string;
  readonly updatedAt: string;
}

/** A recording's row without its bytes: enough to authorise a read and say how long it is. */
export interface RecordingInfo {
  readonly sessionId: string;
  readonly sidecarId: string;
  readonly namespace: string;
  readonly pod: string;
  /** Bytes stored (UTF-8). */
  readonly size: number;
  readonly updatedAt: string;
}

export interface QueryPage {
  readonly limit: number;
  readonly cursor?: string;
  /** `desc` (default): newest first by request time. */
  readonly order?: 'desc' | 'asc';
}

export interface AlertFilter {
  readonly sidecarId?: string;
  readonly namespace?: string;
  readonly kind?: AlertKind;
  readonly sinceUs?: number;
}

export interface StoreStats {
  readonly events: number;
  readonly bytes: number;
}

export interface CheckpointRow extends StoredCheckpoint {
  readonly id: number;
}

/** Which events an overview, sessions list or report covers: request times, `since` inclusive, `until` exclusive. */
export interface RollupQuery {
  readonly sinceUs: number;
  readonly untilUs: number;
  /** Only these namespaces (absent: every one). */
  readonly namespace?: readonly string[];
  readonly serviceAccount?: readonly string[];
  readonly protocol?: readonly string[];
  readonly pod?: readonly string[];
}

export type {
  AccessReport,
  AccessReportRow,
  OutcomeCounts,
  OverviewCounts,
  SessionPage,
  SessionSummary,
} from '../events/console-answers.ts';

export interface AuditStore {
  readonly backend: 'embedded' | 'postgres';
  /** Approval requests, decisions and grants (approval-store.ts), in the same database. */
  readonly approvals: ApprovalStore;
  /** The chain's head and owner, or undefined for a sidecar never seen. */
  chain(sidecarId: string): Promise<ChainInfo | undefined>;
  listChains(): Promise<readonly ChainInfo[]>;
  /**
   * Commits a group of writes durably (one transaction); one outcome per
   * write, in order. A recording chunk sees the events of the same group.
   */
  commit<W extends IncomingWrite>(writes: readonly W[]): Promise<readonly OutcomeOf<W>[]>;
  /** Commits a group of batches durably; one outcome per batch, in order (`commit` with events only). */
  append(batches: readonly IncomingBatch[]): Promise<readonly BatchOutcome[]>;
  /** Stores alerts that are not tied to an append (e.g. a forged source). */
  recordAlerts(alerts: readonly IntegrityAlert[]): Promise<void>;
  queryEvents(filter: EventFilter, page: QueryPage): Promise<EventPage>;
  getEvent(auditID: string): Promise<string | undefined>;
  /** Events in commit order after `cursor` (undefined: from the start). */
  readArrival(cursor: string | undefined, limit: number, filter?: EventFilter): Promise<ArrivalPage>;
  /** A cursor at the current end of the store (tail -f starts here). */
  arrivalEnd(): Promise<string>;
  /** Events of one chain in commit order, after the row id `afterId`. */
  chainRows(sidecarId: string, afterId: number, limit: number): Promise<readonly ChainRow[]>;
  sessionEvents(sessionId: string, limit: number): Promise<readonly string[]>;
  /**
   * Appends a chunk of an asciicast recording at `offset` (idempotent per
   * offset): `commit` with one chunk, its refusal thrown as a ChaperoneError.
   */
  appendRecording(
    sessionId: string,
    sidecarId: string,
    identity: Identity,
    offset: number,
    chunk: string,
  ): Promise<{ size: number }>;
  /** The whole recording (tools and tests; a reader that may meet a large one uses `readRecording`). */
  getRecording(sessionId: string): Promise<Recording | undefined>;
  /** A recording's owner, namespace and size, without reading its bytes. */
  recordingInfo(sessionId: string): Promise<RecordingInfo | undefined>;
  /**
   * Up to `length` bytes of a recording from byte `offset` (fewer at its end;
   * may end inside a UTF-8 character), read from the chunks that hold them
   * only; undefined when there is no such recording.
   */
  readRecording(sessionId: string, offset: number, length: number): Promise<Buffer | undefined>;
  listAlerts(filter: AlertFilter, limit: number): Promise<readonly StoredAlert[]>;
  getForwardCursor(name: string): Promise<string | undefined>;
  setForwardCursor(name: string, cursor: string): Promise<void>;
  /** Events committed after `cursor`, and the receive time (µs) of the oldest of them. */
  backlog(cursor: string | undefined): Promise<{ events: number; oldestReceivedUs?: number }>;
  /**
   * Leadership for singleton background work (forwarders, retention) when
   * several replicas share one database. True while this process holds it.
   */
  tryLease(name: string): Promise<boolean>;
  /** Deletes up to `limit` events received before `cutoffUs`; returns how many. */
  prune(cutoffUs: number, limit: number): Promise<number>;
  stats(): Promise<StoreStats>;
  /** Stores a signed checkpoint of the chain heads (checkpoints.ts). */
  appendCheckpoint(cp: StoredCheckpoint): Promise<void>;
  /** Stored checkpoints in insertion order, after the row id `afterId`. */
  listCheckpoints(afterId: number, limit: number): Promise<readonly CheckpointRow[]>;
  /** Hashes of the chain's stored events with this seq (several only after a reorder or tampering). */
  eventHashesAt(sidecarId: string, seq: number): Promise<readonly string[]>;
  /** Counts for the console's overview, read from the rollups (not the events). */
  overview(q: RollupQuery): Promise<OverviewCounts>;
  /** Sessions active in the range, newest first by start (`protocol` filters by kind). */
  listSessions(q: RollupQuery, page: { limit: number; cursor?: string }, nowUs: number): Promise<SessionPage>;
  /** The access review: per identity, what it read, changed, was denied, had approved or masked. */
  accessReport(q: RollupQuery): Promise<AccessReport>;
  /** A chain's events with seq ≥ `fromSeq`, in seq order (then commit order). */
  chainEventsFrom(sidecarId: string, fromSeq: number, limit: number): Promise<readonly ChainRow[]>;
  /**
   * The newest stored checkpoint whose payload lists the chain (its payload
   * read unverified when it was stored: the caller verifies the signature),
   * looked up by chain, not by reading the checkpoints.
   */
  newestCheckpointFor(sidecarId: string): Promise<CheckpointRow | undefined>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

export type { ChainHead, ChainProblem };
