/**
 * Words and numbers the page shows, as pure functions (tested in Node).
 *
 * Every string the agent chose (summary, argv, SQL, object names, rule,
 * message, requester, decisions) goes through `shown()`: control, bidi and
 * invisible characters are written out as `\u{NNNN}` (the same class the CLI
 * uses, text/visible-text.ts), so a command cannot be made to read like a
 * comment; `hiddenCharacters()` tells the card to warn that it did so.
 */
import type { ApprovalView, HeldAction } from '@chaperone/shared';
import { hasUnsafe, visible } from '../../text/visible-text.ts';

/** Agent-chosen text as the page shows it: control, bidi and invisible characters made visible. */
export function shown(text: string | undefined): string {
  return text === undefined ? '' : visible(text);
}

/**
 * Multi-line agent-chosen text (a request body, SQL) as the page shows it
 * in a `pre`: each line through `shown()`, the line breaks kept.
 */
export function shownLines(text: string | undefined): string {
  return text === undefined ? '' : text.split('\n').map(shown).join('\n');
}

/** Fields shown line by line (`shownLines`): their line breaks are layout, not hidden characters. */
const MULTI_LINE = new Set(['body', 'sql']);

function strings(v: unknown, out: string[], key = ''): string[] {
  if (typeof v === 'string') out.push(MULTI_LINE.has(key) ? v.replaceAll('\n', '') : v);
  else if (Array.isArray(v)) for (const x of v) strings(x, out);
  else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) strings(x, strings(k, out), k);
  return out;
}

/** True when any agent-chosen string of the request holds a character `shown()` writes out. */
export function hiddenCharacters(v: ApprovalView): boolean {
  return strings(v, []).some(hasUnsafe);
}

/** `4m 05s` left, `1h 02m`, or `expired`. */
export function formatRemaining(ms: number): string {
  if (ms <= 0) return 'expired';
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
  const hours = Math.floor(m / 60);
  return `${hours}h ${String(m % 60).padStart(2, '0')}m`;
}

/** `2026-12-07 04:31:05 UTC` from an RFC 3339 time (the input itself when it is not one). */
export function formatTime(iso: string | undefined): string {
  if (!iso) return '';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  return `${new Date(t).toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

/** The Kubernetes object an action names: `apps/deployments/scale web -n shop`. */
export function describeObject(a: HeldAction): string {
  const kind = [a.apiGroup, a.resource, a.subresource].filter(Boolean).join('/');
  const parts = [kind, a.name, a.namespace ? `-n ${a.namespace}` : ''].filter(Boolean);
  return shown(parts.join(' '));
}

export function describeRequester(v: Pick<ApprovalView, 'requester'>): string {
  const r = v.requester;
  return shown(`${r.namespace}/${r.pod} (service account ${r.serviceAccount})`);
}

/** `1 of 2 approvals` so far. */
export function approvalProgress(v: Pick<ApprovalView, 'approvals' | 'decisions'>): string {
  const got = new Set(v.decisions.filter((d) => d.decision === 'approve').map((d) => d.user)).size;
  return `${got} of ${v.approvals} approval${v.approvals === 1 ? '' : 's'}`;
}

/**
 * argv as a shell would read it back: arguments with anything unusual in
 * single quotes, control/bidi/invisible characters written out.
 */
export function formatArgv(argv: readonly string[]): string {
  return shown(
    argv.map((a) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`)).join(' '),
  );
}

/** `Showing 100 of 340 pending requests …` when a list was cut short, else undefined. */
export function listCutShort(shown: number, total: number | undefined): string | undefined {
  if (total === undefined || total <= shown) return undefined;
  return `Showing ${shown} of ${total} pending requests, those expiring soonest first. Decide these, or use the CLI with --namespace to see the others.`;
}

/** A chart bucket's length in words: `5 minutes`, `hour`, `day`. */
export function bucketName(seconds: number): string {
  if (seconds % 86_400 === 0) return seconds === 86_400 ? 'day' : `${seconds / 86_400} days`;
  if (seconds % 3600 === 0) return seconds === 3600 ? 'hour' : `${seconds / 3600} hours`;
  if (seconds % 60 === 0) return seconds === 60 ? 'minute' : `${seconds / 60} minutes`;
  return `${seconds} s`;
}

/** `Signed in as alice (all namespaces)` / `… (namespaces shop, web)`, from /v1/whoami. */
export function scopeText(w: { subject: string; namespaces: '*' | readonly string[] }): string {
  const scope =
    w.namespaces === '*'
      ? 'all namespaces'
      : w.namespaces.length
        ? `namespace${w.namespaces.length === 1 ? '' : 's'} ${w.namespaces.join(', ')}`
        : 'no namespaces';
  return shown(`Signed in as ${w.subject} (${scope})`);
}

/** What a session may do, in words (the page's header). */
export function abilityText(can: { readonly read: boolean; readonly approve: boolean }): string {
  if (can.read && can.approve) return 'may read the audit log and decide approvals';
  if (can.read) return 'may read the audit log, not decide approvals';
  return can.approve
    ? 'may decide approvals, not read the audit log'
    : 'may neither read the audit log nor decide approvals';
}
