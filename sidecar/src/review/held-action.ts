/**
 * What an approver reads about a held action (approval-protocol.ts
 * HeldAction) and its one-line summary, made from the Action the policy
 * decided on. Pure. Only what the agent asked for, already masked: no
 * request bodies, no SQL literals (the statement comes normalised).
 */
import type { Action, ApprovalProtocol, HeldAction } from '@chaperone/shared';

export interface HeldDescription {
  readonly protocol: ApprovalProtocol;
  readonly action: HeldAction;
  readonly summary: string;
}

const MAX_SUMMARY = 1024;

function clip(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}

/** Members set only when present, so the fingerprint of the same action is always the same. */
function defined(o: Record<string, unknown>): HeldAction {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined && v !== '') out[k] = v;
  return out as unknown as HeldAction;
}

/** A Kubernetes API request, or an exec / attach session. */
export function kubeHeld(a: Action): HeldDescription {
  if (a.exec && a.exec.kind !== 'portforward') {
    const action = defined({
      verb: a.exec.kind,
      namespace: a.namespace,
      name: a.name,
      argv: a.exec.argv.length > 0 ? [...a.exec.argv] : undefined,
      container: a.exec.container,
    });
    const where = `${a.namespace ? `-n ${a.namespace} ` : ''}${a.name ?? ''}${a.exec.container ? ` -c ${a.exec.container}` : ''}`;
    const argv = a.exec.argv.length > 0 ? ` -- ${a.exec.argv.join(' ')}` : '';
    return { protocol: 'exec', action, summary: clip(`${a.exec.kind} ${where}${argv}`, MAX_SUMMARY) };
  }
  const action = defined({
    verb: a.verb,
    apiGroup: a.apiGroup,
    resource: a.resource,
    subresource: a.subresource,
    namespace: a.namespace,
    // A non-resource request (`/logs/…`) is named by its path.
    name: a.name ?? a.nonResourceURL,
  });
  const what = a.nonResourceURL
    ? a.nonResourceURL
    : `${a.resource ?? ''}${a.apiGroup ? `.${a.apiGroup}` : ''}${a.subresource ? `/${a.subresource}` : ''}${a.name ? ` ${a.name}` : ''}`;
  const summary = `${a.verb} ${what}${a.namespace ? ` -n ${a.namespace}` : ''}`;
  return { protocol: 'kubernetes', action, summary: clip(summary, MAX_SUMMARY) };
}

/** A SQL statement: its kind and its text normalised (literals replaced by $n). */
export function sqlHeld(kind: string, normalized: string, database: string | undefined): HeldDescription {
  const sql = clip(normalized, 32 * 1024);
  const action = defined({ verb: kind, sql, database });
  return {
    protocol: 'postgres',
    action,
    summary: clip(`${database ? `${database}: ` : ''}${normalized.replace(/\s+/g, ' ')}`, MAX_SUMMARY),
  };
}
