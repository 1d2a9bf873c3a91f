/**
 * The approval store over SQL, once for both backends. Each operation is a
 * script: a generator that yields statements and receives their rows, so the
 * embedded store runs it synchronously inside one `BEGIN IMMEDIATE` (nothing
 * else can interleave on its single connection) and PostgreSQL runs it
 * asynchronously inside one transaction with row locks. The decisions are
 * taken by approval-plan.ts.
 */
import type { ApprovalState, ApproverDecision } from '@chaperone/shared';
import { type ApprovalRecord, type GrantRecord, planDecision } from './approval-plan.ts';
import {
  APPROVAL_SQL,
  approvalValues,
  countApprovalsSql,
  decisionValues,
  grantValues,
  listApprovalsSql,
  listGrantsSql,
  listNamespacesSql,
  rowToApproval,
  rowToGrant,
} from './approval-rows.ts';
import type {
  ApprovalFilter,
  ApprovalListener,
  ApprovalStore,
  CreateOutcome,
  DecideOutcome,
  GrantFilter,
  PendingLimits,
  RevokeOutcome,
} from './approval-store.ts';

export type Row = Record<string, unknown>;
/** One statement: `?` placeholders, `{lock}` where a row lock belongs. */
export interface Step {
  readonly sql: string;
  readonly params: readonly unknown[];
}
export type Script<T> = Generator<Step, T, Row[]>;

/** How a backend runs scripts and carries change announcements. */
export interface ScriptRunner {
  /** Runs a script in one write transaction. */
  write<T>(script: Script<T>): Promise<T>;
  read<T>(script: Script<T>): Promise<T>;
  /** A statement that announces a change to every replica when the transaction commits (PostgreSQL). */
  readonly announceStep?: (approvalId: string) => Step;
  /** Called after a write transaction committed with the requests it changed. */
  committed(approvalIds: readonly string[]): void;
  onChange(listener: ApprovalListener): Promise<() => void>;
}

const step = (sql: string, params: readonly unknown[] = []): Step => ({ sql, params });

function* load(id: string, lock: boolean): Script<ApprovalRecord | undefined> {
  const rows = yield step(lock ? APPROVAL_SQL.getForUpdate : APPROVAL_SQL.get, [id]);
  const r = rows[0];
  if (!r) return undefined;
  const decisions = yield step(APPROVAL_SQL.decisionsOf, [id]);
  return rowToApproval(r, decisions);
}

export class SqlApprovalStore implements ApprovalStore {
  readonly #run: ScriptRunner;

  constructor(runner: ScriptRunner) {
    this.#run = runner;
  }

