/**
 * The console's rollups as changes to add, decided purely from the events a
 * commit newly stores (never the duplicates it acknowledges), so both
 * backends add the same rows inside the same transaction as the events:
 *
 * - counts: per minute, quarter hour, hour, 6 hours and UTC day, keyed by
 *   namespace, protocol, rule and action: events, blocked, masked, approved
 *   (the overview's series, rules, namespaces and protocols);
 * - agents: the same periods, keyed by namespace, service account, pod and
 *   protocol: the same counts and the newest event time (the agents list);
 * - access: per UTC day, keyed by identity (namespace, service account),
 *   category, protocol, verb and resource: count, first and last (report);
 * - sessions: per session id and chain: kind, pod, first and last event,
 *   events, blocked, whether it ended, a summary (sessions list).
 *
 * Each list is sorted by its key, so concurrent PostgreSQL transactions lock
 * rollup rows in one order (no deadlocks).
 */
import type { AuditEvent } from '@chaperone/shared';
import type { AccessCategory, AccessKey } from '../events/console-answers.ts';
import { type EventFacts, eventFacts } from '../events/event-facts.ts';
import { type EventRow, toEventRow } from '../events/event-row.ts';

/** Rollup periods, in seconds (each divides the next): a minute, a quarter hour, an hour, 6 hours, a UTC day. */
export const COUNT_SPANS = [60, 900, 3600, 21_600, 86_400] as const;
export const DAY_US = 86_400_000_000;

interface Outcomes {
  total: number;
  blocked: number;
  masked: number;
  approved: number;
}

export interface CountDelta extends Outcomes {
  readonly spanS: number;
  readonly bucketUs: number;
  readonly namespace: string;
  readonly protocol: string;
  readonly rule: string;
  readonly action: string;
}

export interface AgentDelta extends Outcomes {
  readonly spanS: number;
  readonly bucketUs: number;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly pod: string;
  readonly protocol: string;
  lastUs: number;
}

export interface AccessDelta extends AccessKey {
  readonly dayUs: number;
  count: number;
  firstUs: number;
  lastUs: number;
}

export interface SessionDelta {
  readonly sessionId: string;
  readonly sidecarId: string;
  kind: string;
  readonly namespace: string;
  readonly pod: string;
  readonly serviceAccount: string;
  startedUs: number;
  lastUs: number;
  events: number;
  blocked: number;
  closed: number;
  summary: string;
}

export interface RollupDelta {
  readonly counts: readonly CountDelta[];
  readonly agents: readonly AgentDelta[];
  readonly access: readonly AccessDelta[];
  readonly sessions: readonly SessionDelta[];
}

export interface RolledEvent {
  readonly row: EventRow;
  readonly facts: EventFacts;
}

/** The categories an access review files an event under (a blocked one only as denied). */
export function categoriesOf(f: EventFacts): AccessCategory[] {
  if (f.blocked) return ['denied'];
  const out: AccessCategory[] = [f.change ? 'changed' : 'read'];
  if (f.approved) out.push('approved');
  if (f.masked) out.push('masked');
  return out;
}

const key = (...parts: readonly (string | number)[]) => parts.join('\u0000');

function sortedValues<T>(m: Map<string, T>): T[] {
  return [...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, v]) => v);
}

function addOutcomes(to: Outcomes, from: Outcomes): void {
  to.total += from.total;
  to.blocked += from.blocked;
  to.masked += from.masked;
  to.approved += from.approved;
}

export function planRollups(events: readonly RolledEvent[]): RollupDelta {
  const counts = new Map<string, CountDelta>();
  const agents = new Map<string, AgentDelta>();
  const access = new Map<string, AccessDelta>();
  const sessions = new Map<string, SessionDelta>();
  for (const { row: r, facts: f } of events) {
    const blocked = f.blocked ? 1 : 0;
    const one: Outcomes = { total: 1, blocked, masked: f.masked ? 1 : 0, approved: f.approved ? 1 : 0 };
    for (const spanS of COUNT_SPANS) {
      const spanUs = spanS * 1_000_000;
      const bucketUs = Math.floor(r.timeUs / spanUs) * spanUs;
      const ck = key(spanS, bucketUs, r.namespace, r.protocol, r.rule, r.action);
      const c = counts.get(ck);
      if (c) addOutcomes(c, one);
      else
        counts.set(ck, {
          spanS,
          bucketUs,
          namespace: r.namespace,
          protocol: r.protocol,
          rule: r.rule,
          action: r.action,
          ...one,
        });
      const ak = key(spanS, bucketUs, r.namespace, r.serviceAccount, r.pod, r.protocol);
      const a = agents.get(ak);
      if (a) {
        addOutcomes(a, one);
        a.lastUs = Math.max(a.lastUs, r.timeUs);
      } else
        agents.set(ak, {
          spanS,
          bucketUs,
          namespace: r.namespace,
          serviceAccount: r.serviceAccount,
          pod: r.pod,
          protocol: r.protocol,
          ...one,
          lastUs: r.timeUs,
        });
    }
    const dayUs = Math.floor(r.timeUs / DAY_US) * DAY_US;
    for (const category of categoriesOf(f)) {
      const k = key(dayUs, r.namespace, r.serviceAccount, category, r.protocol, f.verb, f.resource);
      const a = access.get(k);
      if (a) {
        a.count++;
        a.firstUs = Math.min(a.firstUs, r.timeUs);
        a.lastUs = Math.max(a.lastUs, r.timeUs);
      } else {
        access.set(k, {
          dayUs,
          namespace: r.namespace,
          serviceAccount: r.serviceAccount,
          category,
          protocol: r.protocol,
          verb: f.verb,
          resource: f.resource,
          count: 1,
          firstUs: r.timeUs,
          lastUs: r.timeUs,
        });
      }
    }
    if (f.session && r.sessionId !== null) {
      const k = key(r.sessionId, r.sidecarId);
      const s = sessions.get(k);
      if (s) {
        s.startedUs = Math.min(s.startedUs, r.timeUs);
        s.lastUs = Math.max(s.lastUs, r.timeUs);
        s.events++;
        s.blocked += blocked;
        if (f.session.closes) s.closed = 1;
        if (s.summary === '') s.summary = f.session.summary;
      } else {
        sessions.set(k, {
          sessionId: r.sessionId,
          sidecarId: r.sidecarId,
          kind: f.session.kind,
          namespace: r.namespace,
          pod: r.pod,
          serviceAccount: r.serviceAccount,
          startedUs: r.timeUs,
          lastUs: r.timeUs,
          events: 1,
          blocked,
          closed: f.session.closes ? 1 : 0,
          summary: f.session.summary,
        });
      }
    }
  }
  return {
    counts: sortedValues(counts),
    agents: sortedValues(agents),
    access: sortedValues(access),
    sessions: sortedValues(sessions),
  };
}

/**
 * A stored event read back for the backfill (the rollup migration): its row
 * and facts from its JSON, as ingest made them; undefined when the JSON no
 * longer holds an event (`audit verify` reports that, the rollups skip it).
 */
export function rolledFromStored(json: string, receivedUs: number): RolledEvent | undefined {
  try {
    const event = JSON.parse(json) as AuditEvent;
    return { row: toEventRow(event, receivedUs, json), facts: eventFacts(event) };
  } catch {
    return undefined;
  }
}

/** Rows the backfill reads at a time. */
export const BACKFILL_PAGE = 2000;
