/**
 * What the console's routes answer with (/v1/overview, /v1/sessions,
 * /v1/report), as the store reads it from the rollups: types and one constant
 * only, no imports, so both the store and the console's browser code
 * (console/page/query-types.ts) take them from here.
 */

/** How an access review files an event (event-facts.ts). */
export const ACCESS_CATEGORIES = ['read', 'changed', 'denied', 'approved', 'masked'] as const;
export type AccessCategory = (typeof ACCESS_CATEGORIES)[number];

export interface OutcomeCounts {
  readonly total: number;
  readonly blocked: number;
  readonly masked: number;
  readonly approved: number;
}

/** The console's overview, from the rollups (rollup-sql.ts); times RFC 3339. */
export interface OverviewCounts {
  /** The range counted: `since` and `until` rounded to whole minutes. */
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
  readonly byNamespace: readonly (OutcomeCounts & { readonly namespace: string })[];
  readonly byProtocol: readonly (OutcomeCounts & { readonly protocol: string })[];
  readonly agents: readonly (OutcomeCounts & {
    readonly namespace: string;
    readonly serviceAccount: string;
    readonly pods: number;
    readonly lastSeen: string;
  })[];
}

export interface SessionSummary {
  readonly sessionId: string;
  /** exec, attach, portforward or postgres. */
  readonly protocol: string;
  readonly namespace: string;
  readonly pod: string;
  readonly serviceAccount: string;
  readonly startedAt: string;
  readonly lastAt: string;
  readonly events: number;
  readonly blocked: number;
  readonly recording: boolean;
  /** No event ended it and its last event is under 10 minutes old. */
  readonly live: boolean;
  readonly summary: string;
}

export interface SessionPage {
  readonly items: readonly SessionSummary[];
  readonly nextCursor?: string;
}

/** What an access review counts by: identity, category, protocol, verb and resource. */
export interface AccessKey {
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly category: AccessCategory;
  readonly protocol: string;
  readonly verb: string;
  readonly resource: string;
}

export interface AccessReportRow extends AccessKey {
  readonly count: number;
  readonly first: string;
  readonly last: string;
}

export interface AccessReport {
  /** The range counted: whole UTC days around the one asked for. */
  readonly since: string;
  readonly until: string;
  readonly rows: readonly AccessReportRow[];
  /** More rows matched than a report holds (MAX_REPORT_ROWS). */
  readonly truncated: boolean;
}
