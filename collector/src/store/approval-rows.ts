/**
 * Rows of the approval tables, the same in both backends: columns, the
 * mapping to and from ApprovalRecord / GrantRecord, and the SQL both run
 * (written with `?` placeholders; postgres-approvals.ts numbers them).
 * Times are stored as milliseconds since the epoch.
 */
import type { ApprovalProtocol, ApprovalState, ApproverDecision, HeldAction } from '@chaperone/shared';
import type { ApprovalRecord, GrantRecord } from './approval-plan.ts';

type Row = Record<string, unknown>;

export const APPROVAL_COLUMNS =
  'id, state, namespace, pod, pod_uid, service_account, protocol, audit_id, summary, action_json, fingerprint, rule, message, approvals, approvers_json, grant_ms, created_ms, expires_ms, decided_ms, grant_id';

export const GRANT_COLUMNS =
  'id, approval_id, namespace, pod, pod_uid, service_account, rule, fingerprint, summary, created_ms, until_ms, revoked_ms, revoked_by';

export const DECISION_COLUMNS = 'approval_id, n, username, decision, reason, at_ms';

const iso = (ms: unknown) => new Date(Number(ms)).toISOString();
const ms = (s: string) => Date.parse(s);

/** Values for INSERT INTO approvals (APPROVAL_COLUMNS). */
export function approvalValues(a: ApprovalRecord): unknown[] {
  return [
    a.id,
    a.state,
    a.requester.namespace,
    a.requester.pod,
    a.requester.podUID ?? null,
    a.requester.serviceAccount,
    a.protocol,
    a.auditId,
    a.summary,
    JSON.stringify(a.action),
    a.fingerprint,
    a.rule,
    a.message,
    a.approvals,
    JSON.stringify(a.approvers),
    a.grantMs,
    ms(a.createdAt),
    ms(a.expiresAt),
    a.decidedAt ? ms(a.decidedAt) : null,
    a.grantId ?? null,
  ];
}

export function rowToApproval(r: Row, decisions: readonly Row[]): ApprovalRecord {
  return {
    id: String(r.id),
    state: String(r.state) as ApprovalState,
    requester: {
      namespace: String(r.namespace),
      pod: String(r.pod),
      ...(r.pod_uid !== null && r.pod_uid !== undefined ? { podUID: String(r.pod_uid) } : {}),
      serviceAccount: String(r.service_account),
    },
    protocol: String(r.protocol) as ApprovalProtocol,
    auditId: String(r.audit_id),
    summary: String(r.summary),
    action: JSON.parse(String(r.action_json)) as HeldAction,
    fingerprint: String(r.fingerprint),
    rule: String(r.rule),
    message: String(r.message),
    approvals: Number(r.approvals),
    approvers: JSON.parse(String(r.approvers_json)) as string[],
    grantMs: Number(r.grant_ms),
    createdAt: iso(r.created_ms),
    expiresAt: iso(r.expires_ms),
    ...(r.decided_ms !== null && r.decided_ms !== undefined ? { decidedAt: iso(r.decided_ms) } : {}),
    decisions: decisions.map(rowToDecision),
    ...(r.grant_id !== null && r.grant_id !== undefined ? { grantId: String(r.grant_id) } : {}),
  };
}

function rowToDecision(r: Row): ApproverDecision {
  return {
    user: String(r.username),
    decision: String(r.decision) as 'approve' | 'deny',
    at: iso(r.at_ms),
    ...(r.reason !== null && r.reason !== undefined ? { reason: String(r.reason) } : {}),
  };
}

/** Values for INSERT INTO approval_decisions (DECISION_COLUMNS); `n` counts from 1. */
export function decisionValues(approvalId: string, n: number, d: ApproverDecision): unknown[] {
  return [approvalId, n, d.user, d.decision, d.reason ?? null, ms(d.at)];
}

/** Values for INSERT INTO grants (GRANT_COLUMNS). */
export function grantValues(g: GrantRecord): unknown[] {
  return [
    g.id,
    g.approvalId,
    g.namespace,
    g.requester.pod,
    g.requester.podUID ?? null,
    g.requester.serviceAccount,
    g.rule,
    g.fingerprint,
    g.summary,
    ms(g.createdAt),
    ms(g.until),
    g.revokedAt ? ms(g.revokedAt) : null,
    g.revokedBy ?? null,
  ];
}

