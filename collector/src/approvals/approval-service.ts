/**
 * The approval service: what happens to a request from the moment a
 * sidecar sends it until it ends, and what approvers may see and do.
 *
 * Sidecar side (approval-socket.ts hands over each verified request):
 * - the fingerprint is recomputed and a mismatch refused;
 * - an active grant (same pod uid, rule and fingerprint, window not over,
 *   not revoked) answers `decided approved` with its grantId at once;
 * - otherwise the request is stored (refused when its pod already has
 *   `maxPendingPerPod` waiting), `pending` is sent, the webhook told, and the
 *   hold waits for the store to announce its end: a decision taken through
 *   any replica, its expiry (a timer here, and a sweep for requests whose
 *   replica went away), or its withdrawal when the connection closes first.
 *   Each request records the replica holding it; replicas renew a lease (a
 *   heartbeat in the store), and the requests of one whose lease ran out are
 *   withdrawn by the others (or by the next start of the embedded store).
 *
 * Approver side (query/approval-routes.ts): every read and decision is
 * authorised by RBAC in the requester's namespace (approval-access.ts), a
 * decision also in the namespace the held action touches when that is
 * another one, the
 * requesting pod can never decide its own request, and a request naming
 * approvers admits only them.
 */
import { randomUUID } from 'node:crypto';
import {
  APPROVAL_ID,
  type ApprovalDecidedMessage,
  type ApprovalRequestMessage,
  type ApprovalServerMessage,
  type ApprovalState,
  approvalFingerprint,
  ChaperoneError,
  type DecisionBody,
  type Logger,
} from '@chaperone/shared';
import type { ApprovalAccess } from '../auth/approval-access.ts';
import type { Approver } from '../auth/approver-auth.ts';
import type { VerifiedSidecar } from '../auth/sidecar-identity.ts';
import type { ApprovalRecord, GrantRecord } from '../store/approval-plan.ts';
import type { ApprovalStore } from '../store/approval-store.ts';
import type { ApprovalMetrics } from './approval-metrics.ts';
import type { ApprovalNotifier } from './approval-webhook.ts';
import { namedApprover, selfApprovalRefusal } from './approver-checks.ts';

export const DEFAULT_MAX_PENDING_PER_POD = 32;
export const DEFAULT_MAX_PENDING_PER_NAMESPACE = 256;
const SWEEP_MS = 5_000;
/** A replica not seen (no heartbeat) for this long has gone away: its pending requests are withdrawn. */
export const DEFAULT_REPLICA_LEASE_MS = 30_000;
const MAX_TIMER_MS = 2 ** 31 - 1;
const DECIDED_STATES: readonly ApprovalState[] = ['approved', 'denied', 'expired', 'withdrawn'];

/** A sidecar's held action, as the socket offers it to the service. */
export interface Hold {
  send(message: ApprovalServerMessage): void;
  /** The request has ended and its answer was sent: close the connection. */
  end(): void;
}

export interface ApprovalServiceOptions {
  readonly store: ApprovalStore;
  /** Absent: nobody can approve here (the approver routes answer 503). */
  readonly access?: ApprovalAccess;
  readonly metrics: ApprovalMetrics;
  readonly logger: Logger;
  readonly notify?: ApprovalNotifier;
  readonly maxPendingPerPod?: number;
  /** Requests the pods of one namespace may have waiting, together. */
  readonly maxPendingPerNamespace?: number;
  /** This replica's id in the store (owner of the requests it holds); default a random UUID. */
  readonly replicaId?: string;
  /** How long a replica may go without a heartbeat before its requests are withdrawn (default 30 s). */
  readonly leaseMs?: number;
  /** How often expiry and the heartbeat run (default 5 s). */
  readonly sweepMs?: number;
  readonly now?: () => number;
}

interface Waiting {
  readonly hold: Hold;
  readonly timer: NodeJS.Timeout;
}

export type ListState = 'pending' | 'decided' | 'all';

export class ApprovalService {
  readonly #o: ApprovalServiceOptions;
  readonly #waiting = new Map<string, Waiting>();
  readonly #replica: string;
  #unsubscribe: (() => void) | undefined;
  #sweep: NodeJS.Timeout | undefined;

  constructor(opts: ApprovalServiceOptions) {
    this.#o = opts;
    this.#replica = opts.replicaId ?? randomUUID();
  }

