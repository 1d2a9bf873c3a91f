/** Row ↔ record mapping both backends share (their rows use the same column names). */

import { COMPARABLE_COLUMNS } from '../events/event-row.ts';
import { microsToRfc3339 } from '../events/time.ts';
import type {
  AlertKind,
  ChainInfo,
  ChainRow,
  CheckpointRow,
  Recording,
  RecordingInfo,
  StoredAlert,
} from './store.ts';

type Row = Record<string, unknown>;

const num = (v: unknown): number => (typeof v === 'number' ? v : Number(v));
const optNum = (v: unknown): number | undefined => (v === null || v === undefined ? undefined : num(v));
const optStr = (v: unknown): string | undefined => (v === null || v === undefined ? undefined : String(v));

export const CHAIN_COLUMNS =
  'sidecar_id, namespace, pod, pod_uid, service_account, head_seq, head_hash, pruned_seq, pruned_hash, first_seen_us, last_seen_us';

export function rowToChain(r: Row): ChainInfo {
  const podUID = optStr(r.pod_uid);
  return {
    sidecarId: String(r.sidecar_id),
    owner: {
      namespace: String(r.namespace),
      pod: String(r.pod),
      ...(podUID === undefined ? {} : { podUID }),
      serviceAccount: String(r.service_account),
    },
    head: { seq: num(r.head_seq), hash: String(r.head_hash) },
    pruned: { seq: num(r.pruned_seq), hash: String(r.pruned_hash) },
    firstSeen: microsToRfc3339(num(r.first_seen_us)),
    lastSeen: microsToRfc3339(num(r.last_seen_us)),
  };
}

export const ALERT_COLUMNS =
  'id, kind, sidecar_id, namespace, pod, seq, expected_seq, audit_id, detected_us, message';

export function rowToAlert(r: Row): StoredAlert {
  const seq = optNum(r.seq);
  const expectedSeq = optNum(r.expected_seq);
  const auditID = optStr(r.audit_id);
  return {
    id: num(r.id),
    kind: String(r.kind) as AlertKind,
    sidecarId: String(r.sidecar_id),
    namespace: String(r.namespace),
    pod: String(r.pod),
    ...(seq === undefined ? {} : { seq }),
    ...(expectedSeq === undefined ? {} : { expectedSeq }),
    ...(auditID === undefined ? {} : { auditID }),
    detectedAt: microsToRfc3339(num(r.detected_us)),
    message: String(r.message),
  };
}

export const CHAIN_ROW_COLUMNS = `id, ${COMPARABLE_COLUMNS.join(', ')}, event_json`;

export function rowToChainRow(r: Row): ChainRow {
  const columns: Record<string, string | number | null> = {};
  for (const c of COMPARABLE_COLUMNS) {
    const v = r[c];
    columns[c] = v === null || v === undefined ? null : c === 'seq' || c === 'time_us' ? num(v) : String(v);
  }
  return { id: num(r.id), seq: num(r.seq), hash: String(r.hash), columns, json: String(r.event_json) };
}

/** A recording from its row and its chunks' data, in order. */
export function rowToRecording(r: Row, chunks: readonly Row[]): Recording {
  return {
    sessionId: String(r.session_id),
    sidecarId: String(r.sidecar_id),
    namespace: String(r.namespace),
    pod: String(r.pod),
    content: chunks.map((c) => String(c.data)).join(''),
    updatedAt: microsToRfc3339(num(r.updated_us)),
  };
}

/** A recording's row, without its bytes. */
export function rowToRecordingInfo(r: Row): RecordingInfo {
  return {
    sessionId: String(r.session_id),
    sidecarId: String(r.sidecar_id),
    namespace: String(r.namespace),
    pod: String(r.pod),
    size: num(r.size),
    updatedAt: microsToRfc3339(num(r.updated_us)),
  };
}

export const CHECKPOINT_COLUMNS = 'id, created_us, kid, jws';

export function rowToCheckpoint(r: Row): CheckpointRow {
  return { id: num(r.id), createdUs: num(r.created_us), kid: String(r.kid), jws: String(r.jws) };
}
