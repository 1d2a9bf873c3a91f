/**
 * What the console's rollups count of an event, read once on arrival: its
 * outcome (blocked, masked, approved), how an access review files it (a read
 * or a change, under which verb and resource) and, for an event of a
 * session, the session's kind, a one-line summary and whether it ends it.
 * Pure; the ingest path and the rollups' backfill (from stored JSON) call
 * the same function, so both count alike.
 *
 * - blocked: the action was denied, or held for review and not approved
 *   (denied, expired, unavailable);
 * - approved: held for review and approved;
 * - masked: action `mask`, or values were masked (`maskedFields` > 0);
 * - read: an allowed get/list/watch, or SQL that only reads (SELECT, SHOW,
 *   EXPLAIN, COPY … TO STDOUT); everything else allowed is a change, exec,
 *   attach and port-forward included.
 */
import type { AuditEvent, SqlDetails } from '@chaperone/shared';
import { safeText } from './event-row.ts';

export interface SessionFacts {
  /** exec, attach, portforward or postgres (else the event's protocol). */
  readonly kind: string;
  /** exec/attach: the command line; postgres: database/user; port-forward: the ports. */
  readonly summary: string;
  /** The event that ends the session (exec, attach and port-forward end events). */
  readonly closes: boolean;
}

export interface EventFacts {
  readonly blocked: boolean;
  readonly masked: boolean;
  readonly approved: boolean;
  /** How an access review files it when it was not blocked. */
  readonly change: boolean;
  /** The verb an access review shows (for SQL: the statement kinds). */
  readonly verb: string;
  /** The resource an access review shows (for SQL: database/tables). */
  readonly resource: string;
  readonly session?: SessionFacts;
}

const READ_VERBS = new Set(['get', 'list', 'watch']);
const READ_STATEMENTS = new Set(['SelectStmt', 'VariableShowStmt', 'ExplainStmt']);
const MAX_SUMMARY = 512;
const MAX_RESOURCE = 256;

/** Members read defensively: `prepareEvent` (and so this) also sees events nobody validated. */
const arr = <T>(v: readonly T[] | undefined): readonly T[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string => (typeof v === 'string' ? v : '');

/** Bounded, and safe as a column value (event-row.ts). */
function cut(s: string, max: number): string {
  return safeText(s.length <= max ? s : `${s.slice(0, max - 1)}…`);
}

function sqlReads(sql: SqlDetails): boolean {
  const statements = arr(sql.statements);
  return (
    statements.length > 0 &&
    statements.every((s) => {
      const kinds = arr(s?.kinds).map(str);
      if (s?.kind === 'CopyStmt')
        return (
          kinds.includes('copy-to') &&
          !kinds.some((k) => k.startsWith('copy-from') || k.endsWith('program') || k === 'copy-file')
        );
      return READ_STATEMENTS.has(str(s?.kind)) && kinds.every((k) => k === 'select');
    })
  );
}

function sqlVerb(sql: SqlDetails): string {
  const names = arr(sql.statements).map(
    (s) => str(arr(s?.kinds)[0]) || str(s?.kind).replace(/Stmt$/, '').toLowerCase(),
  );
  return cut([...new Set(names)].join('+') || 'query', MAX_RESOURCE);
}

function sqlResource(sql: SqlDetails): string {
  const tables = [...new Set(arr(sql.statements).flatMap((s) => arr(s?.tables).map(str)))].sort();
  const db = str(sql.database);
  return cut(tables.length ? `${db}/${tables.join(',')}` : db, MAX_RESOURCE);
}

function sessionKind(e: AuditEvent): string {
  const c = e.chaperone;
  if (c.protocol === 'postgres') return 'postgres';
  if (c.portForward) return 'portforward';
  const sub = e.objectRef?.subresource;
  if (sub === 'attach' || sub === 'exec' || sub === 'portforward') return sub;
  return c.exec ? 'exec' : c.protocol;
}

function sessionSummary(e: AuditEvent, kind: string): string {
  const c = e.chaperone;
  if (kind === 'postgres') return cut(`${str(c.sql?.database)}/${str(c.sql?.user)}`, MAX_SUMMARY);
  if (c.portForward) {
    const pf = c.portForward;
    const ports = new Set([
      ...arr(pf.ports),
      ...(typeof pf.port === 'number' ? [pf.port] : []),
      ...arr(pf.used).map((u) => u?.port),
    ]);
    return cut([...ports].sort((a, b) => a - b).join(','), MAX_SUMMARY);
  }
  return cut(arr(c.exec?.argv).map(str).join(' '), MAX_SUMMARY);
}

export function eventFacts(e: AuditEvent): EventFacts {
  const c = e.chaperone;
  const d = c.decision;
  const approved = d.approval?.state === 'approved';
  const blocked = d.action === 'deny' || (d.action === 'review' && !approved);
  const masked = d.action === 'mask' || (typeof c.maskedFields === 'number' && c.maskedFields > 0);
  const resource = str(e.objectRef?.resource);
  const sub = str(e.objectRef?.subresource);
  const full = sub && resource ? `${resource}/${sub}` : resource;
  let change: boolean;
  let verb = str(e.verb);
  let shown = full;
  if (c.sql && typeof c.sql === 'object') {
    change = !sqlReads(c.sql);
    verb = sqlVerb(c.sql);
    shown = sqlResource(c.sql);
  } else if (c.exec || c.portForward || sub === 'exec' || sub === 'attach' || sub === 'portforward') {
    change = true;
  } else {
    change = !READ_VERBS.has(verb);
  }
  let session: SessionFacts | undefined;
  if (typeof c.sessionId === 'string') {
    const kind = sessionKind(e);
    session = {
      kind: cut(kind, MAX_RESOURCE),
      summary: sessionSummary(e, kind),
      closes: c.exec?.durationMs !== undefined || c.portForward?.durationMs !== undefined,
    };
  }
  return {
    blocked,
    masked,
    approved,
    change,
    verb: cut(verb, MAX_RESOURCE),
    resource: cut(shown, MAX_RESOURCE),
    ...(session ? { session } : {}),
  };
}