  #now(): number {
    return this.#o.now?.() ?? Date.now();
  }

  /** Listens for changes (resolves once listening), takes its lease, and starts the sweep. */
  async start(): Promise<void> {
    this.#unsubscribe = await this.#o.store.onChange((id) => {
      const ids = id === undefined ? [...this.#waiting.keys()] : this.#waiting.has(id) ? [id] : [];
      for (const x of ids) void this.#check(x);
    });
    await this.#o.store.heartbeat(this.#replica, this.#now());
    this.#sweep = setInterval(() => void this.sweep(), this.#o.sweepMs ?? SWEEP_MS);
    this.#sweep.unref();
  }

  /**
   * Renews this replica's lease, withdraws the requests of replicas whose
   * lease ran out (they went away without withdrawing them: crashed, killed;
   * their sidecars' connections are gone), and expires requests whose time
   * is over. Runs every few seconds; never rejects.
   */
  async sweep(): Promise<void> {
    const now = this.#now();
    try {
      await this.#o.store.heartbeat(this.#replica, now);
      const gone = await this.#o.store.withdrawOrphans(
        now - (this.#o.leaseMs ?? DEFAULT_REPLICA_LEASE_MS),
        now,
        100,
      );
      for (const a of gone) this.#ended(a, 'withdrawn');
      if (gone.length)
        this.#o.logger.warn(
          { approvalIds: gone.map((a) => a.id) },
          'withdrew approval requests of a replica that went away without withdrawing them',
        );
    } catch (err) {
      this.#o.logger.warn({ err }, 'renewing the approvals lease or withdrawing orphaned requests failed');
    }
    await this.#expireDue();
  }

  stop(): void {
    this.#unsubscribe?.();
    if (this.#sweep) clearInterval(this.#sweep);
    for (const w of this.#waiting.values()) clearTimeout(w.timer);
    this.#waiting.clear();
  }

  get holding(): number {
    return this.#waiting.size;
  }

  async #expireDue(): Promise<void> {
    try {
      for (const a of await this.#o.store.expireDue(this.#now(), 100)) this.#ended(a, 'expired');
    } catch (err) {
      this.#o.logger.warn({ err }, 'expiring approval requests failed');
    }
  }

  #ended(a: ApprovalRecord, outcome: 'approved' | 'denied' | 'expired' | 'withdrawn'): void {
    const seconds =
      (Date.parse(a.decidedAt ?? new Date(this.#now()).toISOString()) - Date.parse(a.createdAt)) / 1000;
    this.#o.metrics.decided(
      { namespace: a.requester.namespace, rule: a.rule, protocol: a.protocol },
      outcome,
      seconds,
    );
    this.#o.logger.info(
      {
        approvalId: a.id,
        auditId: a.auditId,
        state: outcome,
        namespace: a.requester.namespace,
        pod: a.requester.pod,
        rule: a.rule,
        approvers: a.decisions.map((d) => `${d.user}:${d.decision}`),
      },
      'approval request ended',
    );
  }

  /**
   * A verified sidecar's request: answers `decided` (a grant covers it) or
   * `pending` (stored; the hold is answered when it ends). Throws a
   * ChaperoneError (validation_failed, limit_exceeded, unavailable) to refuse.
   */
  async submit(who: VerifiedSidecar, req: ApprovalRequestMessage, hold: Hold): Promise<void> {
    const fingerprint = approvalFingerprint(req.protocol, req.action);
    if (fingerprint !== req.fingerprint)
      throw new ChaperoneError(
        'validation_failed',
        'fingerprint is not sha256 of the canonical JSON of {protocol, action}: the request was refused',
      );
    const now = this.#now();
    this.#o.metrics.requested(who.namespace, req.rule, req.protocol);
    const grant = await this.#o.store.findGrant(who.podUID, req.rule, fingerprint, now);
    if (grant) {
      this.#o.metrics.decided(
        { namespace: who.namespace, rule: req.rule, protocol: req.protocol },
        'granted',
        0,
      );
      this.#o.logger.info(
        { grantId: grant.id, auditId: req.auditId, namespace: who.namespace, pod: who.pod, rule: req.rule },
        'a grant let a held action through',
      );
      hold.send({
        type: 'decided',
        approvalId: grant.approvalId,
        state: 'approved',
        decisions: [],
        grantId: grant.id,
        grantUntil: grant.until,
      });
      hold.end();
      return;
    }
    const a: ApprovalRecord = {
      id: randomUUID(),
      state: 'pending',
      requester: {
        namespace: who.namespace,
        pod: who.pod,
        podUID: who.podUID,
        serviceAccount: who.serviceAccount,
      },
      protocol: req.protocol,
      auditId: req.auditId,
      summary: req.summary,
      action: req.action,
      fingerprint,
      rule: req.rule,
      message: req.message,
      approvals: req.approvals,
      approvers: req.approvers,
      grantMs: req.grantMs,
      createdAt: new Date(now).toISOString(),
      expiresAt: new Date(now + req.timeoutMs).toISOString(),
      decisions: [],
    };
    const limits = {
      perPod: this.#o.maxPendingPerPod ?? DEFAULT_MAX_PENDING_PER_POD,
      perNamespace: this.#o.maxPendingPerNamespace ?? DEFAULT_MAX_PENDING_PER_NAMESPACE,
    };
    const created = await this.#o.store.create(a, limits, this.#replica);
    if (created.kind === 'limit')
      throw new ChaperoneError(
        'limit_exceeded',
        created.scope === 'pod'
          ? `pod ${who.namespace}/${who.pod} already has ${created.pending} approval requests waiting, the limit (--max-pending-approvals-per-pod ${limits.perPod}): wait for them to be decided`
          : `namespace ${who.namespace} already has ${created.pending} approval requests waiting, the limit (--max-pending-approvals-per-namespace ${limits.perNamespace}): wait for them to be decided`,
      );
    const timer = setTimeout(() => void this.#expire(a.id), Math.min(req.timeoutMs, MAX_TIMER_MS));
    timer.unref();
    this.#waiting.set(a.id, { hold, timer });
    hold.send({ type: 'pending', approvalId: a.id, expiresAt: a.expiresAt });
    this.#o.logger.info(
      {
        approvalId: a.id,
        auditId: a.auditId,
        namespace: who.namespace,
        pod: who.pod,
        rule: a.rule,
        summary: a.summary,
      },
      'approval requested',
    );
    this.#o.notify?.(a);
    // A decision may have been taken between the insert and the registration above.
    await this.#check(a.id);
  }

  async #expire(id: string): Promise<void> {
    try {
      const a = await this.#o.store.finish(id, 'expired', this.#now());
      if (a) this.#ended(a, 'expired');
    } catch (err) {
      this.#o.logger.warn({ err, approvalId: id }, 'expiring an approval request failed');
    }
    await this.#check(id);
  }

  /** Reads a held request again and answers its sidecar when it has ended. */
  async #check(id: string): Promise<void> {
    const w = this.#waiting.get(id);
    if (!w) return;
    let a: ApprovalRecord | undefined;
    try {
      a = await this.#o.store.get(id);
    } catch (err) {
      this.#o.logger.warn({ err, approvalId: id }, 'reading an approval request failed');
      return;
    }
    if (!a || a.state === 'pending' || this.#waiting.get(id) !== w) return;
    this.#waiting.delete(id);
    clearTimeout(w.timer);
    if (a.state === 'withdrawn') {
      w.hold.end();
      return;
    }
    let grant: GrantRecord | undefined;
    if (a.grantId) grant = await this.#o.store.getGrant(a.grantId).catch(() => undefined);
    const msg: ApprovalDecidedMessage = {
      type: 'decided',
      approvalId: a.id,
      state: a.state,
      decisions: a.decisions,
      ...(grant ? { grantId: grant.id, grantUntil: grant.until } : {}),
    };
    w.hold.send(msg);
    w.hold.end();
  }

  /** The sidecar's connection closed: a request still pending is withdrawn, and nothing reaches it anymore. */
  async withdraw(id: string): Promise<void> {
    const w = this.#waiting.get(id);
    if (!w) return;
    this.#waiting.delete(id);
    clearTimeout(w.timer);
    try {
      const a = await this.#o.store.finish(id, 'withdrawn', this.#now());
      if (a) this.#ended(a, 'withdrawn');
    } catch (err) {
      this.#o.logger.warn({ err, approvalId: id }, 'withdrawing an approval request failed');
    }
  }

  // --- approvers ----------------------------------------------------------

  async #mayApprove(who: Approver, namespace: string, cached: boolean): Promise<boolean> {
    if (!this.#o.access)
      throw new ChaperoneError(
        'unavailable',
        'approvers are authorised by Kubernetes RBAC: this collector has no API server access',
      );
    return this.#o.access.mayApprove(who, namespace, cached);
  }

  #forbidden(who: Approver, namespace: string, actionNamespace = false): ChaperoneError {
    return new ChaperoneError(
      'forbidden',
      `${who.user} may not approve requests in namespace ${namespace}${actionNamespace ? ' (the namespace the held action touches: approving it needs the right there too)' : ''}: an admin grants it with a Role allowing verb approve on resource approvals in API group chaperone.dev, bound in that namespace`,
    );
  }

  /** The namespaces among `asked` (or among those with requests) `who` may approve in. */
  async #visibleNamespaces(who: Approver, asked: string | undefined): Promise<string[]> {
    if (asked !== undefined) {
      if (!(await this.#mayApprove(who, asked, true))) throw this.#forbidden(who, asked);
      return [asked];
    }
    const all = await this.#o.store.namespaces();
    const allowed = await Promise.all(all.map((ns) => this.#mayApprove(who, ns, true)));
    return all.filter((_, i) => allowed[i]);
  }

  /** Up to `limit` requests (pending ones soonest expiry first, others newest first), and how many match in all. */
  async list(
    who: Approver,
    state: ListState,
    namespace: string | undefined,
    limit: number,
  ): Promise<{ items: readonly ApprovalRecord[]; total: number }> {
    const namespaces = await this.#visibleNamespaces(who, namespace);
    if (namespaces.length === 0) return { items: [], total: 0 };
    const states: readonly ApprovalState[] | undefined =
      state === 'pending' ? ['pending'] : state === 'decided' ? DECIDED_STATES : undefined;
    const filter = { ...(states ? { states } : {}), namespaces };
    const [items, total] = await Promise.all([
      this.#o.store.list({ ...filter, limit }),
      this.#o.store.count(filter),
    ]);
    return { items, total: Math.max(total, items.length) };
  }

  /** One request; one outside `who`'s namespaces reads as absent. */
  async get(who: Approver, id: string): Promise<ApprovalRecord> {
    const a = APPROVAL_ID.test(id) ? await this.#o.store.get(id) : undefined;
    if (!a || !(await this.#mayApprove(who, a.requester.namespace, true)))
      throw new ChaperoneError('not_found', `no approval request ${id} that you may approve`);
    return a;
  }

  async decide(who: Approver, id: string, body: DecisionBody): Promise<ApprovalRecord> {
    const a = APPROVAL_ID.test(id) ? await this.#o.store.get(id) : undefined;
    if (!a) throw new ChaperoneError('not_found', `no approval request ${id}`);
    // The agent's namespace, and the namespace the action touches when it is another one.
    for (const ns of new Set([a.requester.namespace, a.action.namespace ?? a.requester.namespace]))
      if (!(await this.#mayApprove(who, ns, false)))
        throw this.#forbidden(who, ns, ns !== a.requester.namespace);
    const self = selfApprovalRefusal(who, a.requester);
    if (self) throw new ChaperoneError('forbidden', self);
    if (!namedApprover(who, a.approvers))
      throw new ChaperoneError(
        'forbidden',
        `${who.user} is not among this request's approvers (${a.approvers.join(', ')}), which its rule ${a.rule} names`,
      );
    const now = this.#now();
    const out = await this.#o.store.decide(
      id,
      {
        user: who.user,
        decision: body.decision,
        at: new Date(now).toISOString(),
        ...(body.reason ? { reason: body.reason } : {}),
      },
      now,
      randomUUID(),
    );
    if (out.kind === 'refused') throw new ChaperoneError(out.code, out.message);
    this.#o.logger.info(
      {
        approvalId: id,
        approver: who.user,
        via: who.via,
        decision: body.decision,
        state: out.approval.state,
        grantId: out.grant?.id,
      },
      'approver decided',
    );
    if (out.approval.state === 'approved' || out.approval.state === 'denied')
      this.#ended(out.approval, out.approval.state);
    return out.approval;
  }

  async listGrants(
    who: Approver,
    namespace: string | undefined,
    all: boolean,
    limit: number,
  ): Promise<readonly GrantRecord[]> {
    const namespaces = await this.#visibleNamespaces(who, namespace);
    if (namespaces.length === 0) return [];
    return this.#o.store.listGrants({ namespaces, ...(all ? {} : { activeAt: this.#now() }), limit });
  }

  async revokeGrant(who: Approver, id: string): Promise<GrantRecord> {
    const g = APPROVAL_ID.test(id) ? await this.#o.store.getGrant(id) : undefined;
    if (!g) throw new ChaperoneError('not_found', `no grant ${id}`);
    if (!(await this.#mayApprove(who, g.namespace, false))) throw this.#forbidden(who, g.namespace);
    const out = await this.#o.store.revokeGrant(id, who.user, this.#now());
    if (out.kind === 'refused') throw new ChaperoneError(out.code, out.message);
    this.#o.logger.info({ grantId: id, approvalId: g.approvalId, by: who.user }, 'grant revoked');
    return out.grant;
  }
}
