/**
 * The answers of the query API routes the console's views read (types only):
 * /v1/whoami, /v1/overview, /v1/sessions, /v1/sessions/{id}, /v1/events,
 * /v1/events/{id}/chain and /v1/report. Events themselves are the stored
 * audit events (`AuditEvent` of @chaperone/shared), already masked.
 */
import type { AuditEvent } from '@chaperone/shared';

export interface WhoAmI {
  readonly subject: string;
  readonly namespaces: '*' | readonly string[];
  readonly via: string;
}

/** Blocked, masked and approved counts (and the total) of one group. */
export interface Counts {
  readonly total: number;
  readonly blocked: number;
  readonly masked: number;
  readonly approved: number;
}

export interface Overview {
  readonly since: string;
  readonly until: string;
  readonly bucketSeconds: number;
  readonly series: readonly {
    readonly t: string;
    readonly allowed: number;
    readonly blocked: number;
    readonly masked: number;
    readonly approved: number;
  }[];
  readonly byRule: readonly { readonly rule: string; readonly action: string; readonly count: number }[];
  readonly byNamespace: readonly (Counts & { readonly namespace: string })[];
  readonly byProtocol: readonly (Counts & { readonly protocol: string })[];
  readonly latestBlocked: readonly AuditEvent[];
  readonly agents: readonly (Counts & {
    readonly namespace: string;
    readonly serviceAccount: string;
    readonly pods: number;
    readonly lastSeen: string;
  })[];
}

export interface SessionSummary {
  readonly sessionId: string;
  readonly protocol: string;
  readonly namespace: string;
  readonly pod: string;
  readonly serviceAccount: string;
  readonly startedAt: string;
  readonly lastAt: string;
  readonly events: number;
  readonly blocked: number;
  readonly recording: boolean;
  readonly live: boolean;
  readonly summary: string;
}

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

export const REPORT_CATEGORIES = ['read', 'changed', 'denied', 'approved', 'masked'] as const;

export interface ReportRow {
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly category: (typeof REPORT_CATEGORIES)[number];
  readonly protocol: string;
  readonly verb: string;
  readonly resource: string;
  readonly count: number;
  readonly first: string;
  readonly last: string;
}

export interface Report {
  readonly since: string;
  readonly until: string;
  readonly generatedAt: string;
  readonly rows: readonly ReportRow[];
}
