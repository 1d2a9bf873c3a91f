/**
 * What a stored audit event did, in words, as pure functions (tested in
 * Node): the full command line of an exec, the verb and object of a
 * Kubernetes request, the normalised SQL of a statement, the ports of a
 * port-forward, and the decision with how a review ended. Every string the
 * agent chose goes through `shown()` / `formatArgv()` (format.ts).
 */
import type { AuditEvent } from '@chaperone/shared';
import { formatArgv, shown } from './format.ts';

/** The object of a Kubernetes request: `apps/deployments/scale web -n shop`. */
export function eventObject(e: AuditEvent): string {
  const o = e.objectRef;
  if (!o) return '';
  const kind = [o.apiGroup, o.resource, o.subresource].filter(Boolean).join('/');
  return shown([kind, o.name, o.namespace ? `-n ${o.namespace}` : ''].filter(Boolean).join(' '));
}

/** The event's action in full: argv, verb and object, SQL text, or ports. */
export function eventText(e: AuditEvent): string {
  const c = e.chaperone;
  if (c.exec?.line !== undefined) return `input line: ${shown(c.exec.line)}`;
  if (c.exec?.lineProblem !== undefined) return `input refused: ${shown(c.exec.lineProblem)}`;
  if (c.exec?.argv.length) return formatArgv(c.exec.argv);
  if (c.portForward) {
    const ports = c.portForward.port !== undefined ? [c.portForward.port] : (c.portForward.ports ?? []);
    return `port-forward${ports.length ? ` ${ports.join(', ')}` : ''}`;
  }
  if (c.sql) {
    if (c.sql.text) return shown(c.sql.text);
    const kinds = c.sql.statements.map((s) => s.kind).join('; ');
    return shown(kinds || `${c.sql.database ?? ''} ${c.sql.user ?? ''}`.trim());
  }
  const object = eventObject(e);
  return `${shown(e.verb)}${object ? ` ${object}` : ''}`;
}

/** `deny`, `mask`, `review → approved`, `allow (2 masked)`. */
export function decisionText(e: AuditEvent): string {
  const d = e.chaperone.decision;
  const base = d.approval ? `${d.action} → ${d.approval.state}` : d.action;
  const masked = e.chaperone.maskedFields;
  return masked > 0 && d.action !== 'mask' ? `${base} (${masked} masked)` : base;
}

/** A CSS class for the decision: blocked, masked, approved or allowed. */
export function decisionClass(e: AuditEvent): 'blocked' | 'masked' | 'approved' | 'allowed' {
  const d = e.chaperone.decision;
  if (d.approval) return d.approval.state === 'approved' ? 'approved' : 'blocked';
  if (d.action === 'deny') return 'blocked';
  if (d.action === 'mask' || e.chaperone.maskedFields > 0) return 'masked';
  return 'allowed';
}

/** `shop/agent-0` and the service account, as shown in lists. */
export function eventSource(e: AuditEvent): string {
  const s = e.chaperone.source;
  return shown(`${s.namespace}/${s.pod}`);
}
