/**
 * How an audit event is laid out in storage: the exact JSON (what queries
 * return and `audit verify` re-hashes) plus columns extracted from it for
 * filtering. Pure; both backends use it, so they index the same values.
 */
import type { AuditEvent } from '@chaperone/shared';
import { rfc3339ToMicros } from './time.ts';

export interface EventRow {
  readonly auditID: string;
  readonly sidecarId: string;
  readonly seq: number;
  readonly hash: string;
  readonly prevHash: string;
  /** requestReceivedTimestamp, µs. */
  readonly timeUs: number;
  readonly receivedUs: number;
  readonly namespace: string;
  readonly pod: string;
  readonly podUID: string | null;
  readonly serviceAccount: string;
  readonly protocol: string;
  readonly verb: string;
  readonly resource: string | null;
  readonly action: string;
  readonly rule: string;
  readonly sessionId: string | null;
  readonly username: string;
  /** Lower-cased request URI, exec command line and SQL text, for `q`. */
  readonly searchText: string;
  readonly json: string;
}

/** Each stored column with the EventRow member it holds, in the order both schemas declare them (after `id`). */
const ROW_FIELDS = [
  ['audit_id', 'auditID'],
  ['sidecar_id', 'sidecarId'],
  ['seq', 'seq'],
  ['hash', 'hash'],
  ['prev_hash', 'prevHash'],
  ['time_us', 'timeUs'],
  ['received_us', 'receivedUs'],
  ['namespace', 'namespace'],
  ['pod', 'pod'],
  ['pod_uid', 'podUID'],
  ['service_account', 'serviceAccount'],
  ['protocol', 'protocol'],
  ['verb', 'verb'],
  ['resource', 'resource'],
  ['action', 'action'],
  ['rule', 'rule'],
  ['session_id', 'sessionId'],
  ['username', 'username'],
  ['search_text', 'searchText'],
  ['event_json', 'json'],
] as const satisfies readonly (readonly [string, keyof EventRow])[];

/** Column names, in the order both schemas declare them (after `id`). */
export const ROW_COLUMNS: readonly string[] = ROW_FIELDS.map((f) => f[0]);
/** The EventRow member of each of ROW_COLUMNS, in the same order. */
export const ROW_KEYS: readonly (keyof EventRow)[] = ROW_FIELDS.map((f) => f[1]);

/**
 * PostgreSQL text cannot hold NUL and both backends want well-formed UTF-16:
 * columns are made safe; the JSON keeps the exact value (escaped).
 */
export function safeText(s: string): string {
  const noNul = s.includes('\u0000') ? s.replaceAll('\u0000', '\uFFFD') : s;
  return noNul.isWellFormed() ? noNul : noNul.toWellFormed();
}

function opt(s: string | undefined): string | null {
  return s === undefined ? null : safeText(s);
}

export function searchTextOf(event: AuditEvent): string {
  const c = event.chaperone;
  const parts = [event.requestURI];
  if (c.exec) parts.push(c.exec.argv.join(' '));
  if (c.sql?.text) parts.push(c.sql.text);
  return safeText(parts.join('\n').toLowerCase());
}

export function toEventRow(event: AuditEvent, receivedUs: number, json = JSON.stringify(event)): EventRow {
  const c = event.chaperone;
  const resource = event.objectRef?.resource;
  const sub = event.objectRef?.subresource;
  return {
    auditID: event.auditID,
    sidecarId: safeText(c.source.sidecarId),
    seq: c.seq,
    hash: c.hash,
    prevHash: c.prevHash,
    timeUs: rfc3339ToMicros(event.requestReceivedTimestamp),
    receivedUs,
    namespace: safeText(c.source.namespace),
    pod: safeText(c.source.pod),
    podUID: opt(c.source.podUID),
    serviceAccount: safeText(c.source.serviceAccount),
    protocol: c.protocol,
    verb: safeText(event.verb),
    resource: resource === undefined ? null : safeText(sub ? `${resource}/${sub}` : resource),
    action: c.decision.action,
    rule: safeText(c.decision.rule),
    sessionId: opt(c.sessionId),
    username: safeText(event.user.username),
    searchText: searchTextOf(event),
    json,
  };
}

/** The columns `audit verify` compares with the JSON: everything but the receive time and the JSON itself. */
const COMPARABLE_FIELDS = ROW_FIELDS.filter(([c]) => c !== 'received_us' && c !== 'event_json');

export const COMPARABLE_COLUMNS: readonly string[] = COMPARABLE_FIELDS.map((f) => f[0]);

/** A row's comparable columns by column name. */
export function comparableColumns(row: EventRow): Record<string, string | number | null> {
  const out: Record<string, string | number | null> = {};
  for (const [column, key] of COMPARABLE_FIELDS) out[column] = row[key];
  return out;
}
