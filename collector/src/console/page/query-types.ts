/**
 * The answers of the query API routes the console's views read (types only):
 * /v1/whoami, /v1/overview, /v1/sessions, /v1/sessions/{id}, /v1/events,
 * /v1/events/{id}/chain and /v1/report. Events themselves are the stored
 * audit events (`AuditEvent` of @chaperone/shared), already masked.
 */
import type { AuditEvent } from '@chaperone/shared';
import type {
  AccessReportRow,
  OutcomeCounts,
  OverviewCounts,
  SessionSummary,
} from '../../events/console-answers.ts';

export interface WhoAmI {
  readonly subject: string;
  readonly namespaces: '*' | readonly string[];
  readonly via: string;
}

/** Blocked, masked and approved counts (and the total) of one group. */
export type Counts = OutcomeCounts;

/** /v1/overview: the store's counts, and the newest blocked events as stored. */
export interface Overview extends OverviewCounts {
  readonly latestBlocked: readonly AuditEvent[];
}

export type { SessionSummary };

export interface Page<T> {
  readonly items: readonly T[];
  readonly nextCursor?: string;
}

export interface SessionEvents {
  readonly sessionId: string;
  readonly recording: boolean;
  readonly events: readonly AuditEvent[];
}

export interface ChainPosition {
  readonly sidecarId: string;
  readonly seq: number;
  readonly hash: string;
  readonly prevHash: string;
  readonly previous: { readonly auditID: string; readonly seq: number; readonly hash: string } | null;
  readonly next: { readonly auditID: string; readonly seq: number; readonly prevHash: string } | null;
  readonly verified: {
    readonly ok: boolean;
    readonly checked: number;
    readonly problems: readonly string[];
    readonly checkpoint: { readonly signedAt: string; readonly seq: number } | null;
  };
}

export type ReportRow = AccessReportRow;

export interface Report {
  readonly since: string;
  readonly until: string;
  readonly generatedAt: string;
  readonly rows: readonly ReportRow[];
}