export function rowToGrant(r: Row): GrantRecord {
  return {
    id: String(r.id),
    approvalId: String(r.approval_id),
    namespace: String(r.namespace),
    requester: {
      namespace: String(r.namespace),
      pod: String(r.pod),
      ...(r.pod_uid !== null && r.pod_uid !== undefined ? { podUID: String(r.pod_uid) } : {}),
      serviceAccount: String(r.service_account),
    },
    rule: String(r.rule),
    fingerprint: String(r.fingerprint),
    summary: String(r.summary),
    createdAt: iso(r.created_ms),
    until: iso(r.until_ms),
    ...(r.revoked_ms !== null && r.revoked_ms !== undefined ? { revokedAt: iso(r.revoked_ms) } : {}),
    ...(r.revoked_by !== null && r.revoked_by !== undefined ? { revokedBy: String(r.revoked_by) } : {}),
  };
}

const marks = (n: number) => Array.from({ length: n }, () => '?').join(', ');

/** The statements both backends run (`?` placeholders; `{lock}` is ` FOR UPDATE` in PostgreSQL). */
export const APPROVAL_SQL = {
  /** The 20 columns of `approvalValues`, then the owning replica. */
  insertApproval: `INSERT INTO approvals (${APPROVAL_COLUMNS}, owner) VALUES (${marks(21)})`,
  heartbeat:
    'INSERT INTO approval_replicas (id, seen_ms) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET seen_ms = excluded.seen_ms',
  forgetStaleReplicas: 'DELETE FROM approval_replicas WHERE seen_ms < ?',
  /** Pending requests whose owning replica has not been seen since `?` (or is gone), soonest expiry first. */
  orphanIds:
    "SELECT a.id FROM approvals a LEFT JOIN approval_replicas r ON r.id = a.owner WHERE a.state = 'pending' AND a.owner IS NOT NULL AND (r.id IS NULL OR r.seen_ms < ?) ORDER BY a.expires_ms LIMIT ?",
  countPending: "SELECT count(*) AS n FROM approvals WHERE pod_uid = ? AND state = 'pending'",
  countPendingInNamespace: "SELECT count(*) AS n FROM approvals WHERE namespace = ? AND state = 'pending'",
  get: `SELECT ${APPROVAL_COLUMNS} FROM approvals WHERE id = ?`,
  getForUpdate: `SELECT ${APPROVAL_COLUMNS} FROM approvals WHERE id = ?{lock}`,
  decisionsOf: `SELECT ${DECISION_COLUMNS} FROM approval_decisions WHERE approval_id = ? ORDER BY n`,
  insertDecision: `INSERT INTO approval_decisions (${DECISION_COLUMNS}) VALUES (${marks(6)})`,
  setState: "UPDATE approvals SET state = ?, decided_ms = ?, grant_id = ? WHERE id = ? AND state = 'pending'",
  insertGrant: `INSERT INTO grants (${GRANT_COLUMNS}) VALUES (${marks(13)})`,
  findGrant: `SELECT ${GRANT_COLUMNS} FROM grants WHERE pod_uid = ? AND rule = ? AND fingerprint = ? AND revoked_ms IS NULL AND until_ms > ? ORDER BY until_ms DESC LIMIT 1`,
  getGrant: `SELECT ${GRANT_COLUMNS} FROM grants WHERE id = ?`,
  getGrantForUpdate: `SELECT ${GRANT_COLUMNS} FROM grants WHERE id = ?{lock}`,
  revokeGrant: 'UPDATE grants SET revoked_ms = ?, revoked_by = ? WHERE id = ? AND revoked_ms IS NULL',
  pruneDecisions:
    "DELETE FROM approval_decisions WHERE approval_id IN (SELECT id FROM approvals WHERE state <> 'pending' AND decided_ms < ?)",
  pruneApprovals: "DELETE FROM approvals WHERE state <> 'pending' AND decided_ms < ?",
  pruneGrants: 'DELETE FROM grants WHERE until_ms < ? OR revoked_ms < ?',
  dueIds: "SELECT id FROM approvals WHERE state = 'pending' AND expires_ms <= ? ORDER BY expires_ms LIMIT ?",
} as const;

function approvalWhere(
  states: readonly string[] | undefined,
  namespaces: readonly string[] | undefined,
): { where: string; params: unknown[] } {
  const where: string[] = [];
  const params: unknown[] = [];
  if (states) {
    where.push(`state IN (${marks(states.length)})`);
    params.push(...states);
  }
  if (namespaces) {
    where.push(namespaces.length ? `namespace IN (${marks(namespaces.length)})` : '1 = 0');
    params.push(...namespaces);
  }
  return { where: where.length ? ` WHERE ${where.join(' AND ')}` : '', params };
}

/**
 * SELECT of approvals matching a filter; `?` placeholders. Only pending ones:
 * soonest expiry first (what needs a decision first); otherwise newest first.
 */
