/**
 * Human-readable rendering of events for the operator verbs (table rows,
 * replay lines). Every cell is made visible (terminal-safe.ts) before it is
 * measured and padded: what the agent put in an event is shown, never
 * interpreted by the terminal.
 */
import type { AuditEvent } from '@chaperone/shared';
import { visible } from './terminal-safe.ts';

export function summary(e: AuditEvent): string {
  const c = e.chaperone;
  if (c.exec) return `$ ${c.exec.argv.join(' ')}`;
  if (c.sql?.text) return c.sql.text;
  const r = e.objectRef;
  if (r?.resource)
    return `${r.resource}${r.subresource ? `/${r.subresource}` : ''}${r.name ? ` ${r.name}` : ''}`;
  return e.requestURI;
}

const COLUMNS = ['TIME', 'NAMESPACE/POD', 'PROTOCOL', 'VERB', 'DECISION', 'RULE', 'WHAT'] as const;

export function row(e: AuditEvent): string[] {
  const c = e.chaperone;
  return [
    e.requestReceivedTimestamp.replace(/(\.\d{3})\d*Z$/, '$1Z'),
    `${c.source.namespace}/${c.source.pod}`,
    c.protocol,
    e.verb,
    c.decision.action,
    c.decision.rule,
    oneLine(summary(e), 80),
  ];
}

function oneLine(s: string, max: number): string {
  // Line breaks and tabs (multi-line SQL) fold to one space; every other control stays visible.
  const flat = visible(s.replace(/[ \t\n]+/g, ' ').trim());
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** Fixed widths, so rows printed over time (tail -f) line up with the header. */
const WIDTHS = [24, 28, 10, 8, 8, 20];

function format(cells: readonly string[]): string {
  return cells
    .map((cell, i) => (i < WIDTHS.length ? visible(cell).padEnd(WIDTHS[i] ?? 0) : visible(cell)))
    .join('  ');
}

export const TABLE_HEADER = format(COLUMNS);

export function tableRows(events: readonly AuditEvent[]): string[] {
  return events.map((e) => format(row(e)));
}
