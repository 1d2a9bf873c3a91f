/**
 * The audit event of one SQL statement: the same Kubernetes-audit-shaped
 * event as an API request's (so the collector, Falco and `chaperone replay`
 * read it alike), with protocol `postgres`, verb `query`, the session id of
 * the agent's connection, and `chaperone.sql`: the database, the statement
 * normalised (literals replaced, never their values), its fingerprint, kinds,
 * tables, functions, the rows the server reported and how long it took;
 * `maskedFields` counts the values masked in what it returned.
 * Pure apart from the id and the clock.
 */
import { randomUUID } from 'node:crypto';
import { type Decision, microTime, type SqlStatement, type UnchainedEvent } from '@chaperone/shared';
import type { Identity } from '../identity.ts';

export interface StatementOutcome {
  /** The server completed it: rows from CommandComplete, when the tag has a count. */
  readonly rows?: number;
  /** The server failed it with this SQLSTATE. */
  readonly sqlstate?: string;
  /** Never sent, or discarded by the server after an earlier error. */
  readonly notRun?: string;
}

export interface StatementRecord {
  readonly identity: Identity;
  readonly sessionId: string;
  readonly database: string;
  /** The database user the sidecar connects as. */
  readonly dbUser: string;
  readonly remoteAddress: string;
  /** The client's application_name. */
  readonly application?: string;
  readonly statement: SqlStatement;
  readonly text: string;
  readonly fingerprint: string;
  readonly decision: Decision;
  readonly receivedAt: Date;
  readonly durationMs?: number;
  /** The sidecar's own time for this statement (classification, decision). */
  readonly overheadMs: number;
  readonly outcome: StatementOutcome;
  /** Values masked in what the statement returned. */
  readonly masked?: number;
  /** The event's id when it was named before (a statement held for review: its approval request names it). */
  readonly auditID?: string;
}

/**
 * The most of a statement's text an event keeps, in characters: with room
 * for the rest of the event, far under the spool's record limit (even at 6
 * bytes a character once JSON-escaped), so a huge statement's event is kept
 * shortened rather than lost. The fingerprint still names the whole statement.
 */
export const MAX_EVENT_SQL_TEXT = 64 * 1024;

/** A statement's text as its event keeps it: shortened past MAX_EVENT_SQL_TEXT, and saying so. */
export function eventText(text: string): string {
  if (text.length <= MAX_EVENT_SQL_TEXT) return text;
  return `${text.slice(0, MAX_EVENT_SQL_TEXT)} … [truncated: ${text.length - MAX_EVENT_SQL_TEXT} more characters]`;
}

/** The number of rows in a CommandComplete tag (`INSERT 0 5`, `SELECT 3`, `COPY 10`), if it has one. */
export function rowsOf(tag: string): number | undefined {
  const m = /^(?:INSERT \d+|SELECT|UPDATE|DELETE|MERGE|COPY|FETCH|MOVE) (\d+)$/.exec(tag);
  return m ? Number(m[1]) : undefined;
}

function responseStatus(r: StatementRecord): NonNullable<UnchainedEvent['responseStatus']> {
  const d = r.decision;
  if (d.action !== 'allow') {
    return { code: 403, message: d.message, metadata: {}, reason: 'Forbidden', status: 'Failure' };
  }
  const o = r.outcome;
  if (o.sqlstate !== undefined) {
    // The server's message may quote values (`invalid input syntax for type integer: "…"`): only its code.
    const said = o.notRun === undefined ? 'the server failed the statement' : `not run: ${o.notRun}`;
    return {
      code: 500,
      message: `${said} (SQLSTATE ${o.sqlstate})`,
      metadata: {},
      reason: `SQLSTATE ${o.sqlstate}`,
      status: 'Failure',
    };
  }
  if (o.notRun !== undefined)
    return { code: 0, message: `not run: ${o.notRun}`, metadata: {}, status: 'Failure' };
  return { code: 200, metadata: {}, status: 'Success' };
}

export function statementEvent(r: StatementRecord, now = new Date()): UnchainedEvent {
  const d = r.decision;
  const s = r.statement;
  const forbidden = d.action !== 'allow' && d.approval?.state !== 'approved';
  const statement: NonNullable<UnchainedEvent['chaperone']['sql']>['statements'][number] = {
    kind: s.kind,
    tables: [...s.tables],
  };
  if (s.kinds) statement.kinds = [...s.kinds];
  if (s.functions) statement.functions = [...s.functions];
  const sql: NonNullable<UnchainedEvent['chaperone']['sql']> = {
    database: r.database,
    statements: [statement],
    text: eventText(r.text),
    user: r.dbUser,
  };
  if (r.fingerprint) sql.fingerprint = r.fingerprint;
  if (r.outcome.rows !== undefined) sql.rows = r.outcome.rows;
  if (r.outcome.sqlstate !== undefined) sql.sqlstate = r.outcome.sqlstate;
  if (r.durationMs !== undefined) sql.durationMs = Math.round(r.durationMs * 1000) / 1000;
  return {
    annotations: {
      'authorization.k8s.io/decision': forbidden ? 'forbid' : 'allow',
      'authorization.k8s.io/reason': `chaperone ${d.reason} ${d.rule}: ${d.message}`.slice(0, 1024),
      'chaperone.dev/rule': d.rule,
    },
    apiVersion: 'audit.k8s.io/v1',
    auditID: r.auditID ?? randomUUID(),
    chaperone: {
      decision: {
        action: d.action,
        // A review: how the hold ended (review/review-outcome.ts).
        ...(d.approval ? { approval: d.approval } : {}),
        message: d.message,
        reason: d.reason,
        rule: d.rule,
      },
      latencyMs: Math.round(r.overheadMs * 1000) / 1000,
      maskedFields: r.masked ?? 0,
      protocol: 'postgres',
      schemaVersion: 1,
      sessionId: r.sessionId,
      source: r.identity.source,
      sql,
    },
    kind: 'Event',
    level: 'Metadata',
    requestReceivedTimestamp: microTime(r.receivedAt),
    requestURI: `postgres:${r.database}`,
    responseStatus: responseStatus(r),
    sourceIPs: [r.remoteAddress],
    stage: 'ResponseComplete',
    stageTimestamp: microTime(now),
    user: r.identity.user,
    ...(r.application ? { userAgent: r.application.slice(0, 2048) } : {}),
    verb: 'query',
  };
}