export function listApprovalsSql(
  states: readonly string[] | undefined,
  namespaces: readonly string[] | undefined,
  limit: number,
): { sql: string; params: unknown[] } {
  const { where, params } = approvalWhere(states, namespaces);
  const onlyPending = states?.length === 1 && states[0] === 'pending';
  const order = onlyPending ? 'expires_ms, created_ms, id' : 'created_ms DESC, id';
  return {
    sql: `SELECT ${APPROVAL_COLUMNS} FROM approvals${where} ORDER BY ${order} LIMIT ?`,
    params: [...params, limit],
  };
}

/** How many approvals match a filter (`listApprovalsSql` without its limit). */
export function countApprovalsSql(
  states: readonly string[] | undefined,
  namespaces: readonly string[] | undefined,
): { sql: string; params: unknown[] } {
  const { where, params } = approvalWhere(states, namespaces);
  return { sql: `SELECT count(*) AS n FROM approvals${where}`, params };
}

export function listNamespacesSql(states: readonly string[] | undefined): { sql: string; params: unknown[] } {
  return states
    ? {
        sql: `SELECT DISTINCT namespace FROM approvals WHERE state IN (${marks(states.length)}) ORDER BY namespace`,
        params: [...states],
      }
    : { sql: 'SELECT DISTINCT namespace FROM approvals ORDER BY namespace', params: [] };
}

export function listGrantsSql(
  namespaces: readonly string[] | undefined,
  activeAt: number | undefined,
  limit: number,
): { sql: string; params: unknown[] } {
  const where: string[] = [];
  const params: unknown[] = [];
  if (namespaces) {
    where.push(namespaces.length ? `namespace IN (${marks(namespaces.length)})` : '1 = 0');
    params.push(...namespaces);
  }
  if (activeAt !== undefined) {
    where.push('revoked_ms IS NULL AND until_ms > ?');
    params.push(activeAt);
  }
  params.push(limit);
  return {
    sql: `SELECT ${GRANT_COLUMNS} FROM grants${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY created_ms DESC, id LIMIT ?`,
    params,
  };
}

/**
 * Which replica holds each pending request's connection, and when each
 * replica was last seen (its heartbeat): the requests of a replica that
 * stopped without withdrawing them (crashed, killed) are withdrawn by the
 * others once its lease runs out. Rows from before this have no owner.
 */
export function approvalOwnersSql(bigint: 'INTEGER' | 'BIGINT'): string {
  return `
  ALTER TABLE approvals ADD COLUMN owner TEXT;
  CREATE INDEX approvals_owner_state ON approvals (owner, state);
  CREATE TABLE approval_replicas (
    id TEXT PRIMARY KEY,
    seen_ms ${bigint} NOT NULL
  );
  `;
}

/** The schema, the same in both backends but for the integer type of times. */
export function approvalTablesSql(bigint: 'INTEGER' | 'BIGINT'): string {
  return `
  CREATE TABLE approvals (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    namespace TEXT NOT NULL,
    pod TEXT NOT NULL,
    pod_uid TEXT,
    service_account TEXT NOT NULL,
    protocol TEXT NOT NULL,
    audit_id TEXT NOT NULL,
    summary TEXT NOT NULL,
    action_json TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    rule TEXT NOT NULL,
    message TEXT NOT NULL,
    approvals INTEGER NOT NULL,
    approvers_json TEXT NOT NULL,
    grant_ms ${bigint} NOT NULL,
    created_ms ${bigint} NOT NULL,
    expires_ms ${bigint} NOT NULL,
    decided_ms ${bigint},
    grant_id TEXT
  );
  CREATE INDEX approvals_state_namespace ON approvals (state, namespace, created_ms);
  CREATE INDEX approvals_pod_state ON approvals (pod_uid, state);
  CREATE INDEX approvals_created ON approvals (created_ms);

  CREATE TABLE approval_decisions (
    approval_id TEXT NOT NULL,
    n INTEGER NOT NULL,
    username TEXT NOT NULL,
    decision TEXT NOT NULL,
    reason TEXT,
    at_ms ${bigint} NOT NULL,
    PRIMARY KEY (approval_id, n)
  );

  CREATE TABLE grants (
    id TEXT PRIMARY KEY,
    approval_id TEXT NOT NULL,
    namespace TEXT NOT NULL,
    pod TEXT NOT NULL,
    pod_uid TEXT,
    service_account TEXT NOT NULL,
    rule TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    summary TEXT NOT NULL,
    created_ms ${bigint} NOT NULL,
    until_ms ${bigint} NOT NULL,
    revoked_ms ${bigint},
    revoked_by TEXT
  );
  CREATE INDEX grants_match ON grants (pod_uid, rule, fingerprint);
  CREATE INDEX grants_created ON grants (created_ms);
  `;
}
