/**
 * Words and numbers the page shows, as pure functions (tested in Node).
 */
import type { ApprovalView, HeldAction } from '@chaperone/shared';

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
  return parts.join(' ');
}

export function describeRequester(v: Pick<ApprovalView, 'requester'>): string {
  const r = v.requester;
  return `${r.namespace}/${r.pod} (service account ${r.serviceAccount})`;
}

/** `1 of 2 approvals` so far. */
export function approvalProgress(v: Pick<ApprovalView, 'approvals' | 'decisions'>): string {
  const got = new Set(v.decisions.filter((d) => d.decision === 'approve').map((d) => d.user)).size;
  return `${got} of ${v.approvals} approval${v.approvals === 1 ? '' : 's'}`;
}

/** argv as a shell would read it back: arguments with anything unusual in single quotes. */
export function formatArgv(argv: readonly string[]): string {
  return argv
    .map((a) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`))
    .join(' ');
}