  async #write<T>(ids: (out: T) => readonly string[], script: Script<T>): Promise<T> {
    const out = await this.#run.write(script);
    const changed = ids(out);
    if (changed.length) this.#run.committed(changed);
    return out;
  }

  *#announce(ids: readonly string[]): Script<void> {
    const announce = this.#run.announceStep;
    if (announce) for (const id of ids) yield announce(id);
  }

  create(a: ApprovalRecord, limits: PendingLimits, owner?: string): Promise<CreateOutcome> {
    const self = this;
    return this.#write(
      (o) => (o.kind === 'created' ? [a.id] : []),
      (function* (): Script<CreateOutcome> {
        if (a.requester.podUID !== undefined) {
          const [r] = yield step(APPROVAL_SQL.countPending, [a.requester.podUID]);
          const pending = Number(r?.n ?? 0);
          if (pending >= limits.perPod) return { kind: 'limit', scope: 'pod', pending };
        }
        const [r] = yield step(APPROVAL_SQL.countPendingInNamespace, [a.requester.namespace]);
        const inNamespace = Number(r?.n ?? 0);
        if (inNamespace >= limits.perNamespace)
          return { kind: 'limit', scope: 'namespace', pending: inNamespace };
        yield step(APPROVAL_SQL.insertApproval, [...approvalValues(a), owner ?? null]);
        for (let i = 0; i < a.decisions.length; i++)
          yield step(
            APPROVAL_SQL.insertDecision,
            decisionValues(a.id, i + 1, a.decisions[i] as ApproverDecision),
          );
        yield* self.#announce([a.id]);
        return { kind: 'created' };
      })(),
    );
  }

  get(id: string): Promise<ApprovalRecord | undefined> {
    return this.#run.read(load(id, false));
  }

  list(filter: ApprovalFilter): Promise<readonly ApprovalRecord[]> {
    return this.#run.read(
      (function* () {
        const q = listApprovalsSql(filter.states, filter.namespaces, filter.limit);
        const rows = yield step(q.sql, q.params);
        const out: ApprovalRecord[] = [];
        for (const r of rows) out.push(rowToApproval(r, yield step(APPROVAL_SQL.decisionsOf, [r.id])));
        return out;
      })(),
    );
  }

  count(filter: Omit<ApprovalFilter, 'limit'>): Promise<number> {
    return this.#run.read(
      (function* (): Script<number> {
        const q = countApprovalsSql(filter.states, filter.namespaces);
        const [r] = yield step(q.sql, q.params);
        return Number(r?.n ?? 0);
      })(),
    );
  }

  namespaces(states?: readonly ApprovalState[]): Promise<readonly string[]> {
    return this.#run.read(
      (function* () {
        const q = listNamespacesSql(states);
        return (yield step(q.sql, q.params)).map((r) => String(r.namespace));
      })(),
    );
  }

  decide(id: string, d: ApproverDecision, nowMs: number, grantId: string): Promise<DecideOutcome> {
    const self = this;
    return this.#write(
      (o) => (o.kind === 'recorded' ? [id] : []),
      (function* (): Script<DecideOutcome> {
        const a = yield* load(id, true);
        if (!a) return { kind: 'refused', code: 'not_found', message: `no approval request ${id}` };
        const plan = planDecision(a, d, nowMs, grantId);
        if (plan.kind === 'refused') return plan;
        yield step(APPROVAL_SQL.insertDecision, decisionValues(id, plan.decisions.length, d));
        if (plan.grant) yield step(APPROVAL_SQL.insertGrant, grantValues(plan.grant));
        if (plan.state !== 'pending')
          yield step(APPROVAL_SQL.setState, [
            plan.state,
            plan.decidedAt ? Date.parse(plan.decidedAt) : null,
            plan.grant?.id ?? null,
            id,
          ]);
        yield* self.#announce([id]);
        const approval: ApprovalRecord = {
          ...a,
          state: plan.state,
          decisions: plan.decisions,
          ...(plan.decidedAt ? { decidedAt: plan.decidedAt } : {}),
          ...(plan.grant ? { grantId: plan.grant.id } : {}),
        };
        return { kind: 'recorded', approval, ...(plan.grant ? { grant: plan.grant } : {}) };
      })(),
    );
  }

  *#finish(id: string, state: 'expired' | 'withdrawn', nowMs: number): Script<ApprovalRecord | undefined> {
    const a = yield* load(id, true);
    if (a?.state !== 'pending') return undefined;
    yield step(APPROVAL_SQL.setState, [state, nowMs, null, id]);
    return { ...a, state, decidedAt: new Date(nowMs).toISOString() };
  }

  /** Ends those of `ids` still pending and announces them; returns them. */
  *#finishAll(
    ids: readonly string[],
    state: 'expired' | 'withdrawn',
    nowMs: number,
  ): Script<readonly ApprovalRecord[]> {
    const out: ApprovalRecord[] = [];
    for (const id of ids) {
      const a = yield* this.#finish(id, state, nowMs);
      if (a) out.push(a);
    }
    yield* this.#announce(out.map((a) => a.id));
    return out;
  }

  finish(id: string, state: 'expired' | 'withdrawn', nowMs: number): Promise<ApprovalRecord | undefined> {
    const self = this;
    return this.#write(
      (o) => (o ? [id] : []),
      (function* () {
        const out = yield* self.#finish(id, state, nowMs);
        if (out) yield* self.#announce([id]);
        return out;
      })(),
    );
  }

  expireDue(nowMs: number, limit: number): Promise<readonly ApprovalRecord[]> {
    const self = this;
    return this.#write(
      (o) => o.map((a) => a.id),
      (function* () {
        const ids = (yield step(APPROVAL_SQL.dueIds, [nowMs, limit])).map((r) => String(r.id));
        return yield* self.#finishAll(ids, 'expired', nowMs);
      })(),
    );
  }

  heartbeat(replica: string, nowMs: number): Promise<void> {
    return this.#write(
      () => [],
      (function* (): Script<void> {
        yield step(APPROVAL_SQL.heartbeat, [replica, nowMs]);
      })(),
    );
  }

  withdrawOrphans(seenBeforeMs: number, nowMs: number, limit: number): Promise<readonly ApprovalRecord[]> {
    const self = this;
    return this.#write(
      (o) => o.map((a) => a.id),
      (function* () {
        const ids = (yield step(APPROVAL_SQL.orphanIds, [seenBeforeMs, limit])).map((r) => String(r.id));
        yield step(APPROVAL_SQL.forgetStaleReplicas, [seenBeforeMs]);
        return yield* self.#finishAll(ids, 'withdrawn', nowMs);
      })(),
    );
  }

  findGrant(
    podUID: string,
    rule: string,
    fingerprint: string,
    nowMs: number,
  ): Promise<GrantRecord | undefined> {
    return this.#run.read(
      (function* (): Script<GrantRecord | undefined> {
        const [r] = yield step(APPROVAL_SQL.findGrant, [podUID, rule, fingerprint, nowMs]);
        return r ? rowToGrant(r) : undefined;
      })(),
    );
  }

  getGrant(id: string): Promise<GrantRecord | undefined> {
    return this.#run.read(
      (function* (): Script<GrantRecord | undefined> {
        const [r] = yield step(APPROVAL_SQL.getGrant, [id]);
        return r ? rowToGrant(r) : undefined;
      })(),
    );
  }

  listGrants(filter: GrantFilter): Promise<readonly GrantRecord[]> {
    return this.#run.read(
      (function* () {
        const q = listGrantsSql(filter.namespaces, filter.activeAt, filter.limit);
        return (yield step(q.sql, q.params)).map(rowToGrant);
      })(),
    );
  }

  revokeGrant(id: string, by: string, nowMs: number): Promise<RevokeOutcome> {
    return this.#write(
      () => [],
      (function* (): Script<RevokeOutcome> {
        const [r] = yield step(APPROVAL_SQL.getGrantForUpdate, [id]);
        if (!r) return { kind: 'refused', code: 'not_found', message: `no grant ${id}` };
        const g = rowToGrant(r);
        if (g.revokedAt)
          return {
            kind: 'refused',
            code: 'conflict',
            message: `grant ${id} was revoked already, at ${g.revokedAt} by ${g.revokedBy ?? 'unknown'}`,
          };
        yield step(APPROVAL_SQL.revokeGrant, [nowMs, by, id]);
        return { kind: 'revoked', grant: { ...g, revokedAt: new Date(nowMs).toISOString(), revokedBy: by } };
      })(),
    );
  }

  prune(cutoffMs: number): Promise<void> {
    return this.#write(
      () => [],
      (function* (): Script<void> {
        yield step(APPROVAL_SQL.pruneDecisions, [cutoffMs]);
        yield step(APPROVAL_SQL.pruneApprovals, [cutoffMs]);
        yield step(APPROVAL_SQL.pruneGrants, [cutoffMs, cutoffMs]);
      })(),
    );
  }

  onChange(listener: ApprovalListener): Promise<() => void> {
    return this.#run.onChange(listener);
  }
}
