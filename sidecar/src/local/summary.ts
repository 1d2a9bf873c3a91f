/**
 * What a local session's guard decided, from its audit events: counts by
 * decision, the values masked, and one line per refused or held request.
 */
import type { AuditEvent } from '@chaperone/shared';

export interface SessionSummary {
  readonly events: number;
  readonly allowed: number;
  readonly denied: number;
  readonly masked: number;
  readonly held: number;
  /** Values replaced in answers (Secret data, SQL columns, exec output). */
  readonly maskedValues: number;
  readonly execSessions: string[];
  /** The refused and held requests, oldest first. */
  readonly notable: { readonly decision: string; readonly rule: string; readonly what: string }[];
}

/** What a request was, in one line: the command, the SQL, or verb and object (control characters shown as ?). */
export function describeRequest(e: AuditEvent): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: they are what is replaced
  return requestText(e).replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
}

function requestText(e: AuditEvent): string {
  const c = e.chaperone;
  if (c.exec?.argv?.length) return `${c.protocol} ${c.exec.argv.join(' ')}`;
  if (c.sql?.text) return `sql ${c.sql.database ?? ''} ${c.sql.text}`.replace(/\s+/g, ' ');
  const o = e.objectRef;
  if (!o?.resource) return `${e.verb} ${e.requestURI}`;
  const res = `${o.resource}${o.subresource ? `/${o.subresource}` : ''}`;
  const ns = o.namespace && o.resource !== 'namespaces' ? `-n ${o.namespace}` : '';
  return [e.verb, res, o.name, ns].filter(Boolean).join(' ');
}

export function summarize(events: readonly AuditEvent[]): SessionSummary {
  const count = { allow: 0, deny: 0, mask: 0, review: 0 };
  let maskedValues = 0;
  const execSessions = new Set<string>();
  const notable: SessionSummary['notable'] = [];
  for (const e of events) {
    const d = e.chaperone.decision;
    count[d.action] += 1;
    maskedValues += e.chaperone.maskedFields;
    if (e.chaperone.exec && e.chaperone.sessionId) execSessions.add(e.chaperone.sessionId);
    if (d.action === 'deny' || d.action === 'review')
      notable.push({ decision: d.action, rule: d.rule, what: describeRequest(e) });
  }
  return {
    events: events.length,
    allowed: count.allow,
    denied: count.deny,
    masked: count.mask,
    held: count.review,
    maskedValues,
    execSessions: [...execSessions],
    notable,
  };
}

export function formatSummary(s: SessionSummary): string {
  const lines = [
    `chaperone: ${s.events} request(s) through the guard: ${s.allowed} allowed, ${s.denied} denied, ${s.masked} masked, ${s.held} held for review; ${s.maskedValues} value(s) masked`,
  ];
  for (const n of s.notable.slice(0, 20)) lines.push(`  ${n.decision.padEnd(6)} ${n.rule}: ${n.what}`);
  if (s.notable.length > 20) lines.push(`  … and ${s.notable.length - 20} more (chaperone local audit)`);
  if (s.execSessions.length > 0)
    lines.push(`  exec sessions recorded: ${s.execSessions.join(', ')} (chaperone replay <session>)`);
  return lines.join('\n');
}
