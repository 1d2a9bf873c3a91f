/**
 * Asks the collector for a human's decision on one held action and waits for
 * it (approval-protocol.ts): one WebSocket per hold, authenticated as every
 * connection of this sidecar to the collector (collector-socket.ts), a
 * `request`, then `pending` and `decided`.
 *
 * Fails closed: the outcome is `approved` only on a `decided` with state
 * `approved` for the request sent. Everything else — no collector
 * configured, a token that cannot be read, a connection that fails or closes
 * before a decision, a refused upgrade, an answer that cannot be read, no
 * `pending` within APPROVAL_CONNECT_TIMEOUT_MS, pings unanswered, the rule's
 * timeout passing (the sidecar keeps its own timer), the client going away,
 * the sidecar shutting down — ends as a denial whose message says which.
 * Ending a hold closes its connection, so the collector marks the request
 * withdrawn.
 */
import {
  APPROVAL_CONNECT_TIMEOUT_MS,
  APPROVAL_PING_INTERVAL_MS,
  APPROVAL_SUBPROTOCOL,
  APPROVALS_PATH,
  type ApprovalRequestMessage,
  approvalFingerprint,
  type Logger,
  MAX_APPROVAL_MESSAGE_BYTES,
  parseApprovalRequest,
  parseApprovalServerMessage,
} from '@chaperone/shared';
import WebSocket from 'ws';
import { type CollectorEndpoint, openCollectorSocket, readRefusal } from '../collector-socket.ts';
import { type ActionDigest, actionDigest } from './action-digest.ts';
import type { HeldDescription } from './held-action.ts';
import type { ReviewMetrics } from './review-metrics.ts';
import {
  decidedOutcome,
  expiredOutcome,
  formatDuration,
  type HeldFor,
  NOT_CONFIGURED,
  type ReviewOutcome,
  unavailableOutcome,
} from './review-outcome.ts';

export interface ReviewRequest extends HeldFor, HeldDescription {
  /** The audit event id of the held action (its event names the same id). */
  readonly auditId: string;
}

export interface ReviewClientOptions {
  /** The collector to ask; absent: every review is denied, saying no approval service is configured. */
  readonly collector?: CollectorEndpoint;
  readonly metrics: ReviewMetrics;
  readonly log: Logger;
  /** The most actions held at once (default MAX_HELD); more are denied at once. */
  readonly maxHeld?: number;
  /** Tests shorten the protocol's waits. */
  readonly connectTimeoutMs?: number;
  readonly pingIntervalMs?: number;
}

/** The most actions one sidecar holds at once: each holds a connection to the collector. */
export const MAX_HELD = 64;

/** The longest message field the contract takes. */
const MAX_MESSAGE = 4096;

export class ReviewClient {
  readonly #o: ReviewClientOptions;
  readonly #holds = new Set<(why: string) => void>();
  #closed = false;
  /** The digest of held actions, under a key this sidecar made at its start (action-digest.ts). */
  readonly digest: ActionDigest = actionDigest();

  constructor(o: ReviewClientOptions) {
    this.#o = o;
  }

  /** Whether a collector is configured to ask. */
  get configured(): boolean {
    return this.#o.collector !== undefined;
  }

