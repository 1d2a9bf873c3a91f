/**
 * What an approver reads about a held action (approval-protocol.ts
 * HeldAction) and its one-line summary, made from the Action the policy
 * decided on and the bytes of the request. Pure but for the digest's key.
 * Masked: an exec's argv and a request's query and body through the
 * built-in credential detectors (and a Secret's values), SQL normalised with
 * literals replaced by $n. The `digest` (action-digest.ts) pins the raw
 * bytes: the fingerprint, and so an approval or a grant, covers exactly the
 * action the approver was shown.
 */
import type { Action, ApprovalProtocol, HeldAction } from '@chaperone/shared';
import type { ActionDigest } from './action-digest.ts';
import { maskDetected } from './detected-secrets.ts';
import { type BodyFacts, heldBody } from './held-body.ts';

export interface HeldDescription {
  readonly protocol: ApprovalProtocol;
  readonly action: HeldAction;
  readonly summary: string;
}

/** The bytes of a Kubernetes request beyond what the Action says. */
export interface KubeRequestBytes {
  readonly method: string;
  /** The query as sent (after `?`, not decoded). */
  readonly rawQuery: string;
  /** The query as the API server reads it. */
  readonly query: URLSearchParams;
  /** A write's body, when there is one. */
  readonly body?: Omit<BodyFacts, 'secrets'>;
}

export const MAX_SUMMARY = 1024;

/** At most `max` characters; a longer text keeps its start and its end (often the dangerous part), `…` between. */
export function clip(s: string, max: number): string {
  if (s.length <= max) return s;
  const tail = Math.floor((max - 1) / 2);
  return `${s.slice(0, max - 1 - tail)}…${s.slice(s.length - tail)}`;
}

/** One line: line breaks and other control or direction characters written as escapes. */
function oneLine(s: string): string {
  return s.replace(
    /[\p{Cc}\u202a-\u202e\u2066-\u2069]/gu,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/** Members set only when present, so the fingerprint of the same action is always the same. */
function defined(o: Record<string, unknown>): HeldAction {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined && v !== '') out[k] = v;
  return out as unknown as HeldAction;
}

/** At most `max` lines (the contract's bound), the last saying how many more there were (the digest still pins them all). */
function atMost(lines: readonly string[], max: number, what: string): string[] {
  if (lines.length <= max) return [...lines];
  return [...lines.slice(0, max - 1), `… ${lines.length - max + 1} more ${what} not shown`];
}

/** The query parameters, sorted `key=value`, masked. */
export function queryLines(query: URLSearchParams): string[] {
  const lines: string[] = [];
  for (const [k, v] of query) lines.push(clip(maskDetected(`${k}=${v}`).text, 1024));
  return atMost(lines.sort(), 64, 'parameters');
}

/** A Kubernetes API request, or an exec / attach session. */
export function kubeHeld(a: Action, digest: ActionDigest, request?: KubeRequestBytes): HeldDescription {
  if (a.exec && a.exec.kind !== 'portforward') {
    const e = a.exec;
    const argv = e.argv.map((x) => maskDetected(x).text);
    const action = defined({
      verb: e.kind,
      namespace: a.namespace,
      name: a.name,
      argv: argv.length > 0 ? argv : undefined,
      container: e.container,
      stdin: e.stdin,
      tty: e.tty,
      digest: digest([
        'exec',
        e.kind,
        e.container ?? '',
        String(e.stdin === true),
        String(e.tty === true),
        String(e.argv.length),
        ...e.argv,
      ]),
    });
    const where = `${a.namespace ? `-n ${a.namespace} ` : ''}${a.name ?? ''}${e.container ? ` -c ${e.container}` : ''}`;
    const shown = argv.length > 0 ? ` -- ${argv.join(' ')}` : '';
    return { protocol: 'exec', action, summary: clip(oneLine(`${e.kind} ${where}${shown}`), MAX_SUMMARY) };
  }
  const secrets = a.resource === 'secrets';
  const query = request ? queryLines(request.query) : [];
  const body = request?.body ? heldBody({ ...request.body, secrets }) : undefined;
  const action = defined({
    verb: a.verb,
    apiGroup: a.apiGroup,
    resource: a.resource,
    subresource: a.subresource,
    namespace: a.namespace,
    // A non-resource request (`/logs/…`) is named by its path.
    name: a.name ?? a.nonResourceURL,
    query: query.length > 0 ? query : undefined,
    body,
    // The content type too: the same bytes as a merge or a strategic merge patch change different things.
    digest: request
      ? digest([
          'kubernetes',
          request.method,
          request.rawQuery,
          request.body?.contentType ?? '',
          request.body?.bytes ?? '',
        ])
      : undefined,
  });
  const what = a.nonResourceURL
    ? a.nonResourceURL
    : `${a.resource ?? ''}${a.apiGroup ? `.${a.apiGroup}` : ''}${a.subresource ? `/${a.subresource}` : ''}${a.name ? ` ${a.name}` : ''}`;
  const summary = `${a.verb} ${what}${a.namespace ? ` -n ${a.namespace}` : ''}${query.length > 0 ? ` ?${query.join('&')}` : ''}`;
  return { protocol: 'kubernetes', action, summary: clip(oneLine(summary), MAX_SUMMARY) };
}

export interface SqlHeldFacts {
  readonly kind: string;
  /** The statement normalised (literals replaced by $n). */
  readonly normalized: string;
  readonly database: string | undefined;
  /** The action digest of the statement's exact text (and a Bind's values). */
  readonly digest: string;
  /** A Bind's parameters as bind-params.ts describes them. */
  readonly params?: readonly string[];
}

/** A SQL statement: its kind, its text normalised, its database, and a Bind's parameters. */
export function sqlHeld(s: SqlHeldFacts): HeldDescription {
  const action = defined({
    verb: s.kind,
    sql: clip(s.normalized, 32 * 1024),
    database: s.database,
    params: s.params && s.params.length > 0 ? atMost(s.params, 256, 'parameters') : undefined,
    digest: s.digest,
  });
  const n = s.params?.length ?? 0;
  const params = n > 0 ? ` [${n} parameter${n === 1 ? '' : 's'}]` : '';
  return {
    protocol: 'postgres',
    action,
    summary: clip(
      oneLine(`${s.database ? `${s.database}: ` : ''}${s.normalized.replace(/\s+/g, ' ')}${params}`),
      MAX_SUMMARY,
    ),
  };
}