  /** Ends every hold as a denial (the sidecar is shutting down); later reviews are denied at once. */
  close(): void {
    this.#closed = true;
    for (const end of [...this.#holds]) end('the sidecar is shutting down');
  }

  /** Holds until the action is decided; never rejects. `signal`: the client went away. */
  review(r: ReviewRequest, signal?: AbortSignal): Promise<ReviewOutcome> {
    const { metrics, log } = this.#o;
    metrics.held.inc();
    return new Promise<ReviewOutcome>((resolve) => {
      let done = false;
      let ws: WebSocket | undefined;
      let approvalId: string | undefined;
      let pending = false;
      let alive = true;
      let connectTimer: NodeJS.Timeout | undefined;
      let reviewTimer: NodeJS.Timeout | undefined;
      let pingTimer: NodeJS.Timeout | undefined;
      const end = (outcome: ReviewOutcome): void => {
        if (done) return;
        done = true;
        clearTimeout(connectTimer);
        clearTimeout(reviewTimer);
        clearInterval(pingTimer);
        this.#holds.delete(unavailable);
        signal?.removeEventListener('abort', aborted);
        if (ws && ws.readyState === WebSocket.OPEN) ws.close(1000, outcome.state);
        else if (ws && ws.readyState === WebSocket.CONNECTING) ws.terminate();
        metrics.held.dec();
        metrics.reviews.inc({
          protocol: r.protocol,
          rule: r.rule,
          outcome: outcome.granted ? 'granted' : outcome.state,
        });
        log.info(
          {
            auditID: r.auditId,
            rule: r.rule,
            approvalId: outcome.approvalId,
            outcome: outcome.state,
            granted: outcome.granted,
            why: outcome.record.reason,
          },
          'review ended',
        );
        resolve(outcome);
      };
      const unavailable = (why: string): void => end(unavailableOutcome(r, why, new Date(), approvalId));
      const aborted = (): void => unavailable('the client went away; the approval request is withdrawn');

      if (!this.#o.collector) return unavailable(NOT_CONFIGURED);
      if (this.#closed) return unavailable('the sidecar is shutting down');
      const max = this.#o.maxHeld ?? MAX_HELD;
      if (this.#holds.size >= max)
        return unavailable(
          `${max} actions of this pod are already held for approval, the most a sidecar holds at once; retry once some are decided`,
        );
      if (signal?.aborted) return aborted();
      let request: ApprovalRequestMessage;
      try {
        request = parseApprovalRequest(JSON.stringify(requestMessage(r)));
      } catch (err) {
        return unavailable(`the held action cannot be sent for approval (${(err as Error).message})`);
      }
      try {
        ws = openCollectorSocket(this.#o.collector, APPROVALS_PATH, APPROVAL_SUBPROTOCOL, {
          maxPayload: MAX_APPROVAL_MESSAGE_BYTES,
          handshakeTimeoutMs: this.#o.connectTimeoutMs ?? APPROVAL_CONNECT_TIMEOUT_MS,
        });
      } catch (err) {
        return unavailable(`the collector token could not be read (${(err as Error).message})`);
      }
      this.#holds.add(unavailable);
      signal?.addEventListener('abort', aborted, { once: true });
      const connectMs = this.#o.connectTimeoutMs ?? APPROVAL_CONNECT_TIMEOUT_MS;
      connectTimer = setTimeout(
        () =>
          unavailable(
            `the collector did not acknowledge the approval request within ${formatDuration(connectMs)}`,
          ),
        connectMs,
      );
      reviewTimer = setTimeout(() => end(expiredOutcome(r, new Date(), approvalId)), r.review.timeoutMs);
      const socket = ws;
      socket.on('open', () => {
        socket.send(JSON.stringify(request));
        const pingMs = this.#o.pingIntervalMs ?? APPROVAL_PING_INTERVAL_MS;
        pingTimer = setInterval(() => {
          if (!alive) return unavailable('the collector stopped answering pings (the connection is broken)');
          alive = false;
          socket.ping();
        }, pingMs);
      });
      socket.on('pong', () => {
        alive = true;
      });
      socket.on('unexpected-response', (_req, res) =>
        readRefusal(res, (reason) =>
          unavailable(
            `the collector refused the approval request (HTTP ${res.statusCode}${reason ? `: ${reason}` : res.statusMessage ? ` ${res.statusMessage}` : ''})`,
          ),
        ),
      );
      socket.on('error', (err) => unavailable(`the collector could not be reached (${err.message})`));
      socket.on('close', (code, reason) =>
        unavailable(
          `the connection to the collector closed before a decision (code ${code}${reason.length ? `: ${reason.toString().slice(0, 200)}` : ''})`,
        ),
      );
      socket.on('message', (data, isBinary) => {
        alive = true;
        if (isBinary) return unavailable("the collector's answer could not be read (a binary message)");
        let m: ReturnType<typeof parseApprovalServerMessage>;
        try {
          m = parseApprovalServerMessage(data.toString());
        } catch (err) {
          return unavailable(`the collector's answer could not be read (${(err as Error).message})`);
        }
        if (m.type === 'pending') {
          if (pending) return unavailable("the collector's answer could not be read (a second pending)");
          pending = true;
          approvalId = m.approvalId;
          clearTimeout(connectTimer);
          return;
        }
        if (approvalId !== undefined && m.approvalId !== approvalId)
          return unavailable(
            `the collector's answer could not be read (a decision on approval ${m.approvalId}, not on ${approvalId})`,
          );
        approvalId = m.approvalId;
        // A grant answers at once, without a pending; an approval needs its distinct approvers.
        const granted = !pending && m.state === 'approved' && m.grantId !== undefined;
        if (m.state === 'approved' && !granted) {
          const approvers = new Set(m.decisions.filter((d) => d.decision === 'approve').map((d) => d.user));
          if (approvers.size < r.review.approvals)
            return unavailable(
              `the collector reported an approval by ${approvers.size} distinct approver(s), and the rule needs ${r.review.approvals}`,
            );
        }
        end(decidedOutcome(r, m, granted, new Date()));
      });
    });
  }
}

/** The `request` for a hold (validated by the caller with the contract's own parser before it is sent). */
export function requestMessage(r: ReviewRequest): ApprovalRequestMessage {
  return {
    type: 'request',
    auditId: r.auditId,
    protocol: r.protocol,
    summary: r.summary,
    action: r.action,
    fingerprint: approvalFingerprint(r.protocol, r.action),
    rule: r.rule,
    message: r.message.length <= MAX_MESSAGE ? r.message : `${r.message.slice(0, MAX_MESSAGE - 1)}…`,
    approvals: r.review.approvals,
    approvers: r.review.approvers,
    timeoutMs: r.review.timeoutMs,
    grantMs: r.review.grantMs,
  };
}
